/* The per-tensor second-level scale, kept in the metadata under
 * SD_TENSOR_SCALE_PREFIX + tensor name (an f32) rather than as an extra
 * tensor, which other GGUF readers would reject. */
#include <math.h>
#include <stdio.h>

#include "tensor/scale.h"
#include "tensor/types.h"

float sd_tensor_scale(const gguf_file *f, const gguf_tensor *t)
{
    if (!f || !t) return 1.0f;
    char key[512], err[512];
    int n = snprintf(key, sizeof key, "%s%.*s", SD_TENSOR_SCALE_PREFIX,
                     (int)(t->name.len < 400 ? t->name.len : 400), t->name.ptr);
    if (n <= 0 || (size_t)n >= sizeof key || t->name.len >= 400) return 1.0f;
    float v;
    /* absent, of another type, or not a usable factor: no scale */
    if (gguf_get_f32(f, key, &v, err) != 1 || !isfinite(v) || v <= 0) return 1.0f;
    return v;
}
