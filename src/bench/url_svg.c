/* The curve by which users pick an engine: latency against throughput across
 * the sweep. Two panels, TTFT and TPOT, each with p50 and p99, x = output
 * tokens/s of each sweep point, points joined in sweep order and labelled
 * with their concurrency or rate. Same look as the bench report
 * (report_svg.c); x is numeric here, so the drawing is its own. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench/report_chart.h"
#include "bench/url.h"

static const char *colors[4] = {"#1f77b4", "#aec7e8", "#d62728", "#ff9896"};

typedef struct { double lo, hi; int log; } axis;

static double nice(double range)
{
    double raw = range / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

static void make_axis(axis *a, double lo, double hi, int allow_log)
{
    a->log = allow_log && lo > 0 && hi / lo > 20;
    if (a->log) { a->lo = pow(10, floor(log10(lo))); a->hi = pow(10, ceil(log10(hi))); return; }
    a->lo = 0;
    if (!(hi > 0)) hi = 1;
    double st = nice(hi);
    a->hi = ceil(hi * 1.05 / st) * st;
}

static double map(const axis *a, double v, double p0, double p1)
{
    double t = a->log ? (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo)) : (v - a->lo) / (a->hi - a->lo);
    return p0 + t * (p1 - p0);
}

static void label(char *b, size_t n, double v)
{
    if (v >= 1e4) snprintf(b, n, "%gk", v / 1e3);
    else snprintf(b, n, "%g", v);
}

static void point_name(char *b, size_t n, const sd_url_metrics *m)
{
    if (m->concurrency > 0) snprintf(b, n, "c=%d", m->concurrency);
    else if (isfinite(m->request_rate)) snprintf(b, n, "%g/s", m->request_rate);
    else snprintf(b, n, "inf/s");
}

static void panel(FILE *f, const sd_url_metrics *m, int n, int tpot, double x, double y, double w, double h)
{
    double L = x + 66, R = x + w - 150, T = y + 40, B = y + h - 50;
    fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='white' stroke='#bbbbbb'/>\n", x + 4, y + 4, w - 8, h - 8);
    fprintf(f, "<text x='%.1f' y='%.1f' font-size='15' font-weight='bold'>%s against output throughput</text>\n", x + 16, y + 26,
            tpot ? "time per output token" : "time to first token");
    double xhi = 0, ylo = INFINITY, yhi = 0;
    int any = 0;
    for (int i = 0; i < n; i++) {
        const sd_url_dist *d = tpot ? &m[i].tpot : &m[i].ttft;
        if (!isfinite(m[i].output_throughput) || !(d->median > 0) || !isfinite(d->p99)) continue;
        any = 1;
        if (m[i].output_throughput > xhi) xhi = m[i].output_throughput;
        if (d->median < ylo) ylo = d->median;
        if (d->p99 > yhi) yhi = d->p99;
    }
    if (!any) {
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='13' fill='#666666' text-anchor='middle'>no completed requests%s</text>\n",
                x + w / 2, y + h / 2, tpot ? " with more than one output token" : "");
        return;
    }
    axis ax, ay;
    make_axis(&ax, 0, xhi, 0);
    make_axis(&ay, ylo, yhi, 1);
    char b[32];
    double st = nice(ax.hi);
    for (double v = 0; v <= ax.hi * 1.0001; v += st) {
        double px = map(&ax, v, L, R);
        label(b, sizeof b, v);
        fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#e0e0e0'/>\n", px, T, px, B);
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='11' text-anchor='middle'>%s</text>\n", px, B + 16, b);
    }
    if (ay.log) {
        for (double v = ay.lo; v <= ay.hi * 1.0001; v *= 10) {
            double py = map(&ay, v, B, T);
            label(b, sizeof b, v);
            fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#d0d0d0'/>\n", L, py, R, py);
            fprintf(f, "<text x='%.1f' y='%.1f' font-size='11' text-anchor='end'>%s</text>\n", L - 5, py + 4, b);
        }
    } else {
        double sy = nice(ay.hi);
        for (double v = 0; v <= ay.hi * 1.0001; v += sy) {
            double py = map(&ay, v, B, T);
            label(b, sizeof b, v);
            fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#e0e0e0'/>\n", L, py, R, py);
            fprintf(f, "<text x='%.1f' y='%.1f' font-size='11' text-anchor='end'>%s</text>\n", L - 5, py + 4, b);
        }
    }
    fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='black'/>\n", L, B, R, B);
    fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='black'/>\n", L, T, L, B);
    fprintf(f, "<text x='%.1f' y='%.1f' font-size='12' text-anchor='middle'>output tokens/s (all requests)</text>\n", (L + R) / 2, B + 38);
    fprintf(f, "<text transform='translate(%.1f,%.1f) rotate(-90)' font-size='12' text-anchor='middle'>%s ms%s</text>\n",
            x + 18, (T + B) / 2, tpot ? "TPOT" : "TTFT", ay.log ? " (log scale)" : "");
    for (int s = 0; s < 2; s++) {   /* p50, then p99 */
        const char *col = colors[tpot * 2 + s];
        int pen = 0;
        for (int i = 0; i < n; i++) {
            const sd_url_dist *d = tpot ? &m[i].tpot : &m[i].ttft;
            double v = s ? d->p99 : d->median;
            if (!isfinite(m[i].output_throughput) || !(v > 0)) continue;
            if (!pen) fprintf(f, "<polyline fill='none' stroke-width='2' stroke='%s' points='", col);
            fprintf(f, "%s%.1f,%.1f", pen ? " " : "", map(&ax, m[i].output_throughput, L, R), map(&ay, v, B, T));
            pen = 1;
        }
        if (pen) fputs("'/>\n", f);
        for (int i = 0; i < n; i++) {
            const sd_url_dist *d = tpot ? &m[i].tpot : &m[i].ttft;
            double v = s ? d->p99 : d->median;
            if (!isfinite(m[i].output_throughput) || !(v > 0)) continue;
            double px = map(&ax, m[i].output_throughput, L, R), py = map(&ay, v, B, T);
            fprintf(f, "<circle cx='%.1f' cy='%.1f' r='3.5' fill='%s'/>\n", px, py, col);
            if (s == 0) {
                point_name(b, sizeof b, &m[i]);
                fprintf(f, "<text x='%.1f' y='%.1f' font-size='10' fill='#444444'>%s</text>\n", px + 5, py + 12, b);
            }
        }
        double lx = R + 14, ly = T + 6 + 18 * s;
        fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='%s' stroke-width='2'/>", lx, ly - 4, lx + 14, ly - 4, col);
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='11'>%s %s</text>\n", lx + 20, ly, tpot ? "TPOT" : "TTFT", s ? "p99" : "p50");
    }
}

