#include "nets/clip_transformer.h"

#include <cmath>

#include "nets/nn_layers.h"

namespace sd::nn {

namespace {

// x [in, n, B] → [out, n, B]; the weight is PyTorch's [out, in], i.e. ggml's [in, out].
ggml_tensor * biased_linear(ggml_context * ctx, const NetworkWeights & w, const std::string & name, ggml_tensor * x) {
    ggml_tensor * y = ggml_mul_mat(ctx, w.get(name + ".weight"), x);
    y = ggml_add(ctx, y, as_f32(ctx, w.get(name + ".bias")));
    return add_linear_adapters(ctx, w, name, x, y);
}

ggml_tensor * self_attention(ggml_context * ctx, const NetworkWeights & w, const std::string & name, ggml_tensor * x,
                             const ClipTransformerShape & s) {
    const int64_t n = x->ne[1];
    const int64_t batch = x->ne[2];
    const int64_t head_dim = s.hidden / s.heads;
    // [hidden, n, B] → [head_dim, heads, n, B] → [head_dim, n, heads, B]
    auto split = [&](ggml_tensor * t) {
        return ggml_cont(ctx, ggml_permute(ctx, ggml_reshape_4d(ctx, t, head_dim, s.heads, n, batch), 0, 2, 1, 3));
    };
    ggml_tensor * q = split(biased_linear(ctx, w, name + ".q_proj", x));
    ggml_tensor * k = split(biased_linear(ctx, w, name + ".k_proj", x));
    ggml_tensor * v = biased_linear(ctx, w, name + ".v_proj", x);
    // v as [n, head_dim, heads, B], so that the product with the scores runs over keys.
    v = ggml_cont(ctx, ggml_permute(ctx, ggml_reshape_4d(ctx, v, head_dim, s.heads, n, batch), 1, 2, 0, 3));

    ggml_tensor * scores = ggml_mul_mat(ctx, k, q);                  // [n_keys, n_queries, heads, B]
    if (s.causal) scores = ggml_diag_mask_inf(ctx, scores, 0);       // key > query → -inf
    scores = ggml_soft_max_ext(ctx, scores, nullptr, 1.0f / std::sqrt(static_cast<float>(head_dim)), 0.0f);
    ggml_tensor * out = ggml_mul_mat(ctx, v, scores);                // [head_dim, n, heads, B]
    out = ggml_cont(ctx, ggml_permute(ctx, out, 0, 2, 1, 3));        // [head_dim, heads, n, B]
    out = ggml_reshape_3d(ctx, out, s.hidden, n, batch);
    return biased_linear(ctx, w, name + ".out_proj", out);
}

ggml_tensor * activation(ggml_context * ctx, ggml_tensor * x, bool quick_gelu) {
    if (!quick_gelu) return ggml_gelu_erf(ctx, x);  // torch nn.GELU(): exact erf
    // x · sigmoid(1.702 x). Not ggml_gelu_quick, whose CPU kernel rounds its input to f16 for a
    // table lookup.
    return ggml_mul(ctx, x, ggml_sigmoid(ctx, ggml_scale(ctx, x, 1.702f)));
}

} // namespace

ggml_tensor * clip_layer_norm(ggml_context * ctx, const NetworkWeights & w, const std::string & name, ggml_tensor * x,
                              float eps) {
    x = ggml_norm(ctx, x, eps);
    x = ggml_mul(ctx, x, as_f32(ctx, w.get(name + ".weight")));
    return ggml_add(ctx, x, as_f32(ctx, w.get(name + ".bias")));
}

ggml_tensor * clip_encoder_layer(ggml_context * ctx, const NetworkWeights & w, const std::string & prefix, ggml_tensor * x,
                                 const ClipTransformerShape & shape) {
    const float eps = shape.layer_norm_eps;
    x = ggml_add(ctx, x, self_attention(ctx, w, prefix + ".self_attn", clip_layer_norm(ctx, w, prefix + ".layer_norm1", x, eps), shape));
    ggml_tensor * h = clip_layer_norm(ctx, w, prefix + ".layer_norm2", x, eps);
    h = biased_linear(ctx, w, prefix + ".mlp.fc2", activation(ctx, biased_linear(ctx, w, prefix + ".mlp.fc1", h), shape.quick_gelu));
    return ggml_add(ctx, x, h);
}

} // namespace sd::nn
