/* Choosing the next token from logits.
 *
 * temp <= 0: greedy (argmax; the lowest id wins a tie).
 * Otherwise, in llama.cpp's default order:
 *   top-k  keep the k highest logits (ties: lower id first);
 *   top-p  keep the smallest head of the sorted list whose probability
 *          (softmax at temperature 1) reaches p;
 *   min-p  keep tokens whose probability is at least min_p times the best one's;
 *   then divide by the temperature, softmax, and draw with a seeded
 *   splitmix64 generator (the same seed gives the same sequence).
 * Non-finite logits are never chosen unless every logit is non-finite (then 0).
 * All buffers are allocated in sd_sampler_new: sampling allocates nothing. */
#include <math.h>
#include <stdlib.h>

#include "showdown.h"

typedef struct { float logit; int32_t id; } cand;

struct sd_sampler {
    sd_sampler_params p;
    int n_vocab;
    uint64_t rng;
    cand *all;      /* every finite logit; a max-heap while sorting */
    cand *sorted;   /* candidates popped in order, best first */
};

sd_sampler_params sd_sampler_default_params(void)
{
    return (sd_sampler_params){.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .seed = 0x5eed};
}

sd_sampler *sd_sampler_new(const sd_sampler_params *p, int n_vocab)
{
    if (!p || n_vocab <= 0) return NULL;
    sd_sampler *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->p = *p;
    s->n_vocab = n_vocab;
    s->rng = p->seed;
    s->all = malloc((size_t)n_vocab * sizeof *s->all);
    s->sorted = malloc((size_t)n_vocab * sizeof *s->sorted);
    if (!s->all || !s->sorted) { sd_sampler_free(s); return NULL; }
    return s;
}

void sd_sampler_free(sd_sampler *s)
{
    if (!s) return;
    free(s->all);
    free(s->sorted);
    free(s);
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 53 random bits. */
static double uniform01(uint64_t *state) { return (double)(splitmix64(state) >> 11) * 0x1.0p-53; }

static int32_t argmax(const float *logits, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best] || (isnan(logits[best]) && !isnan(logits[i]))) best = i;
    return best;
}

/* a ranks above b: higher logit, then lower id. */
static int above(const cand *a, const cand *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static void sift_down(cand *h, int n, int i)
{
    cand x = h[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && above(&h[c + 1], &h[c])) c++;
        if (!above(&h[c], &x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static cand heap_pop(cand *h, int *n)
{
    cand top = h[0];
    h[0] = h[--*n];
    if (*n) sift_down(h, *n, 0);
    return top;
}

int32_t sd_sample(sd_sampler *s, const float *logits)
{
    const sd_sampler_params *p = &s->p;
    if (p->temp <= 0) return argmax(logits, s->n_vocab);

    int n = 0;
    float max = -INFINITY;
    for (int i = 0; i < s->n_vocab; i++) {
        if (!isfinite(logits[i])) continue;
        s->all[n++] = (cand){logits[i], i};
        if (logits[i] > max) max = logits[i];
    }
    if (n == 0) return 0;

    cand *c = s->all;
    int use_k = p->top_k > 0 && p->top_k < n, use_p = p->top_p < 1.0f;
    if (use_k || use_p) {
        /* Pop from a max-heap only as many candidates as the filters keep. */
        int k = use_k ? p->top_k : n, heap_n = n, m = 0;
        double z = 0, cum = 0;
        for (int i = 0; i < n; i++) z += exp((double)s->all[i].logit - max);
        for (int i = n / 2 - 1; i >= 0; i--) sift_down(s->all, n, i);
        if (use_k) {
            z = 0;
            for (; m < k; m++) {
                s->sorted[m] = heap_pop(s->all, &heap_n);
                z += exp((double)s->sorted[m].logit - max);
            }
        }
        if (use_p) {
            int kept = 0;
            for (int i = 0; i < k; i++) {
                if (i >= m) s->sorted[m++] = heap_pop(s->all, &heap_n);
                cum += exp((double)s->sorted[i].logit - max) / z;
                kept = i + 1;
                if (cum >= p->top_p) break;
            }
            m = kept;
        }
        c = s->sorted;
        n = m;
    }
    if (p->min_p > 0) {
        float floor_logit = max + logf(p->min_p);  /* p_i >= min_p * p_max */
        int m = 0;
        for (int i = 0; i < n; i++)
            if (c[i].logit >= floor_logit || c[i].logit == max) c[m++] = c[i];
        n = m;  /* the best candidate always survives (even for min_p > 1) */
    }

    double total = 0;
    for (int i = 0; i < n; i++) total += exp(((double)c[i].logit - max) / p->temp);
    double u = uniform01(&s->rng) * total;
    for (int i = 0; i < n; i++) {
        u -= exp(((double)c[i].logit - max) / p->temp);
        if (u < 0) return c[i].id;
    }
    return c[n - 1].id;
}
