/* Seeded random numbers for prompts and arrivals (splitmix64: small, fast,
 * the same on every machine) and the gamma gaps of vLLM's arrival process. */
#include <math.h>

#include "bench/url.h"

void sd_rng_seed(sd_rng *r, uint64_t seed) { r->s = seed ^ 0x9e3779b97f4a7c15ull; }

uint64_t sd_rng_next(sd_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double sd_rng_uniform(sd_rng *r) { return (double)(sd_rng_next(r) >> 11) * 0x1.0p-53; }

static double normal(sd_rng *r)
{
    double u1 = sd_rng_uniform(r), u2 = sd_rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
}

/* Marsaglia and Tsang (2000); shape < 1 by the boost U^(1/shape). */
double sd_rng_gamma(sd_rng *r, double shape, double scale)
{
    if (shape < 1.0) {
        double u = sd_rng_uniform(r);
        return sd_rng_gamma(r, shape + 1.0, scale) * pow(1.0 - u, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = normal(r);
            v = 1.0 + c * x;
        } while (v <= 0);
        v = v * v * v;
        double u = sd_rng_uniform(r);
        if (u < 1.0 - 0.0331 * x * x * x * x) return d * v * scale;
        if (log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) return d * v * scale;
    }
}

void sd_url_arrivals(double rate, double burstiness, uint64_t seed, int n, double *t_s)
{
    sd_rng r;
    sd_rng_seed(&r, seed);
    double t = 0;
    for (int i = 0; i < n; i++) {
        t_s[i] = t;   /* the first request goes at once, as in vLLM */
        if (isfinite(rate) && rate > 0) t += sd_rng_gamma(&r, burstiness, 1.0 / (rate * burstiness));
    }
}
