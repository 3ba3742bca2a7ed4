/* The K-quant encoder, one routine for all five formats (their shapes are in
 * q_k.c). The reference encoder fits each sub-block with a weighted
 * least-squares search and then rounds the sub-scales to integers once
 * against a super-scale of max/smax. We minimise the plain squared error at
 * every step instead:
 *   1. each sub-block gets its best float scale (and min) from a sweep of
 *      candidate grids, each refit by least squares;
 *   2. the super-scales d (and dmin) are searched around max/smax; for each
 *      candidate every sub-block tries the integer scales next to its ideal
 *      one and keeps the one whose re-rounded levels give the least error.
 * Errors are always measured on the values exactly as they dequantize. */
#include "tensor/q_k.h"

#define NSTEP 20   /* grid sweep for the sub-block fits */
#define NMULT 8    /* super-scale candidates on each side of the start */

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* x ~ s*L - m with L in 0..nmax, m >= 0 (the formats can only subtract). */
static void fit_min(const float *x, int n, int nmax, float *s_out, float *m_out)
{
    float min = 0, max = x[0];
    for (int i = 0; i < n; i++) { min = fminf(min, x[i]); max = fmaxf(max, x[i]); }
    if (max <= min) { *s_out = 0; *m_out = -min; return; }
    float best_s = (max - min) / (float)nmax, best_o = min, best = INFINITY;
    for (int is = -1; is <= NSTEP; is++) {
        /* is = -1 is the plain full-range grid; the others stretch it */
        float iscale = ((float)nmax + (is < 0 ? 0 : -1.0f + 0.1f * (float)is)) / (max - min);
        float s = 1.0f / iscale, o = min;
        for (int it = 0; it < 3; it++) {
            float sl = 0, sll = 0, sx = 0, sxl = 0;
            for (int i = 0; i < n; i++) {
                int l = clampi(sd_nearest((x[i] - o) / s), 0, nmax);
                sl += (float)l; sll += (float)(l * l); sx += x[i]; sxl += x[i] * (float)l;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                int l = clampi(sd_nearest((x[i] - o) / s), 0, nmax);
                float e = s * (float)l + o - x[i];
                err += e * e;
            }
            if (err < best) { best = err; best_s = s; best_o = o; }
            float D = (float)n * sll - sl * sl;
            if (D <= 0) break;
            float ns = ((float)n * sxl - sx * sl) / D, no = (sll * sx - sl * sxl) / D;
            if (no > 0) { no = 0; ns = sxl / sll; }
            if (!(ns > 0)) break;
            s = ns; o = no;
        }
    }
    *s_out = best_s; *m_out = -best_o;
}

/* x ~ s*L with L in lmin..lmax (lmin = -lmax-1); s may be negative so the
 * largest magnitude can use the extra negative level. */
static float fit_sym(const float *x, int n, int lmin, int lmax)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); max = x[i]; }
    if (amax == 0) return 0;
    float best_s = max / (float)lmin, best = INFINITY;
    for (int side = 0; side < 2; side++) {
        for (int t = -NSTEP / 2; t <= NSTEP / 2; t++) {
            float k = side == 0 ? (float)lmin - 0.1f * (float)t : (float)lmax + 0.1f * (float)t;
            float s = max / k;
            for (int it = 0; it < 3; it++) {
                float sxl = 0, sll = 0, err = 0;
                for (int i = 0; i < n; i++) {
                    int l = clampi(sd_nearest(x[i] / s), lmin, lmax);
                    sxl += x[i] * (float)l; sll += (float)(l * l);
                    float e = s * (float)l - x[i];
                    err += e * e;
                }
                if (err < best) { best = err; best_s = s; }
                if (sll == 0 || sxl == 0) break;
                s = sxl / sll;
            }
        }
    }
    return best_s;
}

/* Error of sub-block x with integer scale c and min m under (d, dmin); the
 * levels go to L. Formed as the dequantizer forms them. */
