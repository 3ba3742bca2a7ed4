/* The K-quant encoder, one routine for all five formats (their shapes are in
 * q_k.c). The reference encoder fits each sub-block with a weighted
 * least-squares search and then rounds the sub-scales to integers once
 * against a super-scale of max/smax. We minimise the plain squared error at
 * every step instead:
 *   1. each sub-block gets its best float scale (and min) from a sweep of
 *      candidate grids, each refit by least squares;
 *      (twice: unweighted, and weighted the way the reference weights);
 *   2. the super-scales d (and dmin) are searched around max/smax; for each
 *      candidate every sub-block hill-climbs from its nearest integer scale
 *      (and min) to the pair whose re-rounded levels give the least error.
 * It is slow next to the reference (about 0.3-1 M weights/s per core) and
 * meant for offline quantization.
 * Errors are always measured on the values exactly as they dequantize. */
#include "tensor/q_k.h"

#define NSTEP 20   /* grid sweep for the sub-block fits */
#define NMULT 8    /* super-scale candidates on each side of the start */
/* Hill-climbing steps per sub-block while the super-scales are searched
 * coarsely, then finely. More coarse steps cost time for little gain; fewer
 * lose the rare outlier case (Q3_K, row 1 of the reference vectors). */
#define CLIMB_COARSE 2
#define CLIMB_FINE 16

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* x ~ s*L - m with L in 0..nmax, m >= 0 (the formats can only subtract),
 * minimising the w-weighted squared error. */
static void fit_min(const float *x, const float *w, int n, int nmax, float *s_out, float *m_out)
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
            float sw = 0, sl = 0, sll = 0, sx = 0, sxl = 0, err = 0;
            for (int i = 0; i < n; i++) {
                int l = clampi(sd_nearest((x[i] - o) / s), 0, nmax);
                float e = s * (float)l + o - x[i];
                err += w[i] * e * e;
                sw += w[i]; sl += w[i] * (float)l; sll += w[i] * (float)(l * l);
                sx += w[i] * x[i]; sxl += w[i] * x[i] * (float)l;
            }
            if (err < best) { best = err; best_s = s; best_o = o; }
            float D = sw * sll - sl * sl;
            if (D <= 0) break;
            float ns = (sw * sxl - sx * sl) / D, no = (sll * sx - sl * sxl) / D;
            if (no > 0) { no = 0; ns = sxl / sll; }
            if (!(ns > 0)) break;
            s = ns; o = no;
        }
    }
    *s_out = best_s; *m_out = -best_o;
}

/* x ~ s*L with L in lmin..lmax (lmin = -lmax-1); s may be negative so the
 * largest magnitude can use the extra negative level. */
static float fit_sym(const float *x, const float *w, int n, int lmin, int lmax)
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
                    sxl += w[i] * x[i] * (float)l; sll += w[i] * (float)(l * l);
                    float e = s * (float)l - x[i];
                    err += w[i] * e * e;
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

/* For fixed super-scales: each sub-block's integer scale/min nearest its
 * ideal float ones, improved by up to `climb` hill-climbing steps. Fills u
 * (if not NULL) and returns the total error. */
static float encode_with(const kq_shape *s, const float *x, const float *fs, const float *fm,
                         float d, float dmin, int climb, kq_block *u)
{
    float total = 0;
    int8_t L[32];
    for (int k = 0; k < s->nsub; k++) {
        const float *xs = x + k * s->sublen;
        int c0 = d != 0 ? clampi(sd_nearest(fs[k] / d), s->smin, s->smax) : 0;
        int m0 = s->has_min && dmin != 0 ? clampi(sd_nearest(fm[k] / dmin), 0, s->smax) : 0;
        /* hill-climb over the integer (scale, min) pairs next to the ideal */
        int bc = c0, bm = m0;
        float best = sub_eval(s, xs, d, dmin, bc, bm, L);
        int mr = s->has_min ? 1 : 0;
        for (int step = 0; step < climb; step++) {
            int nc = bc, nm = bm;
            for (int c = bc - 1; c <= bc + 1; c++) {
                if (c < s->smin || c > s->smax) continue;
                for (int m = bm - mr; m <= bm + mr; m++) {
                    if (m < 0 || m > s->smax || (c == bc && m == bm)) continue;
                    float e = sub_eval(s, xs, d, dmin, c, m, L);
                    if (e < best) { best = e; nc = c; nm = m; }
                }
            }
            if (nc == bc && nm == bm) break;
            bc = nc; bm = nm;
        }
        total += best;
        if (u) {
            u->sc[k] = bc; u->mn[k] = bm;
            sub_eval(s, xs, d, dmin, bc, bm, u->L + k * s->sublen);
        }
    }
    return total;
}

