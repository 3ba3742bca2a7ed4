/* Log-softmax, KL divergence and descriptive statistics (see kld.h). */
#include <math.h>
#include <stdlib.h>

#include "eval/kld.h"

int sd_log_softmax(const float *logits, int n, double *out)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    /* Shift by the maximum so exp never overflows. */
    double mx = logits[best], sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    double lse = mx + log(sum);
    for (int i = 0; i < n; i++) out[i] = (double)logits[i] - lse;
    return best;
}

double sd_kld_row(const double *logp_base, const double *logp_model, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) {
        /* Equal rows give exactly 0 term by term; a base probability that
         * underflowed to 0 contributes nothing (0 * log 0 = 0). */
        double p = exp(logp_base[i]);
        if (p > 0) s += p * (logp_base[i] - logp_model[i]);
    }
    return s;
}

void sd_mean_se(const double *x, int64_t n, double *mean, double *se)
{
    double m = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) m += x[i];
    m = n > 0 ? m / (double)n : NAN;
    /* Two passes: sum-of-squares minus square-of-sum cancels badly when the
     * values are tiny (KLD of a near-lossless format). */
    for (int64_t i = 0; i < n; i++) ss += (x[i] - m) * (x[i] - m);
    *mean = m;
    *se = n > 1 ? sqrt(ss / (double)(n - 1) / (double)n) : 0;
}

double sd_percentile(const double *sorted, int64_t n, double frac)
{
    if (n <= 0) return NAN;
    if (frac <= 0) return sorted[0];
    if (frac >= 1) return sorted[n - 1];
    double pos = frac * (double)(n - 1);
    int64_t i = (int64_t)pos;
    double f = pos - (double)i;
    int64_t j = i + 1 < n ? i + 1 : n - 1;
    return (1 - f) * sorted[i] + f * sorted[j];
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void sd_dist_of(double *x, int64_t n, sd_dist *d)
{
    sd_mean_se(x, n, &d->mean, &d->se);
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    d->min = sd_percentile(x, n, 0);
    d->max = sd_percentile(x, n, 1);
    d->median = sd_percentile(x, n, 0.5);
    d->p90 = sd_percentile(x, n, 0.90);
    d->p95 = sd_percentile(x, n, 0.95);
    d->p99 = sd_percentile(x, n, 0.99);
    d->p999 = sd_percentile(x, n, 0.999);
}
