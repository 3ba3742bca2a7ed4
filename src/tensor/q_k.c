/* The K-quants (super-blocks of 256 with small per-sub-block scales):
 * Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, and Q8_K, the activation format their dot
 * products use. Bit layouts: pack/unpack below; values: q_k.h. */
#include "tensor/q_k.h"

const kq_shape kq_shape_q2 = { 16, 16, 0, 3, 0, 15, 1 };
const kq_shape kq_shape_q3 = { 16, 16, -4, 3, -32, 31, 0 };
const kq_shape kq_shape_q4 = { 8, 32, 0, 15, 0, 63, 1 };
const kq_shape kq_shape_q5 = { 8, 32, 0, 31, 0, 63, 1 };
const kq_shape kq_shape_q6 = { 16, 16, -32, 31, -128, 127, 0 };

/* Q2_K and Q3_K share the 2-bit plane: value 128*h + 32*j + l (h < 2,
 * j < 4, l < 32) sits in bits 2j..2j+1 of qs[32*h + l]. Q3_K's third bit of
 * the same value is bit 4*h + j of hmask[l]. */
static int plane2_byte(int i) { return 32 * (i / 128) + i % 32; }
static int plane2_shift(int i) { return 2 * ((i % 128) / 32); }

void kq_unpack_q2(const blk_q2_k *b, kq_block *u)
{
    u->d = sd_f16_to_f32(b->d); u->dmin = sd_f16_to_f32(b->dmin);
    for (int k = 0; k < 16; k++) { u->sc[k] = b->scales[k] & 0x0f; u->mn[k] = b->scales[k] >> 4; }
    for (int i = 0; i < QKK; i++) u->L[i] = (int8_t)((b->qs[plane2_byte(i)] >> plane2_shift(i)) & 3);
}

void kq_pack_q2(const kq_block *u, blk_q2_k *b)
{
    b->d = sd_f32_to_f16(u->d); b->dmin = sd_f32_to_f16(u->dmin);
    for (int k = 0; k < 16; k++) b->scales[k] = (uint8_t)(u->sc[k] | u->mn[k] << 4);
    memset(b->qs, 0, sizeof b->qs);
    for (int i = 0; i < QKK; i++) b->qs[plane2_byte(i)] |= (uint8_t)(u->L[i] << plane2_shift(i));
}

/* Q3_K's sixteen 6-bit scales (stored +32) in 12 bytes: the low 4 bits of
 * scale k are the low (k < 8) or high (k >= 8) nibble of byte k % 8; its top
 * 2 bits are bits 2*(k/4).. of byte 8 + k % 4. */
void kq_unpack_q3(const blk_q3_k *b, kq_block *u)
{
    u->d = sd_f16_to_f32(b->d); u->dmin = 0;
    for (int k = 0; k < 16; k++) {
        int lo = k < 8 ? b->scales[k] & 0x0f : b->scales[k - 8] >> 4;
        int hi = (b->scales[8 + k % 4] >> (2 * (k / 4))) & 3;
        u->sc[k] = (lo | hi << 4) - 32; u->mn[k] = 0;
    }
    for (int i = 0; i < QKK; i++) {
        int low = (b->qs[plane2_byte(i)] >> plane2_shift(i)) & 3;
        int high = (b->hmask[i % 32] >> (4 * (i / 128) + (i % 128) / 32)) & 1;
        u->L[i] = (int8_t)((low | high << 2) - 4);
    }
}

void kq_pack_q3(const kq_block *u, blk_q3_k *b)
{
    b->d = sd_f32_to_f16(u->d);
    memset(b->scales, 0, sizeof b->scales);
    for (int k = 0; k < 16; k++) {
        int v = u->sc[k] + 32;
        b->scales[k % 8] |= (uint8_t)((v & 0x0f) << (k < 8 ? 0 : 4));
        b->scales[8 + k % 4] |= (uint8_t)((v >> 4) << (2 * (k / 4)));
    }
    memset(b->qs, 0, sizeof b->qs);
    memset(b->hmask, 0, sizeof b->hmask);
    for (int i = 0; i < QKK; i++) {
        int v = u->L[i] + 4;
        b->qs[plane2_byte(i)] |= (uint8_t)((v & 3) << plane2_shift(i));
        b->hmask[i % 32] |= (uint8_t)((v >> 2) << (4 * (i / 128) + (i % 128) / 32));
    }
}

