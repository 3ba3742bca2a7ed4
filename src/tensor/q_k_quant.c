/* The K-quant encoder, one routine for all five formats (their shapes are in
 * q_k.c). Two stages per super-block of 256:
 *   1. the reference encoder's own choices: each sub-block gets a float
 *      scale (and min) from a weighted least-squares sweep, the super-scales
 *      put the largest on the top integer, every sub-scale is rounded once;
 *   2. a cheap refinement: a few super-scales near the first, and for each
 *      the integer (scale, min) pairs next to the rounded ones, scored by the
 *      same weighted error the sweep minimises. It is kept only if the plain
 *      squared error of the super-block is no worse than stage 1's.
 * Stage 1 reproduces the reference's values exactly (Q3_K/Q6_K up to the
 * sign of zero), so we are never worse than it on plain error, and never far
 * from its criterion: an exhaustive search on plain error gave ~5% less
 * weight error but no better, sometimes worse, model-level results
 * (docs/FORMATS.md, "Encoders"), at 1/50 of the speed. Errors are measured
 * on the values exactly as they dequantize, and every level is the nearest
 * one for the factors actually stored. */
#include "tensor/q_k.h"

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Per-format parameters of the sub-block fits. */
typedef struct {
    float rmin, rdelta;  /* the sweep over grids: nmax + rmin + rdelta*is, is = 0..nstep */
    int nstep, mad;      /* mad: weighted absolute error (Q2_K) instead of squared */
} kq_sweep;

/* x ~ s*L - m, L in 0..nmax, m >= 0: the w-weighted fit over a sweep of
 * grids, each refit by least squares. Returns s; m in *m_out. */
static float fit_min(const float *x, const float *w, int n, int nmax, const kq_sweep *p, float *m_out)
{
    float min = x[0], max = x[0], sum_w = w[0], sum_x = w[0] * x[0];
    for (int i = 1; i < n; i++) {
        min = x[i] < min ? x[i] : min;
        max = x[i] > max ? x[i] : max;
        sum_w += w[i]; sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) { *m_out = -min; return 0; }
    float iscale = (float)nmax / (max - min), scale = 1 / iscale, best = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(sd_nearest(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * (float)l + min - x[i];
        best += w[i] * (p->mad ? fabsf(diff) : diff * diff);
    }
    uint8_t L[32];
    for (int is = 0; is <= p->nstep; is++) {
        iscale = (p->rmin + p->rdelta * (float)is + (float)nmax) / (max - min);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(sd_nearest(iscale * (x[i] - min)), 0, nmax);
            L[i] = (uint8_t)l;
            sl += w[i] * (float)l; sl2 += w[i] * (float)(l * l); sxl += w[i] * (float)l * x[i];
        }
        float D = sum_w * sl2 - sl * sl;
        if (!(D > 0)) continue;
        float ts = (sum_w * sxl - sum_x * sl) / D, tm = (sl2 * sum_x - sl * sxl) / D;
        if (tm > 0) { tm = 0; ts = sxl / sl2; }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float diff = ts * (float)L[i] + tm - x[i];
            err += w[i] * (p->mad ? fabsf(diff) : diff * diff);
        }
        if (err < best) { best = err; scale = ts; min = tm; }
    }
    *m_out = -min;
    return scale;
}

/* Q6_K's sub-block fit: x ~ s*L, L in -nmax..nmax-1, weights x^2, over the
 * grids that put the largest magnitude at -(nmax + 0.1*is), each refit. */
static float fit_sym_grid(const float *x, int n, int nmax)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); max = x[i]; }
    if (amax < 1e-15f) return 0;
    float iscale = -(float)nmax / max, slx = 0, sl2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(sd_nearest(iscale * x[i]), -nmax, nmax - 1);
        float w = x[i] * x[i];
        slx += w * x[i] * (float)l; sl2 += w * (float)(l * l);
    }
    float scale = sl2 != 0 ? slx / sl2 : 0, best = scale * slx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        slx = sl2 = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(sd_nearest(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            slx += w * x[i] * (float)l; sl2 += w * (float)(l * l);
        }
        /* largest slx^2/sl2 = least weighted error after the refit */
        if (sl2 > 0 && slx * slx > best * sl2) { scale = slx / sl2; best = scale * slx; }
    }
    return scale;
}

/* Q3_K's sub-block fit: weights x^2, then a few rounds of moving single
 * levels while that raises slx^2/sl2 (lowers the refit error). */
