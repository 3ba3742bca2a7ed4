/* Mean and standard deviation of repetitions. */
#ifndef SD_STATS_H
#define SD_STATS_H

double sd_mean(const double *x, int n);
/* Sample standard deviation (n - 1 in the denominator, as llama-bench);
 * 0 for fewer than two values. */
double sd_stddev(const double *x, int n);

#endif