/* Q4_K/Q5_K: eight 6-bit scales and eight 6-bit mins in 12 bytes. For
 * k < 4 they are the low 6 bits of bytes k and k+4; for k >= 4 the low 4
 * bits come from byte k+4 (scale: low nibble, min: high nibble) and the top 2
 * from the spare top bits of bytes k-4 (scale) and k (min). */
static void get_sm6(const uint8_t s[12], int k, int *sc, int *mn)
{
    if (k < 4) { *sc = s[k] & 63; *mn = s[k + 4] & 63; }
    else {
        *sc = (s[k + 4] & 0x0f) | (s[k - 4] >> 6) << 4;
        *mn = (s[k + 4] >> 4) | (s[k] >> 6) << 4;
    }
}
static void put_sm6(uint8_t s[12], const int *sc, const int *mn)
{
    memset(s, 0, 12);
    for (int k = 0; k < 8; k++) {
        if (k < 4) { s[k] |= (uint8_t)sc[k]; s[k + 4] |= (uint8_t)mn[k]; }
        else {
            s[k + 4] = (uint8_t)((sc[k] & 0x0f) | (mn[k] & 0x0f) << 4);
            s[k - 4] |= (uint8_t)((sc[k] >> 4) << 6);
            s[k] |= (uint8_t)((mn[k] >> 4) << 6);
        }
    }
}

/* 4-bit plane of Q4_K/Q5_K: value 64*j + l (l < 32) is the low nibble of
 * qs[32*j + l], value 64*j + 32 + l its high nibble. Q5_K's fifth bit of
 * value 32*g + l is bit g of qh[l]. */
static int plane4_byte(int i) { return 32 * (i / 64) + i % 32; }
static int plane4_shift(int i) { return (i % 64) < 32 ? 0 : 4; }

void kq_unpack_q4(const blk_q4_k *b, kq_block *u)
{
    u->d = sd_f16_to_f32(b->d); u->dmin = sd_f16_to_f32(b->dmin);
    for (int k = 0; k < 8; k++) get_sm6(b->scales, k, &u->sc[k], &u->mn[k]);
    for (int i = 0; i < QKK; i++) u->L[i] = (int8_t)((b->qs[plane4_byte(i)] >> plane4_shift(i)) & 0x0f);
}

void kq_pack_q4(const kq_block *u, blk_q4_k *b)
{
    b->d = sd_f32_to_f16(u->d); b->dmin = sd_f32_to_f16(u->dmin);
    put_sm6(b->scales, u->sc, u->mn);
    memset(b->qs, 0, sizeof b->qs);
    for (int i = 0; i < QKK; i++) b->qs[plane4_byte(i)] |= (uint8_t)(u->L[i] << plane4_shift(i));
}

void kq_unpack_q5(const blk_q5_k *b, kq_block *u)
{
    u->d = sd_f16_to_f32(b->d); u->dmin = sd_f16_to_f32(b->dmin);
    for (int k = 0; k < 8; k++) get_sm6(b->scales, k, &u->sc[k], &u->mn[k]);
    for (int i = 0; i < QKK; i++) {
        int low = (b->qs[plane4_byte(i)] >> plane4_shift(i)) & 0x0f;
        int high = (b->qh[i % 32] >> (i / 32)) & 1;
        u->L[i] = (int8_t)(low | high << 4);
    }
}

