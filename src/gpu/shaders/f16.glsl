// x rounded to the nearest F16 value, ties to even, as the CPU's
// sd_f32_to_f16 (packHalf2x16 leaves the rounding to the implementation).
float f16r(float x)
{
    float a = abs(x), r;
    if (isnan(x)) return x;
    if (a >= 65520.0) r = uintBitsToFloat(0x7f800000u);
    else if (a < 6.103515625e-05) r = roundEven(a * 16777216.0) / 16777216.0;   // subnormal: steps of 2^-24
    else {
        uint m = floatBitsToUint(a);
        r = uintBitsToFloat((m + 0xfffu + ((m >> 13) & 1u)) & 0xffffe000u);
    }
    return x < 0.0 ? -r : r;
}
