#pragma once
// GroupNorm and LayerNorm with their affine (and, for GroupNorm, the SiLU that follows it in
// every ResNet block) as one op each, for graphs computed on the CPU backend.
//
// Why our own ops: through ggml a norm is three or four passes over the activations (the norm,
// the scale, the shift, the SiLU), each its own op with a barrier after it; the scale and shift
// alone took 7 % of a 256² SD 1.5 UNet step (bench/README.md, "Profile"). Here the statistics
// take two passes over a group (or row) while it is in cache and the third writes the result.
// Custom ops run only on the CPU backend; other backends keep ggml's ops.
#include "ggml.h"

namespace sd::nn {

// x ne = (W, H, C, N) F32; weight and bias ne = (C) F32. SiLU after the affine if `then_silu`.
ggml_tensor * group_norm_cpu(ggml_context * ctx, ggml_tensor * x, ggml_tensor * weight, ggml_tensor * bias, int groups,
                             float eps, bool then_silu);

// x ne = (C, ...) F32, normalised over ne0; weight and bias ne = (C) F32.
ggml_tensor * layer_norm_cpu(ggml_context * ctx, ggml_tensor * x, ggml_tensor * weight, ggml_tensor * bias, float eps);

// False when SDNODE_NORM=ggml asks for ggml's ops instead (benchmarks compare the two); read at
// each call (graph building).
bool norm_cpu_enabled();

} // namespace sd::nn