static float sub_eval(const kq_shape *s, const float *x, float d, float dmin, int c, int m, int8_t *L)
{
    float ds = d * (float)c, dm = s->has_min ? dmin * (float)m : 0, err = 0;
    float ids = ds != 0 ? 1.0f / ds : 0;
    for (int i = 0; i < s->sublen; i++) {
        int l = ds != 0 ? clampi(sd_nearest((x[i] + dm) * ids), s->lmin, s->lmax) : clampi(0, s->lmin, s->lmax);
        L[i] = (int8_t)l;
        float v = ds * (float)l;
        if (s->has_min) v = v - dm;
        err += (v - x[i]) * (v - x[i]);
    }
    return err;
}

/* For fixed super-scales: each sub-block's best integer scale/min near its
 * ideal float ones. Fills u (if not NULL) and returns the total error. */
static float encode_with(const kq_shape *s, const float *x, const float *fs, const float *fm,
                         float d, float dmin, kq_block *u)
{
    float total = 0;
    int8_t L[32];
    for (int k = 0; k < s->nsub; k++) {
        const float *xs = x + k * s->sublen;
        int c0 = d != 0 ? clampi(sd_nearest(fs[k] / d), s->smin, s->smax) : 0;
        int m0 = s->has_min && dmin != 0 ? clampi(sd_nearest(fm[k] / dmin), 0, s->smax) : 0;
        float best = INFINITY;
        int bc = c0, bm = m0;
        int mr = s->has_min ? 1 : 0;
        for (int c = c0 - 1; c <= c0 + 1; c++) {
            if (c < s->smin || c > s->smax) continue;
            for (int m = m0 - mr; m <= m0 + mr; m++) {
                if (m < 0 || m > s->smax) continue;
                float e = sub_eval(s, xs, d, dmin, c, m, L);
                if (e < best) { best = e; bc = c; bm = m; }
            }
        }
        total += best;
        if (u) {
            u->sc[k] = bc; u->mn[k] = bm;
            sub_eval(s, xs, d, dmin, bc, bm, u->L + k * s->sublen);
        }
    }
    return total;
}

void kq_encode(const kq_shape *s, const float *x, kq_block *u)
{
    float fs[16], fm[16];
    float smax_abs = 0, smax_signed = 0, mmax = 0;
    for (int k = 0; k < s->nsub; k++) {
        const float *xs = x + k * s->sublen;
        if (s->has_min) fit_min(xs, s->sublen, s->lmax, &fs[k], &fm[k]);
        else { fs[k] = fit_sym(xs, s->sublen, s->lmin, s->lmax); fm[k] = 0; }
        if (fabsf(fs[k]) > smax_abs) { smax_abs = fabsf(fs[k]); smax_signed = fs[k]; }
        mmax = fmaxf(mmax, fm[k]);
    }
    memset(u, 0, sizeof *u);
    /* Start where the reference starts: the largest sub-scale (min) on the
     * largest integer; symmetric formats also try the largest on -smin. */
    float d0 = s->has_min ? smax_abs / (float)s->smax : smax_signed / (float)s->smin;
    float dm0 = s->has_min ? mmax / (float)s->smax : 0;
    float bd = sd_f16_round(d0), bdm = sd_f16_round(dm0);
    float best = encode_with(s, x, fs, fm, bd, bdm, NULL);
    int sides = s->has_min ? 1 : 2;
    for (int pass = 0; pass < 2; pass++) {
        for (int side = 0; side < sides; side++) {
            float base = side == 0 ? d0 : smax_signed / (float)s->smax;
            for (int t = -NMULT; t <= NMULT; t++) {
                float d = sd_f16_round(base * (t <= 0 ? 1.0f + 0.04f * (float)t : 1.0f + 0.015f * (float)t));
                float e = encode_with(s, x, fs, fm, d, bdm, NULL);
                if (e < best) { best = e; bd = d; }
            }
        }
        if (!s->has_min) break;
        for (int t = -NMULT; t <= NMULT; t++) {
            float dm = sd_f16_round(dm0 * (1.0f + 0.03f * (float)t));
            float e = encode_with(s, x, fs, fm, bd, dm, NULL);
            if (e < best) { best = e; bdm = dm; }
        }
    }
    u->d = bd; u->dmin = bdm;
    encode_with(s, x, fs, fm, bd, bdm, u);
}
