/* Body of the K-quant NEON kernels (weights against Q8_K activations),
 * included after quant_body.h by quant_neon.c and quant_asimd.c.
 * Each sub-block's integer sum is scaled in integer lanes (vmlaq_n_s32) and
 * the super-block is reduced once; the min term of Q2_K/Q4_K/Q5_K comes from
 * Q8_K's bsums. Bit layouts: tensor/q_k.c. */

/* Accumulates the int8 dot of 16 (one) or 32 (two vectors) values. */
static inline int32x4_t dot32(int8x16_t w0, int8x16_t w1, const int8_t *x)
{
    return dot_s8(dot_s8(vdupq_n_s32(0), w0, vld1q_s8(x)), w1, vld1q_s8(x + 16));
}
static inline int32x4_t dot16(int8x16_t w, const int8_t *x)
{
    return dot_s8(vdupq_n_s32(0), w, vld1q_s8(x));
}

/* Q4_K/Q5_K: eight 6-bit scales and mins packed in 12 bytes. */
static inline void sm6_unpack(const uint8_t s[12], int *sc, int *mn)
{
    for (int k = 0; k < 4; k++) { sc[k] = s[k] & 63; mn[k] = s[k + 4] & 63; }
    for (int k = 4; k < 8; k++) {
        sc[k] = (s[k + 4] & 0x0f) | (s[k - 4] >> 6) << 4;
        mn[k] = (s[k + 4] >> 4) | (s[k] >> 6) << 4;
    }
}

/* sum over the eight 32-value sub-blocks of mn[k] * (its two bsums). */
static inline int32_t mins32(const int *mn, const int16_t *bsums)
{
    int32_t s = 0;
    for (int k = 0; k < 8; k++) s += mn[k] * (bsums[2 * k] + bsums[2 * k + 1]);
    return s;
}

static float q4_k_vdot(int64_t n, const void *w, const void *x)
{
    const blk_q4_k *a = w;
    const blk_q8_k *b = x;
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    float sum = 0;
    for (int64_t i = 0; i < n / QKK; i++) {
        int sc[8], mn[8];
        sm6_unpack(a[i].scales, sc, mn);
        int32x4_t isc = vdupq_n_s32(0);
        for (int j = 0; j < 4; j++) {          /* 64 values: sub-blocks 2j, 2j+1 */
            uint8x16_t q0 = vld1q_u8(a[i].qs + 32 * j), q1 = vld1q_u8(a[i].qs + 32 * j + 16);
            const int8_t *xq = b[i].qs + 64 * j;
            int32x4_t lo = dot32(vreinterpretq_s8_u8(vandq_u8(q0, m4)), vreinterpretq_s8_u8(vandq_u8(q1, m4)), xq);
            int32x4_t hi = dot32(vreinterpretq_s8_u8(vshrq_n_u8(q0, 4)), vreinterpretq_s8_u8(vshrq_n_u8(q1, 4)), xq + 32);
            isc = vmlaq_n_s32(isc, lo, sc[2 * j]);
            isc = vmlaq_n_s32(isc, hi, sc[2 * j + 1]);
        }
        float d = h2f(a[i].d), dmin = h2f(a[i].dmin);
        sum += b[i].d * (d * (float)vaddvq_s32(isc) - dmin * (float)mins32(mn, b[i].bsums));
    }
    return sum;
}

/* The fifth bit of value 32g + l is bit g of qh[l]: shifting qh right once
 * per group of 32 brings that bit to the bottom. */
