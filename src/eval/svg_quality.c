/* The format-vs-quality plot as a self-contained SVG (see sweep.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/sweep.h"
#include "runtime/errf.h"

enum { W = 760, H = 480, ML = 78, MR = 110, MT = 56, MB = 64 };   /* canvas and margins, px */

typedef struct { double px, py; double lx, ly; int anchor_end, i, merged; } point;

static int by_py(const void *a, const void *b)
{
    double x = ((const point *)a)->py, y = ((const point *)b)->py;
    return (x > y) - (x < y);
}

/* Label box of text at (x, baseline y), anchored at its start or end. */
typedef struct { double x0, y0, x1, y1; } box;

static box label_box(double x, double y, int anchor_end, const char *s)
{
    double w = 7.0 * (double)strlen(s) + 4;   /* ~7 px per character at 12 px */
    box b = {anchor_end ? x - w : x, y - 11, anchor_end ? x : x + w, y + 3};
    return b;
}

static int overlaps(box a, box b) { return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1; }

/* Tries right of the point, then left, then further up and down each side,
 * and keeps the first spot that covers no placed label and no point. */
static void place_labels(point *p, int n, char (*text)[96], double xlo, double xhi)
{
    box *placed = calloc((size_t)n, sizeof *placed);
    if (!placed) return;
    for (int a = 0; a < n; a++) {
        int done = p[a].merged;
        for (int d = 0; d <= 12 && !done; d++)
            for (int side = 0; side < 4 && !done; side++) {
                int end = side & 1;
                double dy = (side & 2 ? -1 : 1) * 13.0 * d;
                if (d == 0 && side >= 2) continue;
                double lx = p[a].px + (end ? -9 : 9) + (d ? (end ? -14 : 14) : 0), ly = p[a].py + 4 + dy;
                box bx = label_box(lx, ly, end, text[p[a].i]);
                int ok = bx.x0 >= xlo && bx.x1 <= xhi;
                for (int b = 0; ok && b < a; b++) ok = !overlaps(bx, placed[b]);
                /* No dot under the label, and no other dot nearer to where
                 * the label starts than its own (the reader pairs by distance). */
                double own = hypot(lx - p[a].px, ly - 4 - p[a].py);
                for (int b = 0; ok && b < n; b++) {
                    if (p[b].px == p[a].px && p[b].py == p[a].py) continue;   /* merged twin */
                    box dot = {p[b].px - 6, p[b].py - 6, p[b].px + 6, p[b].py + 6};
                    ok = !overlaps(bx, dot) && (b == a || hypot(lx - p[b].px, ly - 4 - p[b].py) > own);
                }
                if (ok) { p[a].lx = lx; p[a].ly = ly; p[a].anchor_end = end; placed[a] = bx; done = 1; }
            }
        if (!done) {   /* nowhere free: right of the dot, overlapping */
            p[a].lx = p[a].px + 9;
            p[a].ly = p[a].py + 4;
            placed[a] = label_box(p[a].lx, p[a].ly, 0, text[p[a].i]);
        }
    }
    free(placed);
}

/* Escapes the few characters XML cares about (titles come from file names). */
static void put_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
}