void kq_pack_q5(const kq_block *u, blk_q5_k *b)
{
    b->d = sd_f32_to_f16(u->d); b->dmin = sd_f32_to_f16(u->dmin);
    put_sm6(b->scales, u->sc, u->mn);
    memset(b->qs, 0, sizeof b->qs);
    memset(b->qh, 0, sizeof b->qh);
    for (int i = 0; i < QKK; i++) {
        b->qs[plane4_byte(i)] |= (uint8_t)((u->L[i] & 0x0f) << plane4_shift(i));
        b->qh[i % 32] |= (uint8_t)((u->L[i] >> 4) << (i / 32));
    }
}

/* Q6_K, per half h of 128 values: value 128*h + 32*g + l (g < 4, l < 32)
 * has its low 4 bits in ql[64*h + 32*(g&1) + l] (low nibble for g < 2, high
 * for g >= 2) and its top 2 bits at bits 2g of qh[32*h + l]; stored +32. */
static int q6_low_byte(int i) { return 64 * (i / 128) + 32 * ((i % 128) / 32 % 2) + i % 32; }
static int q6_low_shift(int i) { return (i % 128) < 64 ? 0 : 4; }
static int q6_high_byte(int i) { return 32 * (i / 128) + i % 32; }
static int q6_high_shift(int i) { return 2 * ((i % 128) / 32); }

void kq_unpack_q6(const blk_q6_k *b, kq_block *u)
{
    u->d = sd_f16_to_f32(b->d); u->dmin = 0;
    for (int k = 0; k < 16; k++) { u->sc[k] = b->scales[k]; u->mn[k] = 0; }
    for (int i = 0; i < QKK; i++) {
        int low = (b->ql[q6_low_byte(i)] >> q6_low_shift(i)) & 0x0f;
        int high = (b->qh[q6_high_byte(i)] >> q6_high_shift(i)) & 3;
        u->L[i] = (int8_t)((low | high << 4) - 32);
    }
}

void kq_pack_q6(const kq_block *u, blk_q6_k *b)
{
    b->d = sd_f32_to_f16(u->d);
    for (int k = 0; k < 16; k++) b->scales[k] = (int8_t)u->sc[k];
    memset(b->ql, 0, sizeof b->ql);
    memset(b->qh, 0, sizeof b->qh);
    for (int i = 0; i < QKK; i++) {
        int v = u->L[i] + 32;
        b->ql[q6_low_byte(i)] |= (uint8_t)((v & 0x0f) << q6_low_shift(i));
        b->qh[q6_high_byte(i)] |= (uint8_t)((v >> 4) << q6_high_shift(i));
    }
}

/* ---- shared by the five formats: dequantize and dot one unpacked block ---- */

/* The products are formed exactly as the reference dequantizer forms them
 * ((d*sc)*L - dmin*mn), so the floats come out bit-equal. */
static void kq_to_float(const kq_shape *s, const kq_block *u, float *y)
{
    for (int i = 0; i < QKK; i++) {
        int k = i / s->sublen;
        float v = (u->d * (float)u->sc[k]) * (float)u->L[i];
        y[i] = s->has_min ? v - u->dmin * (float)u->mn[k] : v;
    }
}

/* Integer sums per sub-block; Q8_K's bsums (sums of 16 activations) give the
 * min term without touching the values again. */
static double kq_dot(const kq_shape *s, const kq_block *u, const blk_q8_k *x)
{
    int64_t isc = 0, imn = 0;
    for (int k = 0; k < s->nsub; k++) {
        int sum = 0;
        for (int i = k * s->sublen; i < (k + 1) * s->sublen; i++) sum += u->L[i] * x->qs[i];
        isc += (int64_t)u->sc[k] * sum;
        if (s->has_min) {
            int bs = 0;
            for (int j = k * s->sublen / 16; j < (k + 1) * s->sublen / 16; j++) bs += x->bsums[j];
            imn += (int64_t)u->mn[k] * bs;
        }
    }
    return (double)x->d * ((double)u->d * (double)isc - (double)u->dmin * (double)imn);
}