static float q5_k_vdot(int64_t n, const void *w, const void *x)
{
    const blk_q5_k *a = w;
    const blk_q8_k *b = x;
    const uint8x16_t m4 = vdupq_n_u8(0x0f), one = vdupq_n_u8(1);
    float sum = 0;
    for (int64_t i = 0; i < n / QKK; i++) {
        int sc[8], mn[8];
        sm6_unpack(a[i].scales, sc, mn);
        uint8x16_t h0 = vld1q_u8(a[i].qh), h1 = vld1q_u8(a[i].qh + 16);
        int32x4_t isc = vdupq_n_s32(0);
        for (int j = 0; j < 4; j++) {
            uint8x16_t q0 = vld1q_u8(a[i].qs + 32 * j), q1 = vld1q_u8(a[i].qs + 32 * j + 16);
            const int8_t *xq = b[i].qs + 64 * j;
            uint8x16_t l0 = vorrq_u8(vandq_u8(q0, m4), vshlq_n_u8(vandq_u8(h0, one), 4));
            uint8x16_t l1 = vorrq_u8(vandq_u8(q1, m4), vshlq_n_u8(vandq_u8(h1, one), 4));
            h0 = vshrq_n_u8(h0, 1); h1 = vshrq_n_u8(h1, 1);
            uint8x16_t u0 = vorrq_u8(vshrq_n_u8(q0, 4), vshlq_n_u8(vandq_u8(h0, one), 4));
            uint8x16_t u1 = vorrq_u8(vshrq_n_u8(q1, 4), vshlq_n_u8(vandq_u8(h1, one), 4));
            h0 = vshrq_n_u8(h0, 1); h1 = vshrq_n_u8(h1, 1);
            int32x4_t lo = dot32(vreinterpretq_s8_u8(l0), vreinterpretq_s8_u8(l1), xq);
            int32x4_t hi = dot32(vreinterpretq_s8_u8(u0), vreinterpretq_s8_u8(u1), xq + 32);
            isc = vmlaq_n_s32(isc, lo, sc[2 * j]);
            isc = vmlaq_n_s32(isc, hi, sc[2 * j + 1]);
        }
        float d = h2f(a[i].d), dmin = h2f(a[i].dmin);
        sum += b[i].d * (d * (float)vaddvq_s32(isc) - dmin * (float)mins32(mn, b[i].bsums));
    }
    return sum;
}

/* Q6_K, per half of 128: group g's low nibbles are in ql[32*(g&1) ..]
 * (low nibble for g < 2, high for g >= 2), its top bits at 2g of qh. */
static float q6_k_vdot(int64_t n, const void *w, const void *x)
{
    const blk_q6_k *a = w;
    const blk_q8_k *b = x;
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m3 = vdupq_n_u8(3);
    const int8x16_t s32 = vdupq_n_s8(32);
    float sum = 0;
    for (int64_t i = 0; i < n / QKK; i++) {
        int32x4_t isc = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = a[i].ql + 64 * h;
            uint8x16_t qh[2] = { vld1q_u8(a[i].qh + 32 * h), vld1q_u8(a[i].qh + 32 * h + 16) };
            for (int g = 0; g < 4; g++) {
                const int8_t *xq = b[i].qs + 128 * h + 32 * g;
                const int8_t *sc = a[i].scales + 8 * h + 2 * g;
                for (int v = 0; v < 2; v++) {       /* 16 values: one sub-block */
                    uint8x16_t lq = vld1q_u8(ql + 32 * (g & 1) + 16 * v);
                    lq = g < 2 ? vandq_u8(lq, m4) : vshrq_n_u8(lq, 4);
                    uint8x16_t hq = vandq_u8(qh[v], m3);
                    int8x16_t q = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lq, vshlq_n_u8(hq, 4))), s32);
                    isc = vmlaq_n_s32(isc, dot16(q, xq + 16 * v), sc[v]);
                }
                qh[0] = vshrq_n_u8(qh[0], 2); qh[1] = vshrq_n_u8(qh[1], 2);
            }
        }
        sum += b[i].d * h2f(a[i].d) * (float)vaddvq_s32(isc);
    }
    return sum;
}

