#pragma once
// BiT's ResNet as DPT-Hybrid's backbone (transformers' BitBackbone with layer_type "bottleneck"
// and global_padding "same"; timm's ResNetV2 without pre-activation in MiDaS):
//   conv(x)     a weight-standardised convolution: each output channel's kernel less its mean,
//               over its standard deviation (biased, eps 1e-8), no bias; TensorFlow's "same"
//               padding (total max((⌈n/s⌉ − 1)·s + k − n, 0), the smaller half before)
//   stem        conv 7×7/2, GroupNorm + ReLU, max pool 3×3/2 ("same", zero padded: its input is
//               ReLU's, ≥ 0)
//   bottleneck  relu(gn₃(conv₁ₓ₁(relu(gn₂(conv₃ₓ₃/s(relu(gn₁(conv₁ₓ₁(x))))))) + shortcut), the
//               shortcut gn(conv₁ₓ₁/s(x)) in a stage's first layer, x in the others
//   stages      stride 1, 2, 2: outputs at 1/4, 1/8 and 1/16 of the input
// Weights under "backbone.stem.{conv,norm}" and "backbone.stages.S.layers.L.…"
// (model/depth_estimator_file.h); GroupNorm eps 1e-5.
#include <array>
#include <cstdint>
#include <vector>

#include "ggml.h"
#include "model/network_weights.h"
#include "nets/nn_layers.h"

namespace sd::nn {

struct BitShape {
    int64_t groups = 32;
    std::vector<int64_t> stage_layers;  // bottlenecks per stage (3 stages)
    bool cpu = false;                   // the graph runs on the CPU backend (nn_layers' norms)
    ConvPath path = ConvPath::im2col;
};

// pixels ne = (W, H, 3, B) → each stage's output, ne = (W/4, H/4, C₀, B), (W/8, …), (W/16, …).
std::array<ggml_tensor *, 3> bit_backbone(ggml_context * ctx, const NetworkWeights & w, ggml_tensor * pixels, const BitShape & shape);

} // namespace sd::nn
