// matvec.comp's decoders: unit32(rb, u, v, mo) decodes values 32u .. 32u+31
// of the row starting at byte rb of W into v, as GGUF stores them (one
// format per compiled kernel, FMT_<name>). A unit is a whole block of the
// 32-value formats, a half block of NVFP4 (two 16-value scales) and a
// 32-value sub-block of the K-quants, so a thread reads each scale once and
// the quants a word at a time. mo: Q4_1/Q5_1's block offset (m), which the
// kernel multiplies by the activation block's sum as the CPU does; 0 else.
// Past the last column (F32/F16/BF16 rows of any length) v is 0.

// Four bytes at any byte offset o (blocks of 18, 22, 34, 110, 210 bytes
// leave rows and blocks 2-byte aligned only).
uint w32(uint o)
{
    uint i = o >> 2, sh = (o & 3u) << 3;
    return sh == 0u ? W[i] : (W[i] >> sh) | (W[i + 1u] << (32u - sh));
}

void unit32(uint rb, uint u, out float v[32], out float mo)
{
    mo = 0.0;
#if defined(FMT_F32) || defined(FMT_F16) || defined(FMT_BF16)
    uint j0 = 32u * u;
#if defined(FMT_F32)
    [[unroll]] for (uint i = 0u; i < 32u; i++) v[i] = j0 + i < p.cols ? uintBitsToFloat(W[(rb >> 2) + j0 + i]) : 0.0;
#else
    if ((rb & 3u) == 0u && j0 + 32u <= p.cols) {
        // Two halves per word read.
        [[unroll]] for (uint w = 0u; w < 16u; w++) {
            uint x = W[(rb >> 2) + j0 / 2u + w];
#ifdef FMT_F16
            vec2 h = unpackHalf2x16(x);
            v[2u * w] = h.x; v[2u * w + 1u] = h.y;
#else
            v[2u * w] = uintBitsToFloat(x << 16); v[2u * w + 1u] = uintBitsToFloat(x & 0xffff0000u);
#endif
        }
    } else {
        [[unroll]] for (uint i = 0u; i < 32u; i++) v[i] = j0 + i < p.cols ? wv(rb, j0 + i) : 0.0;
    }
#endif
#elif defined(FMT_Q4_0) || defined(FMT_Q4_1) || defined(FMT_MXFP4) || defined(FMT_IQ4_NL)
#if defined(FMT_Q4_0) || defined(FMT_IQ4_NL)
    uint bb = rb + u * 18u, qo = bb + 2u;
    float d = h16(bb);
#elif defined(FMT_Q4_1)
    uint bb = rb + u * 20u, qo = bb + 4u;
    float d = h16(bb);
    mo = h16(bb + 2u);
#else
    // {e (E8M0), qs[16]}: 2^(e-128) times the E2M1 code's doubled value
    uint bb = rb + u * 17u, qo = bb + 1u, e = b8(bb);
    float d = e < 2u ? uintBitsToFloat(0x00200000u << e) : uintBitsToFloat((e - 1u) << 23);
#endif
    [[unroll]] for (uint w = 0u; w < 4u; w++) {
        uint q = w32(qo + 4u * w);
        [[unroll]] for (uint i = 0u; i < 4u; i++) {
            uint lo = (q >> (8u * i)) & 15u, hi = (q >> (8u * i + 4u)) & 15u;
#if defined(FMT_Q4_0)
            v[4u * w + i] = d * (float(lo) - 8.0); v[4u * w + i + 16u] = d * (float(hi) - 8.0);
#elif defined(FMT_Q4_1)
            v[4u * w + i] = d * float(lo); v[4u * w + i + 16u] = d * float(hi);
#elif defined(FMT_IQ4_NL)
            v[4u * w + i] = d * IQ4NL[lo]; v[4u * w + i + 16u] = d * IQ4NL[hi];
#else
            v[4u * w + i] = E2M1[lo] * d; v[4u * w + i + 16u] = E2M1[hi] * d;
#endif
        }
    }
#elif defined(FMT_Q5_0) || defined(FMT_Q5_1)
#ifdef FMT_Q5_0
    uint bb = rb + u * 22u, ho = bb + 2u;
    float d = h16(bb);
#else
    uint bb = rb + u * 24u, ho = bb + 4u;
    float d = h16(bb);
    mo = h16(bb + 2u);
#endif
    uint h = w32(ho);
    [[unroll]] for (uint w = 0u; w < 4u; w++) {
        uint q = w32(ho + 4u + 4u * w);
        [[unroll]] for (uint i = 0u; i < 4u; i++) {
            uint l = 4u * w + i;
            uint lo = ((q >> (8u * i)) & 15u) | (((h >> l) & 1u) << 4);
            uint hi = ((q >> (8u * i + 4u)) & 15u) | (((h >> (l + 16u)) & 1u) << 4);
#ifdef FMT_Q5_0
            v[l] = d * (float(lo) - 16.0); v[l + 16u] = d * (float(hi) - 16.0);
#else
            v[l] = d * float(lo); v[l + 16u] = d * float(hi);
#endif
        }
    }
#elif defined(FMT_Q8_0)
    uint bb = rb + u * 34u;
    float d = h16(bb);
    [[unroll]] for (uint w = 0u; w < 8u; w++) {
        uint q = w32(bb + 2u + 4u * w);
        [[unroll]] for (uint i = 0u; i < 4u; i++) v[4u * w + i] = d * float(int(q << (24u - 8u * i)) >> 24);
    }
#elif defined(FMT_NVFP4)
    // {d[4] (UE4M3 per 16), qs[32]}: unit u is sub-blocks 2(u%2), 2(u%2)+1
    uint bb = rb + (u / 2u) * 36u;
    [[unroll]] for (uint ss = 0u; ss < 2u; ss++) {
        uint s = 2u * (u % 2u) + ss, db = b8(bb + s), e = (db >> 3) & 15u, m = db & 7u;
        float d = db >= 127u ? uintBitsToFloat(0x7fc00000u)
                : 0.5 * (e == 0u ? float(m) / 512.0 : ldexp(1.0 + float(m) / 8.0, int(e) - 7));
        [[unroll]] for (uint w = 0u; w < 2u; w++) {
            uint q = W[(bb + 4u + 8u * s) / 4u + w];   // 36-byte blocks: word-aligned
            [[unroll]] for (uint i = 0u; i < 4u; i++) {
                v[16u * ss + 4u * w + i] = E2M1[(q >> (8u * i)) & 15u] * d;
                v[16u * ss + 4u * w + i + 8u] = E2M1[(q >> (8u * i + 4u)) & 15u] * d;
            }
        }
    }
#elif defined(FMT_Q2_K)
    // {scales[16], qs[64], d, dmin}; unit k: quants 2 bits at shift 2(k%4) of qs[32(k/4) + l]
    uint b = rb + (u / 8u) * 84u, k = u % 8u, qo = b + 16u + 32u * (k / 4u), sh = 2u * (k % 4u);
    float d = h16(b + 80u), dm = h16(b + 82u);
    uint s0 = b8(b + 2u * k), s1 = b8(b + 2u * k + 1u);
    float dl[2] = float[2](d * float(s0 & 15u), d * float(s1 & 15u));
    float ml[2] = float[2](dm * float(s0 >> 4), dm * float(s1 >> 4));
    [[unroll]] for (uint w = 0u; w < 8u; w++) {
        uint q = w32(qo + 4u * w);
        [[unroll]] for (uint i = 0u; i < 4u; i++)
            v[4u * w + i] = dl[w / 4u] * float((q >> (8u * i + sh)) & 3u) - ml[w / 4u];
    }
#elif defined(FMT_Q3_K)
    // {hmask[32], qs[64], scales[12], d}; unit k: low 2 bits as Q2_K, high bit k of hmask[l]
    uint b = rb + (u / 8u) * 110u, k = u % 8u, qo = b + 32u + 32u * (k / 4u), sh = 2u * (k % 4u), s = b + 96u;
    float d = h16(b + 108u), dl[2];
    [[unroll]] for (uint g = 0u; g < 2u; g++) {
        uint k16 = 2u * k + g;
        uint lo = k16 < 8u ? (b8(s + k16) & 15u) : (b8(s + k16 - 8u) >> 4);
        uint hi = (b8(s + 8u + k16 % 4u) >> (2u * (k16 / 4u))) & 3u;
        dl[g] = d * float(int(lo | (hi << 4)) - 32);
    }
    [[unroll]] for (uint w = 0u; w < 8u; w++) {
        uint q = w32(qo + 4u * w), hm = w32(b + 4u * w);
        [[unroll]] for (uint i = 0u; i < 4u; i++) {
            int L = int(((q >> (8u * i + sh)) & 3u) | (((hm >> (8u * i + k)) & 1u) << 2)) - 4;
            v[4u * w + i] = dl[w / 4u] * float(L);
        }
    }
#elif defined(FMT_Q4_K) || defined(FMT_Q5_K)
    // {d, dmin, scales[12], (Q5_K: qh[32],) qs[128]}: sub-block k is the
    // low (k even) or high nibbles of qs[32(k/2) + l]; 144 and 176-byte
    // super-blocks keep rows word-aligned.
#ifdef FMT_Q4_K
    uint b = rb + (u / 8u) * 144u, qo = b + 16u;
#else
    uint b = rb + (u / 8u) * 176u, qo = b + 48u;
#endif
    uint k = u % 8u, q0 = (qo + 32u * (k / 2u)) >> 2, sh = (k & 1u) * 4u;
    float sc, mn;
    sm6(b + 4u, k, sc, mn);
    float d = h16(b) * sc, m = h16(b + 2u) * mn;
    [[unroll]] for (uint w = 0u; w < 8u; w++) {
        uint q = W[q0 + w] >> sh;
#ifdef FMT_Q5_K
        uint hb = W[((b + 16u) >> 2) + w] >> k;
#endif
        [[unroll]] for (uint i = 0u; i < 4u; i++) {
            uint L = (q >> (8u * i)) & 15u;
#ifdef FMT_Q5_K
            L |= ((hb >> (8u * i)) & 1u) << 4;
#endif
            v[4u * w + i] = d * float(L) - m;
        }
    }
#elif defined(FMT_Q6_K)
    // {ql[128], qh[64], scales[16] (int8), d}; unit k = 4h + g: low 4 bits in
    // ql[64h + 32(g%2) + l] at shift 4(g/2), high 2 in qh[32h + l] at 2g
    uint b = rb + (u / 8u) * 210u, k = u % 8u, h = k / 4u, g = k % 4u;
    uint lo_o = b + 64u * h + 32u * (g % 2u), hi_o = b + 128u + 32u * h, ls = 4u * (g / 2u), hs = 2u * g;
    float d = h16(b + 208u);
    float dl[2] = float[2](d * float(s8(b + 192u + 2u * k)), d * float(s8(b + 193u + 2u * k)));
    [[unroll]] for (uint w = 0u; w < 8u; w++) {
        uint ql = w32(lo_o + 4u * w), qh = w32(hi_o + 4u * w);
        [[unroll]] for (uint i = 0u; i < 4u; i++) {
            int L = int(((ql >> (8u * i + ls)) & 15u) | (((qh >> (8u * i + hs)) & 3u) << 4)) - 32;
            v[4u * w + i] = dl[w / 4u] * float(L);
        }
    }
#else
#error FMT_ not defined
#endif
}
