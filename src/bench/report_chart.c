/* Drawing one chart: axes with readable ticks (log scale when values span
 * more than 20x, as ceilings often do), error bars of one sd, the ceiling as
 * a dashed line (lines) or a black tick (bars), and a legend on the right. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench/report_chart.h"

static const char *palette[CHART_MAX_SER] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                             "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};

void svg_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '&') fputs("&amp;", f);
        else if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

/* Centred grey text broken at spaces into lines of at most `width` chars. */
static void wrapped_text(FILE *f, const char *s, double cx, double y, int width)
{
    char line[256];
    while (*s) {
        int n = (int)strlen(s), cut = n;
        if (n > width) {
            cut = width;
            while (cut > 0 && s[cut] != ' ') cut--;
            if (cut == 0) cut = width;
        }
        if (cut > (int)sizeof line - 1) cut = (int)sizeof line - 1;
        memcpy(line, s, (size_t)cut);
        line[cut] = 0;
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='13' fill='#666666' text-anchor='middle'>", cx, y);
        svg_text(f, line);
        fputs("</text>\n", f);
        s += cut;
        while (*s == ' ') s++;
        y += 18;
    }
}

int chart_cat(chart *c, const char *name)
{
    for (int i = 0; i < c->n_cat; i++)
        if (!strcmp(c->cat[i], name)) return i;
    if (c->n_cat == CHART_MAX_CAT) return -1;
    snprintf(c->cat[c->n_cat], sizeof c->cat[0], "%s", name);
    for (int s = 0; s < CHART_MAX_SER; s++)
        c->s[s].y[c->n_cat] = c->s[s].sd[c->n_cat] = c->s[s].ceil[c->n_cat] = NAN;
    return c->n_cat++;
}

int chart_series_idx(chart *c, const char *name)
{
    for (int i = 0; i < c->n_ser; i++)
        if (!strcmp(c->s[i].name, name)) return i;
    if (c->n_ser == CHART_MAX_SER) return -1;
    chart_series *s = &c->s[c->n_ser];
    snprintf(s->name, sizeof s->name, "%s", name);
    for (int k = 0; k < CHART_MAX_CAT; k++) s->y[k] = s->sd[k] = s->ceil[k] = NAN;
    return c->n_ser++;
}

typedef struct { int log; double lo, hi; double top, bottom; } yaxis;

static double ymap(const yaxis *a, double v)
{
    double t = a->log ? (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo)) : (v - a->lo) / (a->hi - a->lo);
    return a->bottom - t * (a->bottom - a->top);
}

static double nice_step(double range)
{
    double raw = range / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

static void fmt_num(char *b, size_t n, double v)
{
    if (v >= 1e6) snprintf(b, n, "%gM", v / 1e6);
    else if (v >= 1e4) snprintf(b, n, "%gk", v / 1e3);
    else snprintf(b, n, "%g", v);
}

static void ticks(FILE *f, const yaxis *a, double x0, double x1)
{
    char b[32];
    if (a->log) {
        double decades = log10(a->hi) - log10(a->lo);
        for (double d = a->lo; d <= a->hi * 1.0001; d *= 10)
            for (int m = 1; m < 10; m++) {
                double v = d * m;
                if (v > a->hi * 1.0001) break;
                int major = m == 1, label = major || (decades <= 2 && (m == 2 || m == 5));
                double y = ymap(a, v);
                fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='%s' stroke-width='1'/>\n", x0, y, x1, y,
                        major ? "#d0d0d0" : "#eeeeee");
                if (label) {
                    fmt_num(b, sizeof b, v);
                    fprintf(f, "<text x='%.1f' y='%.1f' font-size='11' text-anchor='end'>%s</text>\n", x0 - 5, y + 4, b);
                }
            }
        return;
    }
    double step = nice_step(a->hi - a->lo);
    for (double v = a->lo; v <= a->hi * 1.0001; v += step) {
        double y = ymap(a, v);
        fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#e0e0e0' stroke-width='1'/>\n", x0, y, x1, y);
        fmt_num(b, sizeof b, v);
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='11' text-anchor='end'>%s</text>\n", x0 - 5, y + 4, b);
    }
}

/* Lines through consecutive categories that have a value. */
static void polyline(FILE *f, const yaxis *a, const double *v, int n, double L, double slot, const char *col, const char *style)
{
    int pen = 0;
    for (int k = 0; k <= n; k++) {
        if (k == n || !(v[k] > 0)) {
            if (pen) fprintf(f, "' fill='none' stroke='%s' %s/>\n", col, style);
            pen = 0;
            continue;
        }
        fprintf(f, pen ? " %.1f,%.1f" : "<polyline points='%.1f,%.1f", L + slot * (k + 0.5), ymap(a, v[k]));
        pen = 1;
    }
}

static int make_axis(const chart *c, yaxis *a)
{
    double lo = INFINITY, hi = 0;
    for (int s = 0; s < c->n_ser; s++)
        for (int k = 0; k < c->n_cat; k++) {
            const chart_series *se = &c->s[s];
            if (isfinite(se->y[k]) && se->y[k] > 0) {
                double sd = isfinite(se->sd[k]) ? se->sd[k] : 0;
                if (se->y[k] + sd > hi) hi = se->y[k] + sd;
                double l = se->y[k] - sd > 0 ? se->y[k] - sd : se->y[k];
                if (l < lo) lo = l;
            }
            if (isfinite(se->ceil[k]) && se->ceil[k] > 0) {
                if (se->ceil[k] > hi) hi = se->ceil[k];
                if (se->ceil[k] < lo) lo = se->ceil[k];
            }
        }
    if (!(hi > 0)) return -1;
    a->log = hi / lo > 20;
    if (a->log) { a->lo = pow(10, floor(log10(lo))); a->hi = pow(10, ceil(log10(hi))); }
    else { a->lo = 0; double st = nice_step(hi); a->hi = ceil(hi * 1.05 / st) * st; }
    return 0;
}