/* From one set of float sub-block fits: search the super-scales, fill u,
 * return the error. */
static float encode_fits(const kq_shape *s, const float *x, const float *fs, const float *fm, kq_block *u)
{
    float smax_abs = 0, smax_signed = 0, mmax = 0;
    for (int k = 0; k < s->nsub; k++) {
        if (fabsf(fs[k]) > smax_abs) { smax_abs = fabsf(fs[k]); smax_signed = fs[k]; }
        mmax = fmaxf(mmax, fm[k]);
    }
    /* Start where the reference starts: the largest sub-scale (min) on the
     * largest integer; symmetric formats also try the largest on -smin. */
    float d0 = s->has_min ? smax_abs / (float)s->smax : smax_signed / (float)s->smin;
    float dm0 = s->has_min ? mmax / (float)s->smax : 0;
    float bd = sd_f16_round(d0), bdm = sd_f16_round(dm0);
    int sides = s->has_min ? 1 : 2;
    /* pass 0, coarse and cheap (nearest integers only): a geometric grid from
     * 0.6x to 1.3x, since an outlier sub-block may prefer a smaller step on a
     * higher level; pass 1, fine around the best, with hill-climbing */
    for (int pass = 0; pass < 2; pass++) {
        int climb = pass ? CLIMB_FINE : CLIMB_COARSE, nt = pass ? 3 : NMULT;
        float best = encode_with(s, x, fs, fm, bd, bdm, climb, NULL), pd = bd;
        for (int side = 0; side < sides; side++) {
            float base = pass ? pd : side == 0 ? d0 : smax_signed / (float)s->smax;
            for (int t = -nt; t <= nt; t++) {
                if (pass && side) break;
                float f = pass ? 1.0f + 0.006f * (float)t : expf(0.025f * (float)(t < 0 ? 2 * t : t));
                float e, d = sd_f16_round(base * f);
                if (d == bd) continue;
                e = encode_with(s, x, fs, fm, d, bdm, climb, NULL);
                if (e < best) { best = e; bd = d; }
            }
        }
        if (!s->has_min) continue;
        float pm = bdm;
        for (int t = -nt; t <= nt; t++) {
            float f = pass ? 1.0f + 0.006f * (float)t : expf(0.03f * (float)t);
            float e, dm = sd_f16_round((pass ? pm : dm0) * f);
            if (dm == bdm) continue;
            e = encode_with(s, x, fs, fm, bd, dm, climb, NULL);
            if (e < best) { best = e; bdm = dm; }
        }
    }
    memset(u, 0, sizeof *u);
    u->d = bd; u->dmin = bdm;
    return encode_with(s, x, fs, fm, bd, bdm, 16, u);
}

/* Two sets of sub-block fits compete: unweighted (our metric), and weighted
 * the way the reference weights them (|x|-heavy), which can serve outliers
 * better once the scales are rounded. */
void kq_encode(const kq_shape *s, const float *x, kq_block *u)
{
    float fs[16], fm[16], w[QKK];
    kq_block alt;
    float best = INFINITY;
    for (int set = 0; set < 2; set++) {
        for (int k = 0; k < s->nsub; k++) {
            const float *xs = x + k * s->sublen;
            float *ws = w + k * s->sublen, sum2 = 0;
            for (int i = 0; i < s->sublen; i++) sum2 += xs[i] * xs[i];
            float av = sqrtf(sum2 / (float)s->sublen);
            for (int i = 0; i < s->sublen; i++)
                ws[i] = set == 0 ? 1.0f : s->has_min ? av + fabsf(xs[i]) : xs[i] * xs[i];
            if (s->has_min) fit_min(xs, ws, s->sublen, s->lmax, &fs[k], &fm[k]);
            else { fs[k] = fit_sym(xs, ws, s->sublen, s->lmin, s->lmax); fm[k] = 0; }
        }
        float e = encode_fits(s, x, fs, fm, &alt);
        if (e < best) { best = e; *u = alt; }
    }
}
