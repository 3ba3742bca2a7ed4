/* The HTML report: the same SVG inline, then every row as a table. */
#include <math.h>
#include <stdio.h>

#include "bench/report.h"
#include "bench/report_chart.h"

static void num(FILE *f, double v, const char *fmt)
{
    if (isfinite(v)) fprintf(f, fmt, v);
    else fputs("n/a", f);
}

void sd_report_html(FILE *f, const sd_report_row *rows, int n)
{
    fputs("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>showdown bench report</title>\n"
          "<style>body{font-family:sans-serif;margin:20px}table{border-collapse:collapse;font-size:13px}"
          "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td.l,th.l{text-align:left}</style>\n"
          "</head><body>\n", f);
    sd_report_svg(f, rows, n);
    fputs("<table>\n<tr><th class='l'>model</th><th class='l'>type</th><th>threads</th><th>kv</th><th class='l'>test</th>"
          "<th>tokens/s</th><th>sd</th><th>ceiling t/s</th><th>tokens/J</th><th class='l'>error</th></tr>\n", f);
    for (int i = 0; i < n; i++) {
        const sd_report_row *r = &rows[i];
        fputs("<tr><td class='l'>", f);
        svg_text(f, r->model);
        fputs("</td><td class='l'>", f);
        svg_text(f, r->type);
        fprintf(f, "</td><td>%d</td><td>", r->threads);
        svg_text(f, r->kv);
        fputs("</td><td class='l'>", f);
        svg_text(f, r->test);
        fputs("</td><td>", f);
        num(f, r->avg_ts, "%.2f");
        fputs("</td><td>", f);
        num(f, r->stddev_ts, "%.2f");
        fputs("</td><td>", f);
        num(f, r->roofline_ts, "%.0f");
        fputs("</td><td>", f);
        num(f, r->tokens_per_joule, "%.2f");
        fputs("</td><td class='l'>", f);
        svg_text(f, r->error);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n</body></html>\n", f);
}