void chart_draw(FILE *f, const chart *c, double x, double y, double w, double h)
{
    double L = x + 62, R = x + w - 200, T = y + 34, B = y + h - 48;
    fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='white' stroke='#bbbbbb'/>\n", x + 4, y + 4, w - 8, h - 8);
    fprintf(f, "<text x='%.1f' y='%.1f' font-size='15' font-weight='bold'>", x + 16, y + 24);
    svg_text(f, c->title);
    fputs("</text>\n", f);
    yaxis a = {.top = T, .bottom = B};
    if (c->n_cat == 0 || c->n_ser == 0 || make_axis(c, &a) != 0) {
        wrapped_text(f, c->empty[0] ? c->empty : "nothing to draw in these results", x + w / 2, y + h / 2, (int)(w / 8));
        return;
    }
    ticks(f, &a, L, R);
    fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='black'/>\n", L, B, R, B);
    fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='black'/>\n", L, T, L, B);
    fprintf(f, "<text transform='translate(%.1f,%.1f) rotate(-90)' font-size='12' text-anchor='middle'>", x + 16, (T + B) / 2);
    svg_text(f, c->ylabel);
    fprintf(f, "%s</text>\n", a.log ? " (log scale)" : "");
    fprintf(f, "<text x='%.1f' y='%.1f' font-size='12' text-anchor='middle'>", (L + R) / 2, B + 38);
    svg_text(f, c->xlabel);
    fputs("</text>\n", f);

    double slot = (R - L) / c->n_cat;
    for (int k = 0; k < c->n_cat; k++) {
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='11' text-anchor='middle'>", L + slot * (k + 0.5), B + 16);
        svg_text(f, c->cat[k]);
        fputs("</text>\n", f);
    }
    double bw = c->bars ? slot * 0.8 / c->n_ser : 0;
    int any_ceiling = 0;
    for (int s = 0; s < c->n_ser; s++) {
        const chart_series *se = &c->s[s];
        const char *col = palette[s];
        if (!c->bars) {
            /* ceiling first, underneath */
            for (int k = 0; k < c->n_cat; k++) any_ceiling |= se->ceil[k] > 0;
            polyline(f, &a, se->ceil, c->n_cat, L, slot, col, "stroke-width='1.5' stroke-dasharray='6,4'");
            if (c->n_cat == 1 && se->ceil[0] > 0)   /* a single point: the ceiling as a dash */
                fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='%s' stroke-dasharray='6,4' stroke-width='1.5'/>\n",
                        L + slot * 0.2, ymap(&a, se->ceil[0]), L + slot * 0.8, ymap(&a, se->ceil[0]), col);
            polyline(f, &a, se->y, c->n_cat, L, slot, col, "stroke-width='2'");
        }
        for (int k = 0; k < c->n_cat; k++) {
            if (!(se->y[k] > 0)) continue;
            double cx = c->bars ? L + slot * k + slot * 0.1 + bw * (s + 0.5) : L + slot * (k + 0.5);
            double py = ymap(&a, se->y[k]);
            if (c->bars)
                fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='%s'/>\n", cx - bw * 0.45, py, bw * 0.9, B - py, col);
            else
                fprintf(f, "<circle cx='%.1f' cy='%.1f' r='3.5' fill='%s'/>\n", cx, py, col);
            if (se->sd[k] > 0) {
                double lo = se->y[k] - se->sd[k];
                double y1 = ymap(&a, lo > a.lo ? lo : a.lo), y2 = ymap(&a, se->y[k] + se->sd[k]);
                fprintf(f, "<path d='M%.1f %.1fV%.1fM%.1f %.1fh8M%.1f %.1fh8' stroke='black' stroke-width='1'/>\n",
                        cx, y1, y2, cx - 4, y1, cx - 4, y2);
            }
            if (c->bars && se->ceil[k] > 0) {
                any_ceiling = 1;
                double cy = ymap(&a, se->ceil[k]);
                fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='black' stroke-width='3'/>\n",
                        cx - bw * 0.5, cy, cx + bw * 0.5, cy);
            }
        }
    }
    /* legend */
    double lx = R + 14, ly = T + 6;
    for (int s = 0; s < c->n_ser; s++, ly += 18) {
        if (c->bars) fprintf(f, "<rect x='%.1f' y='%.1f' width='14' height='10' fill='%s'/>\n", lx, ly - 9, palette[s]);
        else fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='%s' stroke-width='2'/><circle cx='%.1f' cy='%.1f' r='3' fill='%s'/>\n",
                     lx, ly - 4, lx + 14, ly - 4, palette[s], lx + 7, ly - 4, palette[s]);
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='11'>", lx + 20, ly);
        char name[30];
        snprintf(name, sizeof name, "%s", c->s[s].name);
        if (strlen(c->s[s].name) > 27) strcpy(name + 25, "..");
        svg_text(f, name);
        fputs("</text>\n", f);
    }
    if (any_ceiling) {
        if (c->bars) fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='black' stroke-width='3'/>", lx, ly - 4, lx + 14, ly - 4);
        else fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#555555' stroke-dasharray='6,4' stroke-width='1.5'/>", lx, ly - 4, lx + 14, ly - 4);
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='11'>ceiling (roofline)</text>\n", lx + 20, ly);
        ly += 18;
    }
    fprintf(f, "<text x='%.1f' y='%.1f' font-size='10' fill='#666666'>bars/whiskers: mean ± sd</text>\n", lx, ly + 4);
}
