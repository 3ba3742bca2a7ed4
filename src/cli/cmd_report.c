/* showdown report: draw bench results (JSON lines or a JSON array from
 * `showdown bench`) into an SVG or HTML file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "bench/report.h"
#include "cli/cli.h"

static void report_usage(FILE *out)
{
    fputs("usage: showdown report RESULTS.jsonl -o REPORT.svg|REPORT.html\n\n"
          "Draws tokens/s against threads, context depth and weight format (with the\n"
          "machine's ceiling where bench had a calibration profile) and tokens per joule\n"
          "where energy was measured. RESULTS is `showdown bench -o jsonl` (or -o json) output.\n\n"
          "  -o, --output FILE   .svg or .html (default: report.svg)\n",
          out);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

int cmd_report(int argc, char **argv)
{
    const char *in = NULL, *out = "report.svg";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { report_usage(stdout); return 0; }
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (i + 1 >= argc) return fail("%s needs a file name", a);
            out = argv[++i];
        } else if (a[0] == '-' && a[1]) return fail("unknown option '%s' (showdown report --help)", a);
        else if (in) return fail("one results file at a time (got '%s' and '%s')", in, a);
        else in = a;
    }
    if (!in) return fail("no results file (showdown report RESULTS.jsonl -o report.svg)");
    int html = ends_with(out, ".html") || ends_with(out, ".htm");
    if (!html && !ends_with(out, ".svg")) return fail("-o: '%s' should end in .svg or .html", out);
    sd_report_row *rows;
    int n;
    char err[SD_ERR_LEN];
    if (sd_report_load(in, &rows, &n, err) != 0) return fail("%s", err);
    FILE *f = fopen(out, "w");
    if (!f) { free(rows); return fail("cannot write '%s'", out); }
    if (html) sd_report_html(f, rows, n);
    else sd_report_svg(f, rows, n);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) { free(rows); return fail("writing '%s' failed", out); }
    fprintf(stderr, "report: %d rows from %s -> %s\n", n, in, out);
    free(rows);
    return 0;
}
