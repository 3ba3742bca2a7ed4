/* Mean and sample standard deviation (two passes: no cancellation). */
#include <math.h>

#include "bench/stats.h"

double sd_mean(const double *x, int n)
{
    if (n <= 0) return NAN;
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return s / n;
}

double sd_stddev(const double *x, int n)
{
    if (n < 2) return 0;
    double m = sd_mean(x, n), s = 0;
    for (int i = 0; i < n; i++) s += (x[i] - m) * (x[i] - m);
    return sqrt(s / (n - 1));
}
