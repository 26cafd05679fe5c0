#pragma once
// F16 ↔ F32 rows for our own custom ops. ggml-base's ggml_fp16_to_fp32_row and
// ggml_fp32_to_fp16_row are portable scalar code (a quarter of a VAE decode when the unfolding
// op used them); x86 CPUs with F16C convert 8 values per instruction with the same
// round-to-nearest-even, so the values are identical. The F16C path is chosen at run time.
#include <cstdint>

#include "ggml.h"

namespace sd {

void fp32_to_fp16(const float * x, ggml_fp16_t * y, int64_t n);
void fp16_to_fp32(const ggml_fp16_t * x, float * y, int64_t n);

} // namespace sd
