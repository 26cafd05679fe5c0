#pragma once
// DPT-Hybrid's graph (sdcore/depth_estimator.h gives the maths): the BiT backbone
// (nets/dpt_backbone_bit.h), the ViT on its 1/16 map (nets/clip_transformer.h's pre-norm layer,
// GELU, no mask), the neck and the depth head, reading the canonical names of
// model/depth_estimator_file.h.
#include "ggml.h"
#include "model/depth_estimator_file.h"
#include "model/network_weights.h"
#include "nets/nn_layers.h"

namespace sd::nn {

// pixels ne = (S, S, 3, B) → predicted depth ne = (S, S, B). `cpu`: the graph runs on the CPU
// backend.
ggml_tensor * dpt_depth(ggml_context * ctx, const NetworkWeights & w, const DepthEstimatorFile & f, ggml_tensor * pixels,
                        ConvPath path, bool cpu);

} // namespace sd::nn