void sd_url_svg(FILE *f, const sd_url_metrics *m, int n, const sd_url_run_desc *d)
{
    const double W = 1240, PW = 620, PH = 420, TOP = 56, H = TOP + PH + 60;
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' viewBox='0 0 %.0f %.0f' "
               "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'>\n", W, H, W, H);
    fprintf(f, "<rect width='100%%' height='100%%' fill='#f6f6f6'/>\n");
    fprintf(f, "<text x='20' y='34' font-size='20' font-weight='bold'>showdown bench --url: latency against throughput</text>\n");
    int failed = 0;
    for (int i = 0; i < n; i++) failed += m[i].failed;
    fprintf(f, "<text x='%.0f' y='34' font-size='13' text-anchor='end' fill='#444444'>%d sweep points%s</text>\n", W - 20, n,
            failed ? ", some requests failed (see the table)" : "");
    panel(f, m, n, 0, 0, TOP, PW, PH);
    panel(f, m, n, 1, PW, TOP, PW, PH);
    fprintf(f, "<text x='20' y='%.0f' font-size='12' fill='#333333'>server: ", H - 32);
    svg_text(f, d->url);
    fputs("; model: ", f);
    svg_text(f, d->model);
    fprintf(f, "; endpoint: %s; prompts: ", d->endpoint);
    svg_text(f, d->prompt_source);
    fputs("</text>\n", f);
    fprintf(f, "<text x='20' y='%.0f' font-size='12' fill='#333333'>TTFT: request sent to first text; TPOT: (E2E - TTFT) / "
               "(output tokens - 1); points labelled with their concurrency (c=) or request rate</text>\n", H - 14);
    fputs("</svg>\n", f);
}