/* Q2_K and Q3_K share the 2-bit plane: value 128h + 32j + l sits in bits
 * 2j of qs[32h + l]. Q3_K's third bit is bit 4h + j of hmask[l], so one
 * right shift per group walks it across both halves. */
static float q3_k_vdot(int64_t n, const void *w, const void *x)
{
    const blk_q3_k *a = w;
    const blk_q8_k *b = x;
    const uint8x16_t m3 = vdupq_n_u8(3), one = vdupq_n_u8(1);
    const int8x16_t s4 = vdupq_n_s8(4);
    float sum = 0;
    for (int64_t i = 0; i < n / QKK; i++) {
        int sc[16];
        const uint8_t *s = a[i].scales;
        for (int k = 0; k < 16; k++) {
            int lo = k < 8 ? s[k] & 0x0f : s[k - 8] >> 4;
            int hi = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
            sc[k] = (lo | hi << 4) - 32;
        }
        uint8x16_t hm[2] = { vld1q_u8(a[i].hmask), vld1q_u8(a[i].hmask + 16) };
        int32x4_t isc = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            uint8x16_t q[2] = { vld1q_u8(a[i].qs + 32 * h), vld1q_u8(a[i].qs + 32 * h + 16) };
            for (int j = 0; j < 4; j++) {
                const int8_t *xq = b[i].qs + 128 * h + 32 * j;
                for (int v = 0; v < 2; v++) {
                    uint8x16_t l = vorrq_u8(vandq_u8(q[v], m3), vshlq_n_u8(vandq_u8(hm[v], one), 2));
                    int8x16_t wv = vsubq_s8(vreinterpretq_s8_u8(l), s4);
                    isc = vmlaq_n_s32(isc, dot16(wv, xq + 16 * v), sc[8 * h + 2 * j + v]);
                    q[v] = vshrq_n_u8(q[v], 2);
                    hm[v] = vshrq_n_u8(hm[v], 1);
                }
            }
        }
        sum += b[i].d * h2f(a[i].d) * (float)vaddvq_s32(isc);
    }
    return sum;
}

static float q2_k_vdot(int64_t n, const void *w, const void *x)
{
    const blk_q2_k *a = w;
    const blk_q8_k *b = x;
    const uint8x16_t m3 = vdupq_n_u8(3);
    float sum = 0;
    for (int64_t i = 0; i < n / QKK; i++) {
        int32x4_t isc = vdupq_n_s32(0);
        int32_t imn = 0;
        for (int k = 0; k < 16; k++) imn += (a[i].scales[k] >> 4) * b[i].bsums[k];
        for (int h = 0; h < 2; h++) {
            uint8x16_t q[2] = { vld1q_u8(a[i].qs + 32 * h), vld1q_u8(a[i].qs + 32 * h + 16) };
            for (int j = 0; j < 4; j++) {
                const int8_t *xq = b[i].qs + 128 * h + 32 * j;
                for (int v = 0; v < 2; v++) {
                    int8x16_t wv = vreinterpretq_s8_u8(vandq_u8(q[v], m3));
                    isc = vmlaq_n_s32(isc, dot16(wv, xq + 16 * v), a[i].scales[8 * h + 2 * j + v] & 0x0f);
                    q[v] = vshrq_n_u8(q[v], 2);
                }
            }
        }
        float d = h2f(a[i].d), dmin = h2f(a[i].dmin);
        sum += b[i].d * (d * (float)vaddvq_s32(isc) - dmin * (float)imn);
    }
    return sum;
}

static void fill_kquant(sd_kernel_table *t)
{
    t->vec_dot[SD_TYPE_Q2_K] = q2_k_vdot;
    t->vec_dot[SD_TYPE_Q3_K] = q3_k_vdot;
    t->vec_dot[SD_TYPE_Q4_K] = q4_k_vdot;
    t->vec_dot[SD_TYPE_Q5_K] = q5_k_vdot;
    t->vec_dot[SD_TYPE_Q6_K] = q6_k_vdot;
}
