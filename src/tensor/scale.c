#include "tensor/scale.h"

float sd_tensor_scale(const gguf_file *f, const gguf_tensor *t)
{
    (void)f; (void)t;
    return 1.0f;
}
