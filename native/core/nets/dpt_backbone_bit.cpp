#include "nets/dpt_backbone_bit.h"

#include <algorithm>
#include <string>

namespace sd::nn {

namespace {

constexpr float kStandardizeEps = 1e-8f;
constexpr float kGroupNormEps = 1e-5f;

// "same" padding of one side: (before, after).
std::pair<int, int> same_padding(int64_t size, int64_t kernel, int64_t stride) {
    const int64_t out = (size + stride - 1) / stride;
    const int64_t total = std::max<int64_t>((out - 1) * stride + kernel - size, 0);
    return {static_cast<int>(total / 2), static_cast<int>(total - total / 2)};
}

ggml_tensor * pad_same(ggml_context * ctx, ggml_tensor * x, int64_t kernel, int64_t stride) {
    const auto [left, right] = same_padding(x->ne[0], kernel, stride);
    const auto [top, bottom] = same_padding(x->ne[1], kernel, stride);
    if (left == 0 && right == 0 && top == 0 && bottom == 0) return x;
    return ggml_pad_ext(ctx, x, left, right, top, bottom, 0, 0, 0, 0);
}

// The kernel standardised per output channel, as BiT computes it on every forward (a batch norm
// over each output channel's KW·KH·IC values): ggml's norm over the flattened kernel.
ggml_tensor * standardized_kernel(ggml_context * ctx, const NetworkWeights & w, const std::string & name) {
    ggml_tensor * k = as_f32(ctx, w.get(name + ".weight"));
    if (!ggml_is_contiguous(k)) k = ggml_cont(ctx, k);
    ggml_tensor * flat = ggml_norm(ctx, ggml_reshape_2d(ctx, k, k->ne[0] * k->ne[1] * k->ne[2], k->ne[3]), kStandardizeEps);
    return ggml_reshape_4d(ctx, flat, k->ne[0], k->ne[1], k->ne[2], k->ne[3]);
}

ggml_tensor * conv(ggml_context * ctx, const NetworkWeights & w, const std::string & name, ggml_tensor * x, int stride,
                   const BitShape & s) {
    ggml_tensor * kernel = standardized_kernel(ctx, w, name);
    return conv2d_kernel(ctx, pad_same(ctx, x, kernel->ne[0], stride), kernel, nullptr, stride, 0, s.path);
}

ggml_tensor * norm(ggml_context * ctx, const NetworkWeights & w, const std::string & name, ggml_tensor * x, bool relu,
                   const BitShape & s) {
    ggml_tensor * y = group_norm(ctx, w, name, x, static_cast<int>(s.groups), kGroupNormEps, s.cpu);
    return relu ? ggml_relu(ctx, y) : y;
}

ggml_tensor * bottleneck(ggml_context * ctx, const NetworkWeights & w, const std::string & name, ggml_tensor * x, int stride,
                         bool first, const BitShape & s) {
    ggml_tensor * shortcut = x;
    if (first) shortcut = norm(ctx, w, name + ".downsample.norm", conv(ctx, w, name + ".downsample.conv", x, stride, s), false, s);
    ggml_tensor * h = norm(ctx, w, name + ".norm1", conv(ctx, w, name + ".conv1", x, 1, s), true, s);
    h = norm(ctx, w, name + ".norm2", conv(ctx, w, name + ".conv2", h, stride, s), true, s);
    h = norm(ctx, w, name + ".norm3", conv(ctx, w, name + ".conv3", h, 1, s), false, s);
    return ggml_relu(ctx, ggml_add(ctx, h, shortcut));
}

} // namespace

std::array<ggml_tensor *, 3> bit_backbone(ggml_context * ctx, const NetworkWeights & w, ggml_tensor * pixels, const BitShape & s) {
    ggml_tensor * x = norm(ctx, w, "backbone.stem.norm", conv(ctx, w, "backbone.stem.conv", pixels, 2, s), true, s);
    x = ggml_pool_2d(ctx, pad_same(ctx, x, 3, 2), GGML_OP_POOL_MAX, 3, 3, 2, 2, 0, 0);
    std::array<ggml_tensor *, 3> out{};
    for (size_t stage = 0; stage < out.size(); ++stage) {
        const int stride = stage == 0 ? 1 : 2;
        for (int64_t l = 0; l < s.stage_layers[stage]; ++l) {
            const std::string name = "backbone.stages." + std::to_string(stage) + ".layers." + std::to_string(l);
            x = bottleneck(ctx, w, name, x, l == 0 ? stride : 1, l == 0, s);
        }
        out[stage] = x;
    }
    return out;
}

} // namespace sd::nn
