/* The wall, drawn: for each device, predicted decode speed as the same model
 * is stored in more and more bits per weight. A discrete GPU's curve falls off
 * a cliff where the weights stop fitting in VRAM; a unified-memory curve only
 * bends as 1/size. x is linear in GB, y logarithmic in tokens/s. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "showdown.h"
#include "plan/plan_svg.h"

enum { W = 960, H = 600, ML = 80, MR = 230, MT = 64, MB = 70, NS = 300 };
static const char *colors[] = {"#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

/* One bpw for every tensor: a smooth stand-in for "the same model, bigger file". */
static void uniform_recipe(double bpw, sd_recipe *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "sweep");
    r->bpw_body = r->bpw_experts = r->bpw_output = r->bpw_embd = bpw;
}

typedef struct { double x0, x1, ly0, ly1; } axes;

/* Copies s with the XML specials escaped. */
static void esc_to(char *out, size_t n, const char *s)
{
    size_t k = 0;
    for (; *s && k + 6 < n; s++) {
        const char *r = *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : *s == '&' ? "&amp;" : NULL;
        if (r) { memcpy(out + k, r, strlen(r)); k += strlen(r); }
        else out[k++] = *s;
    }
    out[k] = 0;
}

/* Text with a white halo (outline pass, then fill pass) so lines under it stay readable. */
static void label(FILE *f, double x, double y, const char *col, int size, const char *anchor, const char *text)
{
    char t[256];
    esc_to(t, sizeof t, text);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" text-anchor=\"%s\" fill=\"white\" stroke=\"white\" "
               "stroke-width=\"4\" stroke-linejoin=\"round\">%s</text>\n", x, y, size, anchor, t);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" text-anchor=\"%s\" fill=\"%s\">%s</text>\n", x, y, size,
            anchor, col, t);
}

static double px(const axes *a, double gb) { return ML + (gb - a->x0) / (a->x1 - a->x0) * (W - ML - MR); }
static double py(const axes *a, double ts) { return H - MB - (log10(ts) - a->ly0) / (a->ly1 - a->ly0) * (H - MT - MB); }

static void esc(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
}