#define KQ_FORMAT(name, NAME, blk, shape)                                          \
    static void name##_to_float(const void *src, float *dst, int64_t n)           \
    {                                                                              \
        const blk *b = src;                                                        \
        kq_block u;                                                                \
        for (int64_t i = 0; i < n / QKK; i++) {                                    \
            kq_unpack_##name(&b[i], &u);                                           \
            kq_to_float(&shape, &u, dst + i * QKK);                                \
        }                                                                          \
    }                                                                              \
    static void name##_from_float(const float *src, void *dst, int64_t n)         \
    {                                                                              \
        blk *b = dst;                                                              \
        kq_block u;                                                                \
        for (int64_t i = 0; i < n / QKK; i++) {                                    \
            kq_encode(&shape, src + i * QKK, &u);                                  \
            kq_pack_##name(&u, &b[i]);                                             \
        }                                                                          \
    }                                                                              \
    static float name##_dot(int64_t n, const void *w, const void *x)              \
    {                                                                              \
        const blk *b = w;                                                          \
        const blk_q8_k *a = x;                                                     \
        kq_block u;                                                                \
        double sum = 0;                                                            \
        for (int64_t i = 0; i < n / QKK; i++) {                                    \
            kq_unpack_##name(&b[i], &u);                                           \
            sum += kq_dot(&shape, &u, &a[i]);                                      \
        }                                                                          \
        return (float)sum;                                                         \
    }                                                                              \
    const sd_type_traits sd_traits_##name##_k = { NAME, QKK, sizeof(blk),          \
        name##_to_float, name##_from_float, SD_TYPE_Q8_K, name##_dot, 1 };

KQ_FORMAT(q2, "Q2_K", blk_q2_k, kq_shape_q2)
KQ_FORMAT(q3, "Q3_K", blk_q3_k, kq_shape_q3)
KQ_FORMAT(q4, "Q4_K", blk_q4_k, kq_shape_q4)
KQ_FORMAT(q5, "Q5_K", blk_q5_k, kq_shape_q5)
KQ_FORMAT(q6, "Q6_K", blk_q6_k, kq_shape_q6)

/* ---- Q8_K: float scale, 256 int8, sums of each 16 ---- */
static void q8_k_to_float(const void *src, float *dst, int64_t n)
{
    const blk_q8_k *b = src;
    for (int64_t i = 0; i < n / QKK; i++)
        for (int j = 0; j < QKK; j++) dst[i * QKK + j] = b[i].d * (float)b[i].qs[j];
}

static void q8_k_from_float(const float *src, void *dst, int64_t n)
{
    blk_q8_k *b = dst;
    for (int64_t i = 0; i < n / QKK; i++) {
        const float *x = src + i * QKK;
        float amax = 0;
        for (int j = 0; j < QKK; j++) amax = fmaxf(amax, fabsf(x[j]));
        b[i].d = amax / 127.0f;
        float id = amax != 0 ? 127.0f / amax : 0;
        for (int j = 0; j < QKK; j++) {
            int l = sd_nearest(x[j] * id);
            b[i].qs[j] = (int8_t)(l > 127 ? 127 : l < -127 ? -127 : l);
        }
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += b[i].qs[16 * g + j];
            b[i].bsums[g] = (int16_t)s;
        }
    }
}

static float q8_k_dot(int64_t n, const void *w, const void *x)
{
    const blk_q8_k *a = w, *b = x;
    double sum = 0;
    for (int64_t i = 0; i < n / QKK; i++) {
        int s = 0;
        for (int j = 0; j < QKK; j++) s += a[i].qs[j] * b[i].qs[j];
        sum += (double)a[i].d * (double)b[i].d * s;
    }
    return (float)sum;
}

const sd_type_traits sd_traits_q8_k = { "Q8_K", QKK, sizeof(blk_q8_k), q8_k_to_float, q8_k_from_float, SD_TYPE_Q8_K, q8_k_dot, 1 };