static float fit_sym_descent(const float *x, int n, int nmax)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); max = x[i]; }
    if (amax < 1e-15f) return 0;
    float iscale = -(float)nmax / max, slx = 0, sl2 = 0;
    int L[32];
    for (int i = 0; i < n; i++) {
        L[i] = clampi(sd_nearest(iscale * x[i]), -nmax, nmax - 1);
        float w = x[i] * x[i];
        slx += w * x[i] * (float)L[i]; sl2 += w * (float)(L[i] * L[i]);
    }
    for (int round = 0; round < 5; round++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i], tlx = slx - w * x[i] * (float)L[i];
            if (!(tlx > 0)) continue;
            float tl2 = sl2 - w * (float)(L[i] * L[i]);
            int nl = clampi(sd_nearest(x[i] * tl2 / tlx), -nmax, nmax - 1);
            if (nl == L[i]) continue;
            tlx += w * x[i] * (float)nl; tl2 += w * (float)(nl * nl);
            if (tl2 > 0 && tlx * tlx * sl2 > slx * slx * tl2) { L[i] = nl; slx = tlx; sl2 = tl2; changed++; }
        }
        if (!changed) break;
    }
    return sl2 > 0 ? slx / sl2 : 0;
}

/* Error of sub-block x with integer scale c and min m under (d, dmin); the
 * nearest levels go to L. w NULL: plain squared error, levels by division
 * as the reference forms them (the stored result). Otherwise weighted (the
 * absolute error for Q2_K, whose fit is by absolute error), levels by the
 * reciprocal (the search; it differs only at exact ties). */
