#include "nets/dpt.h"

#include <string>

#include "nets/clip_transformer.h"
#include "nets/dpt_backbone_bit.h"

namespace sd::nn {

namespace {

// PyTorch's bilinear ×2 with align_corners=True, as DPT's fusion blocks and head upsample.
ggml_tensor * upsample2(ggml_context * ctx, ggml_tensor * x) {
    return ggml_interpolate(ctx, x, x->ne[0] * 2, x->ne[1] * 2, x->ne[2], x->ne[3],
                            GGML_SCALE_MODE_BILINEAR | GGML_SCALE_FLAG_ALIGN_CORNERS);
}

// The token sequence of one tapped layer (hidden, 1 + grid², B) → a feature map (grid, grid,
// hidden, B): each patch token concatenated with the class token, linear + GELU ("project"
// readout).
ggml_tensor * readout(ggml_context * ctx, const NetworkWeights & w, const std::string & name, ggml_tensor * tokens, int64_t grid) {
    const int64_t hidden = tokens->ne[0], count = tokens->ne[1] - 1, batch = tokens->ne[2];
    ggml_tensor * cls = ggml_view_3d(ctx, tokens, hidden, 1, batch, tokens->nb[1], tokens->nb[2], 0);
    ggml_tensor * patches = ggml_view_3d(ctx, tokens, hidden, count, batch, tokens->nb[1], tokens->nb[2], tokens->nb[1]);
    ggml_tensor * both = ggml_concat(ctx, ggml_cont(ctx, patches), ggml_repeat_4d(ctx, ggml_cont(ctx, cls), hidden, count, batch, 1), 0);
    ggml_tensor * h = ggml_gelu_erf(ctx, linear(ctx, w, name, both));
    return from_sequence(ctx, h, grid, grid);
}

// Pre-activated residual unit: x + conv₂(relu(conv₁(relu(x)))).
ggml_tensor * residual_unit(ggml_context * ctx, const NetworkWeights & w, const std::string & name, ggml_tensor * x, ConvPath path) {
    ggml_tensor * h = conv2d(ctx, w, name + ".convolution1", ggml_relu(ctx, x), 1, 1, path);
    h = conv2d(ctx, w, name + ".convolution2", ggml_relu(ctx, h), 1, 1, path);
    return ggml_add(ctx, x, h);
}

ggml_tensor * fusion_block(ggml_context * ctx, const NetworkWeights & w, const std::string & name, ggml_tensor * x,
                           ggml_tensor * residual, ConvPath path) {
    if (residual != nullptr) x = ggml_add(ctx, x, residual_unit(ctx, w, name + ".residual_layer1", residual, path));
    x = upsample2(ctx, residual_unit(ctx, w, name + ".residual_layer2", x, path));
    return conv2d(ctx, w, name + ".projection", x, 1, 0, path);
}

} // namespace

ggml_tensor * dpt_depth(ggml_context * ctx, const NetworkWeights & w, const DepthEstimatorFile & f, ggml_tensor * pixels,
                        ConvPath path, bool cpu) {
    const int64_t batch = pixels->ne[3];
    const BitShape bit{f.groups, f.stage_layers, cpu, path};
    const std::array<ggml_tensor *, 3> stages = bit_backbone(ctx, w, pixels, bit);

    // ViT on the 1/16 map: a 1×1 projection's pixels as tokens after the class token.
    ggml_tensor * x = to_sequence(ctx, conv2d(ctx, w, "embeddings.projection", stages[2], 1, 0, path));
    ggml_tensor * cls = ggml_reshape_3d(ctx, as_f32(ctx, w.get("embeddings.cls_token")), f.hidden, 1, 1);
    x = ggml_concat(ctx, ggml_repeat_4d(ctx, cls, f.hidden, 1, batch, 1), x, 1);
    x = ggml_add(ctx, x, ggml_reshape_2d(ctx, as_f32(ctx, w.get("embeddings.position_embeddings")), f.hidden, f.grid * f.grid + 1));
    const ClipTransformerShape shape{f.hidden, f.heads, f.layer_norm_eps, /*quick_gelu*/ false, /*causal*/ false};
    ggml_tensor * taps[2] = {nullptr, nullptr};
    for (int64_t l = 0; l <= std::max(f.taps[0], f.taps[1]); ++l) {
        x = clip_encoder_layer(ctx, w, "encoder.layers." + std::to_string(l), x, shape);
        for (int t = 0; t < 2; ++t) {
            if (f.taps[t] == l) taps[t] = x;
        }
    }

    // Neck: the first two backbone stages as they are, the two taps reassembled.
    ggml_tensor * features[4] = {stages[0], stages[1], nullptr, nullptr};
    for (int i = 2; i < 4; ++i) {
        const std::string is = std::to_string(i);
        ggml_tensor * map = readout(ctx, w, "neck.reassemble_stage.readout_projects." + is + ".0", taps[i - 2], f.grid);
        map = conv2d(ctx, w, "neck.reassemble_stage.layers." + is + ".projection", map, 1, 0, path);
        if (i == 3) map = conv2d(ctx, w, "neck.reassemble_stage.layers.3.resize", map, 2, 1, path);
        features[i] = map;
    }
    for (int i = 0; i < 4; ++i) features[i] = conv2d(ctx, w, "neck.convs." + std::to_string(i), features[i], 1, 1, path);
    ggml_tensor * fused = nullptr;
    for (int i = 0; i < 4; ++i) {
        const std::string name = "neck.fusion_stage.layers." + std::to_string(i);
        fused = i == 0 ? fusion_block(ctx, w, name, features[3], nullptr, path) : fusion_block(ctx, w, name, fused, features[3 - i], path);
    }

    // Head.
    ggml_tensor * h = upsample2(ctx, conv2d(ctx, w, "head.head.0", fused, 1, 1, path));
    h = ggml_relu(ctx, conv2d(ctx, w, "head.head.2", h, 1, 1, path));
    h = ggml_relu(ctx, conv2d(ctx, w, "head.head.4", h, 1, 0, path));
    return ggml_reshape_3d(ctx, h, h->ne[0], h->ne[1], batch);
}

} // namespace sd::nn
