/* The sampler: greedy is argmax, the filters keep what they promise, the seed
 * fixes the sequence, and many draws follow the softmax at the temperature. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "showdown.h"

static sd_sampler *make(float temp, int top_k, float top_p, float min_p, uint64_t seed, int n_vocab)
{
    sd_sampler_params p = {.temp = temp, .top_k = top_k, .top_p = top_p, .min_p = min_p, .seed = seed};
    sd_sampler *s = sd_sampler_new(&p, n_vocab);
    cr_assert_not_null(s);
    return s;
}

/* Counts of n draws. */
static void draw(sd_sampler *s, const float *logits, int n_vocab, int n, int *count)
{
    memset(count, 0, (size_t)n_vocab * sizeof *count);
    for (int i = 0; i < n; i++) {
        int32_t id = sd_sample(s, logits);
        cr_assert(id >= 0 && id < n_vocab, "id %d out of range", id);
        count[id]++;
    }
}

/* Pearson chi-square of counts against probabilities p. */
static double chi_square(const int *count, const double *p, int k, int n)
{
    double x2 = 0;
    for (int i = 0; i < k; i++) {
        double e = p[i] * n;
        if (e > 0) x2 += (count[i] - e) * (count[i] - e) / e;
    }
    return x2;
}

Test(sampler, greedy_is_argmax_lowest_id_on_ties)
{
    float logits[6] = {0.5f, 3.0f, -1.0f, 3.0f, 2.9f, NAN};
    sd_sampler *s = make(0, 0, 1, 0, 1, 6);
    for (int i = 0; i < 5; i++) cr_assert_eq(sd_sample(s, logits), 1);
    logits[0] = 7;
    cr_assert_eq(sd_sample(s, logits), 0);
    sd_sampler_free(s);
}

Test(sampler, defaults)
{
    sd_sampler_params p = sd_sampler_default_params();
    cr_assert(p.temp > 0 && p.top_k > 0 && p.top_p <= 1 && p.min_p >= 0);
    cr_assert_null(sd_sampler_new(&p, 0));
}

Test(sampler, same_seed_same_sequence)
{
    float logits[50];
    for (int i = 0; i < 50; i++) logits[i] = sinf((float)i) * 2;
    sd_sampler *a = make(1.0f, 0, 1, 0, 42, 50), *b = make(1.0f, 0, 1, 0, 42, 50), *c = make(1.0f, 0, 1, 0, 43, 50);
    int differs = 0;
    for (int i = 0; i < 200; i++) {
        int32_t x = sd_sample(a, logits), y = sd_sample(b, logits), z = sd_sample(c, logits);
        cr_assert_eq(x, y, "draw %d", i);
        differs += x != z;
    }
    cr_assert(differs > 20, "another seed should give another sequence (%d differences)", differs);
    sd_sampler_free(a);
    sd_sampler_free(b);
    sd_sampler_free(c);
}

Test(sampler, top_k_1_and_tiny_top_p_are_greedy)
{
    float logits[100];
    for (int i = 0; i < 100; i++) logits[i] = cosf((float)i * 0.37f);
    logits[63] = 1.5f;
    sd_sampler *k1 = make(1.5f, 1, 1, 0, 7, 100), *p0 = make(1.5f, 0, 1e-6f, 0, 7, 100);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(sd_sample(k1, logits), 63);
        cr_assert_eq(sd_sample(p0, logits), 63);
    }
    sd_sampler_free(k1);
    sd_sampler_free(p0);
}

Test(sampler, top_k_keeps_k_best)
{
    float logits[5] = {1.0f, 2.0f, 0.5f, 2.0f, 1.9f};
    int count[5];
    sd_sampler *s = make(1.0f, 2, 1, 0, 3, 5);
    draw(s, logits, 5, 4000, count);
    cr_assert_eq(count[0] + count[2] + count[4], 0);
    cr_assert(count[1] > 1700 && count[3] > 1700, "%d %d", count[1], count[3]);  /* equal logits: ~half each */
    sd_sampler_free(s);
}

Test(sampler, top_p_keeps_smallest_head)
{
    /* probabilities 0.5 0.3 0.15 0.05: p = 0.7 keeps the first two (0.5 < 0.7 <= 0.8) */
    float logits[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    int count[4], n = 8000;
    sd_sampler *s = make(1.0f, 0, 0.7f, 0, 11, 4);
    draw(s, logits, 4, n, count);
    cr_assert_eq(count[2] + count[3], 0);
    double p[4] = {0.625, 0.375, 0, 0};
    cr_assert(chi_square(count, p, 2, n) < 15, "%d %d", count[0], count[1]);
    sd_sampler_free(s);
}

Test(sampler, min_p_filters)
{
    /* relative probabilities 1, e^-1 = 0.37, e^-3 = 0.05: min_p 0.1 drops the last */
    float logits[3] = {0.0f, -1.0f, -3.0f};
    int count[3];
    sd_sampler *s = make(1.0f, 0, 1, 0.1f, 5, 3);
    draw(s, logits, 3, 4000, count);
    cr_assert_eq(count[2], 0);
    cr_assert(count[1] > 700, "%d", count[1]);
    sd_sampler_free(s);
    /* min_p above 1 still leaves the best token */
    s = make(1.0f, 0, 1, 2.0f, 5, 3);
    for (int i = 0; i < 50; i++) cr_assert_eq(sd_sample(s, logits), 0);
    sd_sampler_free(s);
}

Test(sampler, draws_follow_softmax_at_temperature)
{
    enum { K = 8, N = 40000 };
    float logits[K] = {1.0f, 0.2f, -0.5f, 2.0f, 0.0f, 1.5f, -1.0f, 0.7f};
    const float temp = 0.7f;
    double p[K], z = 0;
    for (int i = 0; i < K; i++) z += p[i] = exp(logits[i] / temp);
    for (int i = 0; i < K; i++) p[i] /= z;
    int count[K];
    sd_sampler *s = make(temp, 0, 1, 0, 2024, K);
    draw(s, logits, K, N, count);
    /* 7 degrees of freedom: chi-square > 24.3 has probability 0.001 */
    double x2 = chi_square(count, p, K, N);
    cr_assert(x2 < 24.3, "chi-square %.1f", x2);
    sd_sampler_free(s);
}

Test(sampler, non_finite_logits_never_drawn)
{
    float logits[4] = {NAN, 0.0f, INFINITY, 0.0f};
    int count[4];
    sd_sampler *s = make(1.0f, 0, 1, 0, 9, 4);
    draw(s, logits, 4, 1000, count);
    cr_assert_eq(count[0] + count[2], 0);
    sd_sampler_free(s);
}
