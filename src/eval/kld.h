/* The arithmetic of `showdown ppl`: log-softmax of one logits row, the KL
 * divergence between two such rows, and the descriptive statistics reported
 * over all scored tokens. Definitions follow llama.cpp's perplexity tool so
 * the numbers can be set side by side with the ecosystem's. */
#ifndef SD_KLD_H
#define SD_KLD_H

#include <stdint.h>

/* out[i] = log softmax(logits)[i], in double (n_vocab 32000+ rows sum many
 * tiny terms). Returns the argmax (first index on ties). */
int sd_log_softmax(const float *logits, int n, double *out);

/* KL(base || model) = sum_i p_base(i) * (log p_base(i) - log p_model(i)),
 * from two log-softmax rows. Exactly 0 when the rows are equal. */
double sd_kld_row(const double *logp_base, const double *logp_model, int n);

/* Mean and its standard error (sample sd / sqrt(n)); se is 0 when n < 2. */
void sd_mean_se(const double *x, int64_t n, double *mean, double *se);

/* Percentile of sorted values, linear interpolation between the two nearest
 * ranks: position frac * (n - 1), as llama.cpp's tool computes it (so frac
 * 0.5 is the usual median, the mean of the middle two when n is even).
 * frac <= 0 gives the minimum, >= 1 the maximum; NaN when n is 0. */
double sd_percentile(const double *sorted, int64_t n, double frac);

/* Distribution of one per-token quantity. */
typedef struct {
    double mean, se, min, max, median, p90, p95, p99, p999;
} sd_dist;

/* Sorts x in place and fills d. */
void sd_dist_of(double *x, int64_t n, sd_dist *d);

#endif