int sd_quality_svg(const char *path, const char *title, const sd_sweep_row *rows, int n, char *err)
{
    /* Axis ranges: whole bits on x, whole decades of KLD on y. */
    double xmin = INFINITY, xmax = -INFINITY, kmin = INFINITY, kmax = -INFINITY;
    int n_ok = 0, any_zero = 0, any_fb = 0;
    for (int i = 0; i < n; i++) {
        if (!rows[i].ok) continue;
        n_ok++;
        xmin = fmin(xmin, rows[i].bpw);
        xmax = fmax(xmax, rows[i].bpw);
        double k = rows[i].r.kld.mean;
        if (k > 0) { kmin = fmin(kmin, k); kmax = fmax(kmax, k); } else any_zero = 1;
        any_fb |= rows[i].n_fallback > 0;
    }
    if (!n_ok) return sd_errf(err, "%s: no measured format to plot", path);
    if (!isfinite(kmin)) kmin = kmax = 1e-6;   /* every KLD was 0: any decade will do */
    double x0 = floor(xmin) - 1, x1 = ceil(xmax) + 1;
    int xstep = x1 - x0 > 12 ? 2 : 1;
    double y0 = floor(log10(kmin)) - (any_zero ? 1 : 0), y1 = ceil(log10(kmax));
    if (y1 <= y0) y1 = y0 + 1;
    const double pw = W - ML - MR, ph = H - MT - MB;

    FILE *f = fopen(path, "w");
    if (!f) return sd_errf(err, "%s: cannot create the file", path);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H);
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    fprintf(f, "<text x=\"%d\" y=\"28\" font-size=\"13.5\" font-weight=\"bold\">", ML);
    put_text(f, title);
    fputs("</text>\n", f);

    /* Grid and tick labels. */
    for (double x = x0; x <= x1 + 1e-9; x += xstep) {
        double px = ML + (x - x0) / (x1 - x0) * pw;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#e4e4e4\"/>\n", px, MT, px, H - MB);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", px, H - MB + 18, x);
    }
    for (double y = y0; y <= y1 + 1e-9; y += 1) {
        double py = MT + (y1 - y) / (y1 - y0) * ph;
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", ML, py, W - MR, py);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">1e%d</text>\n", ML - 6, py + 4, (int)y);
    }
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#444\"/>\n", ML, MT,
            pw, ph);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">bits per weight (whole file)</text>\n",
            ML + pw / 2, H - MB + 40);
    fprintf(f, "<text transform=\"translate(20 %.1f) rotate(-90)\" text-anchor=\"middle\">"
               "mean KL divergence vs base (nats/token, log scale)</text>\n", MT + ph / 2);

    /* Points, then labels placed where they do not cover each other. */
    point *pts = calloc((size_t)n_ok, sizeof *pts);
    char (*text)[96] = calloc((size_t)n, sizeof *text);
    if (!pts || !text) {
        free(pts);
        free(text);
        fclose(f);
        remove(path);
        return sd_errf(err, "out of memory");
    }
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!rows[i].ok) continue;
        double kl = rows[i].r.kld.mean;
        double ly = kl > 0 ? log10(kl) : y0;   /* exact 0 sits on the bottom edge */
        pts[k].px = ML + (rows[i].bpw - x0) / (x1 - x0) * pw;
        pts[k].py = MT + (y1 - ly) / (y1 - y0) * ph;
        pts[k++].i = i;
        snprintf(text[i], sizeof text[i], "%s%s%s", rows[i].type, rows[i].n_fallback > 0 ? "*" : "",
                 kl > 0 ? "" : " (KLD 0)");
    }
    qsort(pts, (size_t)n_ok, sizeof *pts, by_py);
    /* Formats that came out identical (a format that fell back entirely to
     * another) share one dot and one label. */
    for (int a = 0; a < n_ok; a++)
        for (int b = 0; b < a && !pts[a].merged; b++)
            if (!pts[b].merged && pts[b].px == pts[a].px && pts[b].py == pts[a].py) {
                char *dst = text[pts[b].i];
                size_t l = strlen(dst), room = sizeof text[0] - l;
                if (room > 3 + strlen(text[pts[a].i])) {
                    memcpy(dst + l, " = ", 3);
                    strcpy(dst + l + 3, text[pts[a].i]);
                }
                pts[a].merged = 1;
            }
    place_labels(pts, n_ok, text, ML + 2, W - 4);
    /* Leader lines under the dots, dots under the labels. */
    for (int a = 0; a < n_ok; a++) {
        if (pts[a].merged) continue;
        double near_x = pts[a].anchor_end ? pts[a].lx + 2 : pts[a].lx - 2;
        if (fabs(pts[a].ly - 4 - pts[a].py) > 3 || fabs(near_x - pts[a].px) > 9)
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#aaa\"/>\n", pts[a].px,
                    pts[a].py, near_x, pts[a].ly - 4);
    }
    for (int a = 0; a < n_ok; a++)
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"%s\" stroke=\"#1f5fa8\" stroke-width=\"1.5\"/>\n",
                pts[a].px, pts[a].py, rows[pts[a].i].n_fallback > 0 ? "white" : "#1f5fa8");
    for (int a = 0; a < n_ok; a++)
        if (!pts[a].merged)
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\"%s>%s</text>\n", pts[a].lx, pts[a].ly,
                pts[a].anchor_end ? " text-anchor=\"end\"" : "", text[pts[a].i]);
    free(text);
    free(pts);
    if (any_fb)
        fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"#444\">* hollow: some matrices fell back to another "
                   "format (rows do not fit the block); see the table</text>\n", ML, H - 8);
    fputs("</svg>\n", f);
    if (fclose(f)) { remove(path); return sd_errf(err, "%s: cannot write the file", path); }
    return 0;
}
