#pragma once
// GEGLU with the exact (erf) GELU, as diffusers' FeedForward computes it, for graphs computed
// on the CPU backend: x ne = (2·F, ...) holds [hidden | gate] along ne0 → hidden · gelu(gate),
// ne = (F, ...).
//
// Why our own op: ggml's CPU GEGLU calls the C library's scalar erff once per value, 3% of a
// 256² SD 1.5 UNet step. Ours evaluates erf with Abramowitz & Stegun's formula 7.1.26
// (|error| ≤ 1.5e-7) over whole rows, which the compiler vectorizes (vector_clones.h).
// Custom ops run only on the CPU backend; other backends keep ggml_geglu_erf_swapped.
#include "ggml.h"

namespace sd::nn {

ggml_tensor * geglu_erf_cpu(ggml_context * ctx, ggml_tensor * x);

} // namespace sd::nn
