/* One chart of the report: categories along x, series of values (mean, sd,
 * ceiling) per category, drawn as lines or grouped bars into an SVG. */
#ifndef SD_REPORT_CHART_H
#define SD_REPORT_CHART_H

#include <stdio.h>

#define CHART_MAX_CAT 24
#define CHART_MAX_SER 10

typedef struct {
    char name[80];
    double y[CHART_MAX_CAT], sd[CHART_MAX_CAT], ceil[CHART_MAX_CAT];   /* NAN: none */
} chart_series;

typedef struct {
    char title[96], xlabel[64], ylabel[64], empty[256];
    int bars;
    int n_cat;
    char cat[CHART_MAX_CAT][40];
    int n_ser;
    chart_series s[CHART_MAX_SER];
} chart;

/* Index of a category / series by name, added when new (-1 when full). */
int chart_cat(chart *c, const char *name);
int chart_series_idx(chart *c, const char *name);
/* Draws the chart into the box (x, y, w, h) of an open <svg>. */
void chart_draw(FILE *f, const chart *c, double x, double y, double w, double h);
/* Text with &, <, >, " escaped. */
void svg_text(FILE *f, const char *s);

#endif
