// The weight decoders shared by matvec.comp and matmul.comp: wv(rb, j) is
// value j of the row starting at byte rb of W (a uint[] buffer the including
// shader declares), as GGUF stores it; FMT_<name> picks the format, so each
// compiled kernel carries one format's decoder only.
uint b8(uint o) { return (W[o >> 2] >> ((o & 3u) << 3)) & 255u; }
uint b16(uint o) { return b8(o) | (b8(o + 1u) << 8); }
float h16(uint o) { return unpackHalf2x16(b16(o)).x; }
int s8(uint o) { return int(b8(o) << 24) >> 24; }

#if defined(FMT_MXFP4) || defined(FMT_NVFP4)
const float E2M1[16] = float[16](0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
#endif
#ifdef FMT_IQ4_NL
const float IQ4NL[16] = float[16](-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
#endif
#if defined(FMT_Q4_K) || defined(FMT_Q5_K)
// 6-bit scale and min of sub-block k (tensor/q_k.c get_sm6); s: scales offset
void sm6(uint s, uint k, out float sc, out float mn)
{
    if (k < 4u) { sc = float(b8(s + k) & 63u); mn = float(b8(s + k + 4u) & 63u); }
    else {
        sc = float((b8(s + k + 4u) & 15u) | ((b8(s + k - 4u) >> 6) << 4));
        mn = float((b8(s + k + 4u) >> 4) | ((b8(s + k) >> 6) << 4));
    }
}
#endif

// Value j of the row starting at byte rb.
float wv(uint rb, uint j)
{
#if defined(FMT_F32)
    return uintBitsToFloat(W[(rb >> 2) + j]);
#elif defined(FMT_F16)
    return h16(rb + 2u * j);
#elif defined(FMT_BF16)
    return uintBitsToFloat(b16(rb + 2u * j) << 16);
#elif defined(FMT_Q8_0)
    uint b = rb + (j / 32u) * 34u;
    return h16(b) * float(s8(b + 2u + j % 32u));
#elif defined(FMT_Q4_0) || defined(FMT_Q4_1)
#ifdef FMT_Q4_0
    uint b = rb + (j / 32u) * 18u, q = b + 2u;
#else
    uint b = rb + (j / 32u) * 20u, q = b + 4u;
#endif
    uint i = j % 32u, v = i < 16u ? (b8(q + i) & 15u) : (b8(q + i - 16u) >> 4);
#ifdef FMT_Q4_0
    return h16(b) * (float(v) - 8.0);
#elif defined(SPLIT_MIN)
    return float(v) * h16(b);   // the includer adds m times the activation sum
#else
    return float(v) * h16(b) + h16(b + 2u);
#endif
#elif defined(FMT_Q5_0) || defined(FMT_Q5_1)
#ifdef FMT_Q5_0
    uint b = rb + (j / 32u) * 22u, qh = b + 2u;
#else
    uint b = rb + (j / 32u) * 24u, qh = b + 4u;
#endif
    uint i = j % 32u, q = qh + 4u;
    uint h = b8(qh) | (b8(qh + 1u) << 8) | (b8(qh + 2u) << 16) | (b8(qh + 3u) << 24);
    uint v = (i < 16u ? (b8(q + i) & 15u) : (b8(q + i - 16u) >> 4)) | (((h >> i) & 1u) << 4);
#ifdef FMT_Q5_0
    return h16(b) * (float(v) - 16.0);
#elif defined(SPLIT_MIN)
    return float(v) * h16(b);
#else
    return float(v) * h16(b) + h16(b + 2u);
#endif
#elif defined(FMT_Q2_K)
    // {scales[16], qs[64], d, dmin}
    uint b = rb + (j / 256u) * 84u, i = j % 256u, k = i / 16u;
    uint sc = b8(b + k);
    uint L = (b8(b + 16u + 32u * (i / 128u) + i % 32u) >> (2u * ((i % 128u) / 32u))) & 3u;
    return h16(b + 80u) * float(sc & 15u) * float(L) - h16(b + 82u) * float(sc >> 4);
#elif defined(FMT_Q3_K)
    // {hmask[32], qs[64], scales[12], d}
    uint b = rb + (j / 256u) * 110u, i = j % 256u, k = i / 16u, s = b + 96u;
    uint lo = k < 8u ? (b8(s + k) & 15u) : (b8(s + k - 8u) >> 4);
    uint hi = (b8(s + 8u + k % 4u) >> (2u * (k / 4u))) & 3u;
    int sc = int(lo | (hi << 4)) - 32;
    uint low = (b8(b + 32u + 32u * (i / 128u) + i % 32u) >> (2u * ((i % 128u) / 32u))) & 3u;
    uint high = (b8(b + i % 32u) >> (4u * (i / 128u) + (i % 128u) / 32u)) & 1u;
    return h16(b + 108u) * float(sc) * float(int(low | (high << 2)) - 4);
#elif defined(FMT_Q4_K)
    // {d, dmin, scales[12], qs[128]}
    uint b = rb + (j / 256u) * 144u, i = j % 256u;
    float sc, mn;
    sm6(b + 4u, i / 32u, sc, mn);
    uint L = (b8(b + 16u + 32u * (i / 64u) + i % 32u) >> ((i % 64u) < 32u ? 0u : 4u)) & 15u;
    return h16(b) * sc * float(L) - h16(b + 2u) * mn;
#elif defined(FMT_Q5_K)
    // {d, dmin, scales[12], qh[32], qs[128]}
    uint b = rb + (j / 256u) * 176u, i = j % 256u;
    float sc, mn;
    sm6(b + 4u, i / 32u, sc, mn);
    uint low = (b8(b + 48u + 32u * (i / 64u) + i % 32u) >> ((i % 64u) < 32u ? 0u : 4u)) & 15u;
    uint high = (b8(b + 16u + i % 32u) >> (i / 32u)) & 1u;
    return h16(b) * sc * float(low | (high << 4)) - h16(b + 2u) * mn;
#elif defined(FMT_Q6_K)
    // {ql[128], qh[64], scales[16] (int8), d}
    uint b = rb + (j / 256u) * 210u, i = j % 256u;
    uint low = (b8(b + 64u * (i / 128u) + 32u * ((i % 128u) / 32u % 2u) + i % 32u) >> ((i % 128u) < 64u ? 0u : 4u)) & 15u;
    uint high = (b8(b + 128u + 32u * (i / 128u) + i % 32u) >> (2u * ((i % 128u) / 32u))) & 3u;
    return h16(b + 208u) * float(s8(b + 192u + i / 16u)) * float(int(low | (high << 4)) - 32);
#elif defined(FMT_MXFP4)
    // {e (E8M0), qs[16]}: 2^(e-128) times the E2M1 code's doubled value
    uint b = rb + (j / 32u) * 17u, i = j % 32u;
    uint e = b8(b), c = i < 16u ? (b8(b + 1u + i) & 15u) : (b8(b + 1u + i - 16u) >> 4);
    float d = e < 2u ? uintBitsToFloat(0x00200000u << e) : uintBitsToFloat((e - 1u) << 23);
    return E2M1[c] * d;
#elif defined(FMT_NVFP4)
    // {d[4] (UE4M3 per 16), qs[32]}
    uint b = rb + (j / 64u) * 36u, i = j % 64u, s = i / 16u, l = i % 16u;
    uint db = b8(b + s), e = (db >> 3) & 15u, m = db & 7u;
    float d = db >= 127u ? uintBitsToFloat(0x7fc00000u)
            : 0.5 * (e == 0u ? float(m) / 512.0 : ldexp(1.0 + float(m) / 8.0, int(e) - 7));
    uint q = b8(b + 4u + 8u * s + l % 8u), c = l < 8u ? (q & 15u) : (q >> 4);
    return E2M1[c] * d;
#elif defined(FMT_IQ4_NL)
    // {d (F16), qs[16]}: d times the table level of the 4-bit index
    uint b = rb + (j / 32u) * 18u, i = j % 32u;
    uint c = i < 16u ? (b8(b + 2u + i) & 15u) : (b8(b + 2u + i - 16u) >> 4);
    return h16(b) * IQ4NL[c];
#else
#error FMT_ not defined
#endif
}