int sd_plan_svg(const char *path, const sd_model_ref *m, const sd_hw *hws, const sd_hw *const *hosts, int nh,
                const sd_recipe *marks, int nm, const sd_plan_opts *o, char *err)
{
    static double gb[8][NS], ts[8][NS];
    if (nh > 8) nh = 8;
    double lo = INFINITY, hi = 0, xmax = 0;
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < NS; i++) {
            sd_recipe r;
            uniform_recipe(2.0 + 15.0 * i / (NS - 1), &r);
            sd_plan_result res;
            if (sd_plan_predict(m, &r, &hws[h], hosts[h], o, &res, err)) return -1;
            gb[h][i] = res.cost.weights_bytes / 1e9;
            ts[h][i] = res.runs ? res.tg_ts : NAN;
            if (gb[h][i] > xmax) xmax = gb[h][i];
            if (isfinite(ts[h][i])) {
                if (ts[h][i] < lo) lo = ts[h][i];
                if (ts[h][i] > hi) hi = ts[h][i];
            }
        }
    if (!(hi > 0)) { snprintf(err, SD_ERR_LEN, "%s: the model runs on none of these devices; nothing to plot", m->shape->name); return -1; }
    axes a = {0, ceil(xmax / 20) * 20, floor(log10(lo)), ceil(log10(hi))};
    if (a.ly1 - a.ly0 < 1) a.ly1 = a.ly0 + 1;

    FILE *f = fopen(path, "w");
    if (!f) { snprintf(err, SD_ERR_LEN, "%s: cannot write: %s", path, strerror(errno)); return -1; }
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"13\">\n", W, H, W, H);

    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    fprintf(f, "<text x=\"%d\" y=\"28\" font-size=\"18\" font-weight=\"bold\">Predicted decode speed vs weights size: ", ML);
    esc(f, m->shape->name);
    fprintf(f, "</text>\n<text x=\"%d\" y=\"48\" fill=\"#555\">showdown plan roofline, context %d, decode after a %d-token prompt; "
               "curves sweep 2-17 bits per weight, dots are real formats</text>\n", ML, o->n_ctx, o->n_prompt);
    /* grid: x every 20 GB, y at 1-2-5 steps */
    for (double x = a.x0; x <= a.x1 + 1e-9; x += 20) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#e5e5e5\"/>\n", px(&a, x), MT, px(&a, x), H - MB);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.0f</text>\n", px(&a, x), H - MB + 18, x);
    }
    for (int e = (int)a.ly0; e <= (int)a.ly1; e++)
        for (int k = 0; k < 3; k++) {
            double v = pow(10, e) * (k == 0 ? 1 : k == 1 ? 2 : 5);
            if (log10(v) > a.ly1 + 1e-9) break;
            fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"%s\"/>\n", ML, py(&a, v), W - MR,
                    py(&a, v), k ? "#f0f0f0" : "#d8d8d8");
            fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", ML - 8, py(&a, v) + 4, v);
        }
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n", ML, MT,
            W - ML - MR, H - MT - MB);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">weights size (GB)</text>\n", (ML + W - MR) / 2, H - 24);
    fprintf(f, "<text transform=\"translate(22 %d) rotate(-90)\" text-anchor=\"middle\">decode tokens/s (log scale)</text>\n",
            (MT + H - MB) / 2);

    for (int h = 0; h < nh; h++) {
        const char *col = colors[h % 8];
        /* the wall: where a discrete GPU stops holding the whole model */
        if (hws[h].kind == SD_HW_GPU)
            for (int i = 1; i < NS; i++) {
                sd_recipe r0, r1;
                sd_plan_result a0, a1;
                uniform_recipe(2.0 + 15.0 * (i - 1) / (NS - 1), &r0);
                uniform_recipe(2.0 + 15.0 * i / (NS - 1), &r1);
                if (sd_plan_predict(m, &r0, &hws[h], hosts[h], o, &a0, err) ||
                    sd_plan_predict(m, &r1, &hws[h], hosts[h], o, &a1, err)) { fclose(f); return -1; }
                if (a0.fits && !a1.fits) {
                    double x = px(&a, gb[h][i]);
                    fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" stroke-dasharray=\"5 4\"/>\n",
                            x, MT, x, H - MB, col);
                    char t[96];
                    snprintf(t, sizeof t, "%.40s VRAM wall", hws[h].id);
                    label(f, x + 4, MT + 16 + 30 * h, col, 12, "start", t);
                    label(f, x + 4, MT + 30 + 30 * h, col, 11, "start", "right of it: layers run from host RAM");
                }
            }
        /* the curve, broken where the model cannot run at all */
        int open = 0;
        for (int i = 0; i < NS; i++) {
            if (!isfinite(ts[h][i])) {
                if (open) fprintf(f, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\"/>\n", col);
                open = 0;
                continue;
            }
            fprintf(f, open ? " %.1f,%.1f" : "<polyline points=\"%.1f,%.1f", px(&a, gb[h][i]), py(&a, ts[h][i]));
            open = 1;
        }
        if (open) fprintf(f, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\"/>\n", col);
    }
    /* markers and labels last, so no curve is drawn over them */
    for (int h = 0; h < nh; h++) {
        const char *col = colors[h % 8];
        for (int q = 0; q < nm; q++) {
            sd_plan_result r;
            if (sd_plan_predict(m, &marks[q], &hws[h], hosts[h], o, &r, err)) { fclose(f); return -1; }
            double x = px(&a, r.cost.weights_bytes / 1e9);
            if (!r.runs) {
                char t[64];
                snprintf(t, sizeof t, "x %.23s: does not fit", marks[q].name);
                label(f, x, H - MB - 8 - 14 * h, col, 12, "middle", t);
                continue;
            }
            double y = py(&a, r.tg_ts);
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\" stroke=\"white\"/>\n", x, y, col);
            char t[64];
            snprintf(t, sizeof t, "%.23s %.1f t/s", marks[q].name, r.tg_ts);
            label(f, x + 7, y - 8, col, 12, "start", t);
        }
        /* legend */
        int ly = MT + 10 + 52 * h;
        fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"3\"/>\n", W - MR + 14, ly,
                W - MR + 40, ly, col);
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">", W - MR + 46, ly + 4);
        esc(f, hws[h].id);
        fprintf(f, "</text>\n<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#555\">%.0f GiB usable, %.0f GB/s</text>\n",
                W - MR + 46, ly + 19, hws[h].usable_gib, hws[h].bw_gbps);
        if (hosts[h]) {
            fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#555\">host: ", W - MR + 46, ly + 33);
            esc(f, hosts[h]->id);
            fprintf(f, " (%.0f GB/s)</text>\n", hosts[h]->bw_gbps);
        }
    }
    fputs("</svg>\n", f);
    if (fclose(f)) { snprintf(err, SD_ERR_LEN, "%s: write failed", path); return -1; }
    return 0;
}