static float sub_eval(const kq_shape *s, const float *x, const float *w, float d, float dmin,
                      int c, int m, int8_t *L)
{
    float ds = d * (float)c, dm = s->has_min ? dmin * (float)m : 0, acc[8] = { 0 };
    float ids = ds != 0 ? 1 / ds : 0, lo = (float)s->lmin, hi = (float)s->lmax;
    int mad = s->lmax == 3, n = s->sublen;
    /* in float and in 8 lanes so that it vectorises; clamping then rounding
     * (ties to even, as sd_nearest) equals rounding then clamping */
    for (int i = 0; i < n; i++) {
        float v = ds == 0 ? 0 : w ? (x[i] + dm) * ids : (x[i] + dm) / ds;
        v = v < lo ? lo : v > hi ? hi : v;
        float l = (v + 12582912.0f) - 12582912.0f;
        L[i] = (int8_t)l;
        float e = ds * l - dm - x[i];
        acc[i % 8] += !w ? e * e : mad ? w[i] * fabsf(e) : w[i] * e * e;
    }
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* The integers of the reference's rounding for super-scale d (and dmin). */
static void round_subs(const kq_shape *s, const float *fs, const float *fm, float d, float dmin, int *sc, int *mn)
{
    float id = d != 0 ? 1 / d : 0, idm = dmin != 0 ? 1 / dmin : 0;
    for (int k = 0; k < s->nsub; k++) {
        sc[k] = clampi(sd_nearest(id * fs[k]), s->smin, s->smax);
        mn[k] = s->has_min ? clampi(sd_nearest(idm * fm[k]), 0, s->smax) : 0;
    }
}

/* For fixed super-scales: each sub-block's integer (scale, min) picked from
 * the rounded ones and their neighbours by weighted error. Fills sc, mn and
 * returns the total weighted error. */
static float fit_subs(const kq_shape *s, const float *x, const float *w, const float *fs, const float *fm,
                      float d, float dmin, int *sc, int *mn)
{
    int8_t L[32];
    float total = 0;
    round_subs(s, fs, fm, d, dmin, sc, mn);
    int mr = s->has_min ? 1 : 0;
    for (int k = 0; k < s->nsub; k++) {
        const float *xs = x + k * s->sublen, *ws = w ? w + k * s->sublen : NULL;
        int c0 = sc[k], m0 = mn[k];
        float best = INFINITY;
        for (int c = c0 - 1; c <= c0 + 1; c++) {
            if (c < s->smin || c > s->smax) continue;
            for (int m = m0 - mr; m <= m0 + mr; m++) {
                if (m < 0 || m > s->smax) continue;
                float e = sub_eval(s, xs, ws, d, dmin, c, m, L);
                if (e < best) { best = e; sc[k] = c; mn[k] = m; }
            }
        }
        total += best;
    }
    return total;
}

/* Levels of u for its stored factors; returns the plain squared error. */
static float finish(const kq_shape *s, const float *x, kq_block *u)
{
    float err = 0;
    for (int k = 0; k < s->nsub; k++)
        err += sub_eval(s, x + k * s->sublen, NULL, u->d, u->dmin, u->sc[k], u->mn[k], u->L + k * s->sublen);
    return err;
}

/* Stage 1: the sub-block fits fs, fm (and the weights w the refinement
 * scores with), and the reference's super-scales and integers in u. */
static void reference_choice(const kq_shape *s, const float *x, float *w, float *fs, float *fm, kq_block *u)
{
    static const kq_sweep q2 = { -0.5f, 0.1f, 15, 1 }, q4 = { -1.0f, 0.1f, 20, 0 }, q5 = { -0.5f, 0.1f, 15, 0 };
    const kq_sweep *p = s->lmax == 3 ? &q2 : s->lmax == 15 ? &q4 : &q5;
    float max_s = 0, max_m = 0, max_signed = 0;
    for (int k = 0; k < s->nsub; k++) {
        const float *xs = x + k * s->sublen;
        float *ws = w + k * s->sublen, sum2 = 0;
        for (int i = 0; i < s->sublen; i++) sum2 += xs[i] * xs[i];
        float av = sqrtf(sum2 / (float)s->sublen);
        for (int i = 0; i < s->sublen; i++)
            ws[i] = !s->has_min ? xs[i] * xs[i] : p->mad ? fabsf(xs[i]) : av + fabsf(xs[i]);
        fm[k] = 0;
        if (s->has_min) fs[k] = fit_min(xs, ws, s->sublen, s->lmax, p, &fm[k]);
        else fs[k] = s->lmin == -4 ? fit_sym_descent(xs, s->sublen, 4) : fit_sym_grid(xs, s->sublen, 32);
        if (s->has_min) { max_s = fmaxf(max_s, fs[k]); max_m = fmaxf(max_m, fm[k]); }
        else if (fabsf(fs[k]) > max_s) { max_s = fabsf(fs[k]); max_signed = fs[k]; }
    }
    memset(u, 0, sizeof *u);
    if (s->has_min) {
        /* the largest sub-scale (min) on the top integer */
        float is = max_s > 0 ? (float)s->smax / max_s : 0, im = max_m > 0 ? (float)s->smax / max_m : 0;
        for (int k = 0; k < s->nsub; k++) {
            u->sc[k] = clampi(sd_nearest(is * fs[k]), 0, s->smax);
            u->mn[k] = clampi(sd_nearest(im * fm[k]), 0, s->smax);
        }
        u->d = sd_f16_round(max_s / (float)s->smax);
        u->dmin = sd_f16_round(max_m / (float)s->smax);
    } else if (s->lmin == -4 ? max_s > 0 : max_s >= 1e-15f) {
        /* the largest magnitude on the bottom integer (-32, -128) */
        float is = (float)(s->smin) / max_signed;
        for (int k = 0; k < s->nsub; k++) u->sc[k] = clampi(sd_nearest(is * fs[k]), s->smin, s->smax);
        u->d = sd_f16_round(1 / is);
    } else {
        for (int k = 0; k < s->nsub; k++) u->sc[k] = s->lmin == -4 ? s->smin : 0;
    }
}

void kq_encode(const kq_shape *s, const float *x, kq_block *u)
{
    float w[QKK], fs[16], fm[16];
    reference_choice(s, x, w, fs, fm, u);
    float ref_err = finish(s, x, u);
    if (ref_err == 0 || u->d == 0) return;
    /* Stage 2: super-scales a little off the reference's, each with the best
     * neighbouring integers per sub-block, by weighted error (the symmetric
     * formats' own fits are cheap, so they try three: the fourth rarely won) */
    static const float mult[] = { 1.0f, 0.98f, 1.02f, 0.95f };
    size_t nmult = s->has_min ? 4 : 3;
    kq_block t = *u;
    float best = INFINITY;
    int sc[16], mn[16];
    for (size_t i = 0; i < nmult; i++) {
        float d = sd_f16_round(u->d * mult[i]);
        float e = fit_subs(s, x, w, fs, fm, d, u->dmin, sc, mn);
        if (e < best) {
            best = e; t.d = d;
            memcpy(t.sc, sc, sizeof sc); memcpy(t.mn, mn, sizeof mn);
        }
    }
    if (finish(s, x, &t) <= ref_err) *u = t;
    else finish(s, x, u);
}
