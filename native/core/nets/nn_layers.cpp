#include "nets/nn_layers.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "ops/conv2d_unfold.h"
#include "ops/conv2d_winograd.h"
#include "ops/norm_cpu.h"
#include "runtime/env_settings.h"
#include "sdcore/error.h"

namespace sd::nn {

namespace {

// SDNODE_CONV_PATH, read once: the path it forces, if it names one.
std::optional<ConvPath> forced_conv_path() {
    static const std::optional<ConvPath> forced = []() -> std::optional<ConvPath> {
        const char * env = std::getenv("SDNODE_CONV_PATH");
        if (env == nullptr) return std::nullopt;
        if (std::strcmp(env, "winograd") == 0) return ConvPath::winograd;
        if (std::strcmp(env, "unfold_gemm") == 0) return ConvPath::unfold_gemm;
        if (std::strcmp(env, "im2col") == 0) return ConvPath::im2col;
        if (std::strcmp(env, "direct") == 0) return ConvPath::direct;
        return std::nullopt;
    }();
    return forced;
}

// A per-channel vector (C) as ne = (1, 1, C, 1) F32, so that it broadcasts over (W, H, C, N).
ggml_tensor * channel_vector(ggml_context * ctx, ggml_tensor * v) {
    return ggml_reshape_4d(ctx, as_f32(ctx, v), 1, 1, v->ne[0], 1);
}

// Attention scores per group of heads (see attention()); SDNODE_ATTENTION_GROUP_BYTES at
// start-up changes it, so that tests can split the tiny fixtures' attention into groups.
int64_t score_group_bytes() {
    static const int64_t bytes = env_positive_int("SDNODE_ATTENTION_GROUP_BYTES", 256ll << 20);
    return bytes;
}

} // namespace

ggml_tensor * as_f32(ggml_context * ctx, ggml_tensor * t) {
    return t->type == GGML_TYPE_F32 ? t : ggml_cast(ctx, t, GGML_TYPE_F32);
}

bool is_cpu_backend(ggml_backend_t backend) {
    // ggml_backend_is_cpu() lives in the CPU backend's library, which is loaded at run time.
    ggml_backend_dev_t device = ggml_backend_get_device(backend);
    return device != nullptr && ggml_backend_dev_type(device) == GGML_BACKEND_DEVICE_TYPE_CPU;
}

ConvPath conv_path_for(ggml_backend_t backend, ConvPath gpu_path) {
    if (const std::optional<ConvPath> forced = forced_conv_path()) return *forced;
    return is_cpu_backend(backend) ? ConvPath::winograd : gpu_path;
}

ggml_tensor * linear(ggml_context * ctx, const NetworkWeights & w, const std::string & prefix, ggml_tensor * x) {
    ggml_tensor * weight = w.get(prefix + ".weight");
    if (weight->ne[0] != x->ne[0]) {
        throw Error("ERR_INTERNAL", prefix + ": input has " + std::to_string(x->ne[0]) + " features, the weight takes " +
                                        std::to_string(weight->ne[0]));
    }
    ggml_tensor * y = ggml_mul_mat(ctx, weight, x);
    if (ggml_tensor * bias = w.find(prefix + ".bias")) y = ggml_add(ctx, y, as_f32(ctx, bias));
    return add_linear_adapters(ctx, w, prefix, x, y);
}

ggml_tensor * add_linear_adapters(ggml_context * ctx, const NetworkWeights & w, const std::string & prefix, ggml_tensor * x,
                                  ggml_tensor * y) {
    const std::vector<RuntimeAdapter> * adapters = w.adapters(prefix);
    if (adapters == nullptr) return y;
    // A 1×1 convolution kernel (kw, kh, in, out) as the linear weight (in, out) it is on a sequence.
    auto as_matrix = [&](ggml_tensor * t) { return ggml_n_dims(t) <= 2 ? t : ggml_reshape_2d(ctx, t, t->ne[0] * t->ne[1] * t->ne[2], t->ne[3]); };
    for (const RuntimeAdapter & a : *adapters) {
        ggml_tensor * change = a.delta != nullptr ? ggml_mul_mat(ctx, as_matrix(a.delta), x)
                                                  : ggml_mul_mat(ctx, a.up, ggml_mul_mat(ctx, as_matrix(a.down), x));
        y = ggml_add(ctx, y, change);
    }
    return y;
}

ggml_tensor * conv2d(ggml_context * ctx, const NetworkWeights & w, const std::string & prefix, ggml_tensor * x,
                     int stride, int padding, ConvPath path) {
    ggml_tensor * kernel = w.get(prefix + ".weight");
    if (kernel->ne[2] != x->ne[2]) {
        throw Error("ERR_INTERNAL", prefix + ": input has " + std::to_string(x->ne[2]) + " channels, the kernel takes " +
                                        std::to_string(kernel->ne[2]));
    }
    ggml_tensor * bias = w.find(prefix + ".bias");
    ggml_tensor * y = conv2d_kernel(ctx, x, kernel, bias, stride, padding, path);
    return add_conv_adapters(ctx, w, prefix, x, y, stride, padding, path);
}

ggml_tensor * add_conv_adapters(ggml_context * ctx, const NetworkWeights & w, const std::string & prefix, ggml_tensor * x,
                                ggml_tensor * y, int stride, int padding, ConvPath path) {
    const std::vector<RuntimeAdapter> * adapters = w.adapters(prefix);
    if (adapters == nullptr) return y;
    for (const RuntimeAdapter & a : *adapters) {
        ggml_tensor * change;
        if (a.delta != nullptr) {
            change = conv2d_kernel(ctx, x, a.delta, nullptr, stride, padding, path);
        } else {
            ggml_tensor * h = conv2d_kernel(ctx, x, a.down, nullptr, stride, padding, path);  // (OW, OH, r, N)
            change = conv2d_kernel(ctx, h, ggml_reshape_4d(ctx, a.up, 1, 1, a.up->ne[0], a.up->ne[1]), nullptr, 1, 0, path);
        }
        y = ggml_add(ctx, y, change);
    }
    return y;
}

ggml_tensor * conv2d_kernel(ggml_context * ctx, ggml_tensor * x, ggml_tensor * kernel, ggml_tensor * bias, int stride,
                            int padding, ConvPath path) {
    // Kernels are F16 or F32 (weight_types.h); a file's own BF16 is converted per graph.
    if (kernel->type != GGML_TYPE_F16 && kernel->type != GGML_TYPE_F32) kernel = ggml_cast(ctx, kernel, GGML_TYPE_F32);
    if (path == ConvPath::winograd || path == ConvPath::unfold_gemm) {
        if (bias != nullptr) bias = as_f32(ctx, bias);
        if (path == ConvPath::winograd && winograd_applies(x, kernel, stride, padding)) {
            return conv2d_winograd(ctx, x, kernel, bias);
        }
        return conv2d_unfold_gemm(ctx, x, kernel, bias, stride, padding);
    }
    ggml_tensor * y;
    if (path == ConvPath::direct) {
        y = ggml_conv_2d_direct(ctx, kernel, x, stride, stride, padding, padding, 1, 1);
    } else {
        // im2col: ne = (IC·KH·KW, OW, OH, N), in the kernel's type.
        ggml_tensor * cols = ggml_im2col(ctx, kernel, x, stride, stride, padding, padding, 1, 1, true, kernel->type);
        const int64_t ow = cols->ne[1], oh = cols->ne[2], n = cols->ne[3], oc = kernel->ne[3];
        // (OW·OH·N, OC): each output channel is a column.
        ggml_tensor * prod = ggml_mul_mat(ctx, ggml_reshape_2d(ctx, cols, cols->ne[0], ow * oh * n),
                                          ggml_reshape_2d(ctx, kernel, cols->ne[0], oc));
        y = ggml_cont(ctx, ggml_permute(ctx, ggml_reshape_4d(ctx, prod, ow, oh, n, oc), 0, 1, 3, 2));
    }
    if (bias != nullptr) y = ggml_add(ctx, y, channel_vector(ctx, bias));
    return y;
}

ggml_tensor * group_norm(ggml_context * ctx, const NetworkWeights & w, const std::string & prefix, ggml_tensor * x,
                         int groups, float eps, bool cpu, bool then_silu) {
    if (groups <= 0 || x->ne[2] % groups != 0) {
        throw Error("ERR_INTERNAL", prefix + ": " + std::to_string(x->ne[2]) + " channels do not split into " +
                                        std::to_string(groups) + " groups");
    }
    if (cpu && norm_cpu_enabled()) {
        return group_norm_cpu(ctx, x, as_f32(ctx, w.get(prefix + ".weight")), as_f32(ctx, w.get(prefix + ".bias")), groups,
                              eps, then_silu);
    }
    ggml_tensor * y = ggml_group_norm(ctx, x, groups, eps);
    y = ggml_mul(ctx, y, channel_vector(ctx, w.get(prefix + ".weight")));
    y = ggml_add(ctx, y, channel_vector(ctx, w.get(prefix + ".bias")));
    return then_silu ? ggml_silu(ctx, y) : y;
}

ggml_tensor * layer_norm(ggml_context * ctx, const NetworkWeights & w, const std::string & prefix, ggml_tensor * x,
                         float eps, bool cpu) {
    if (cpu && norm_cpu_enabled()) {
        return layer_norm_cpu(ctx, x, as_f32(ctx, w.get(prefix + ".weight")), as_f32(ctx, w.get(prefix + ".bias")), eps);
    }
    ggml_tensor * y = ggml_norm(ctx, x, eps);
    y = ggml_mul(ctx, y, as_f32(ctx, w.get(prefix + ".weight")));
    return ggml_add(ctx, y, as_f32(ctx, w.get(prefix + ".bias")));
}

ggml_tensor * silu(ggml_context * ctx, ggml_tensor * x) { return ggml_silu(ctx, x); }

ggml_tensor * to_sequence(ggml_context * ctx, ggml_tensor * x) {
    // (W, H, C, N) → (W·H, C, N) → (C, W·H, N)
    ggml_tensor * flat = ggml_reshape_3d(ctx, x, x->ne[0] * x->ne[1], x->ne[2], x->ne[3]);
    return ggml_cont(ctx, ggml_permute(ctx, flat, 1, 0, 2, 3));
}

ggml_tensor * from_sequence(ggml_context * ctx, ggml_tensor * x, int64_t width, int64_t height) {
    // (C, W·H, N) → (W·H, C, N) → (W, H, C, N)
    ggml_tensor * t = ggml_cont(ctx, ggml_permute(ctx, x, 1, 0, 2, 3));
    return ggml_reshape_4d(ctx, t, width, height, x->ne[0], x->ne[2]);
}

ggml_tensor * attention(ggml_context * ctx, ggml_tensor * q, ggml_tensor * k, ggml_tensor * v, int heads, bool flash,
                        ggml_tensor * mask) {
    const int64_t dim = q->ne[0], tq = q->ne[1], n = q->ne[2];
    const int64_t tk = k->ne[1], dim_v = v->ne[0];
    if (heads <= 0 || dim % heads != 0 || dim_v % heads != 0 || k->ne[0] != dim || v->ne[1] != tk ||
        k->ne[2] != n || v->ne[2] != n) {
        throw Error("ERR_INTERNAL", "attention: q, k, v shapes do not match " + std::to_string(heads) + " heads");
    }
    const int64_t d = dim / heads, dv = dim_v / heads;
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));

    // Split heads: (dim, T, N) → (d, heads, T, N) → (d, T, heads, N).
    ggml_tensor * qh = ggml_permute(ctx, ggml_reshape_4d(ctx, q, d, heads, tq, n), 0, 2, 1, 3);
    ggml_tensor * kh = ggml_permute(ctx, ggml_reshape_4d(ctx, k, d, heads, tk, n), 0, 2, 1, 3);

    if (flash && mask == nullptr) {
        ggml_tensor * vh = ggml_permute(ctx, ggml_reshape_4d(ctx, v, dv, heads, tk, n), 0, 2, 1, 3);
        kh = ggml_cast(ctx, kh, GGML_TYPE_F16);
        vh = ggml_cast(ctx, vh, GGML_TYPE_F16);
        ggml_tensor * out = ggml_flash_attn_ext(ctx, qh, kh, vh, nullptr, scale, 0.0f, 0.0f);
        ggml_flash_attn_ext_set_prec(out, GGML_PREC_F32);
        // out ne = (dv, heads, Tq, N): already heads-inside-tokens.
        return ggml_reshape_3d(ctx, out, dv * heads, tq, n);
    }

    // Scores (Tk, Tq, heads, N) = k·qᵀ per head; softmax over Tk. The CPU backend's tiled GEMM
    // (llamafile) takes only a contiguous second operand and a head size that is a multiple of its
    // vector width (16 floats with AVX-512); otherwise it falls back to one dot product per score,
    // which took 44% of a 512² SD 1.5 UNet step (head size 40; bench/README.md "Profile"). So q
    // and k are copied with their head size zero-padded to a multiple of 16, which adds nothing to
    // the scores.
    if (d % 16 != 0) {
        const int pad = static_cast<int>(16 - d % 16);
        qh = ggml_pad(ctx, qh, pad, 0, 0, 0);
        kh = ggml_pad(ctx, kh, pad, 0, 0, 0);
    } else {
        qh = ggml_cont(ctx, qh);
    }
    // With a number of keys that is not a multiple of 16 (cross-attention on 77 text tokens) the
    // tiled GEMM takes neither k as the first operand (it needs a multiple of 4 rows) nor Tk as
    // the length of the sum in probabilities·v: the scores are computed as q·kᵀ and transposed,
    // and after the softmax the probabilities and vᵀ get zero columns up to a multiple of 16,
    // which add nothing. (With a mask, as in the text encoder, everything stays as it is.)
    const int keys_pad = mask == nullptr && tk % 16 != 0 ? static_cast<int>(16 - tk % 16) : 0;
    // vᵀ per head: (Tk + keys_pad, dv, heads, N), contiguous.
    ggml_tensor * vt = ggml_permute(ctx, ggml_reshape_4d(ctx, v, dv, heads, tk, n), 1, 2, 0, 3);
    vt = keys_pad > 0 ? ggml_pad(ctx, vt, keys_pad, 0, 0, 0) : ggml_cont(ctx, vt);

    // The scores are the largest tensor of a UNet graph (16 × 4096² floats, 1.07 GB, at 512²
    // with a guided batch), so without a mask they are computed for a group of heads at a time,
    // each group under score_group_bytes(): the allocator reuses one group's scores for the next,
    // and each group's GEMMs stay large. Groups are whole (head, image) planes, so their q, k and
    // vᵀ are contiguous views.
    const int64_t planes = heads * n;
    const int64_t plane_bytes = tk * tq * static_cast<int64_t>(sizeof(float));
    const int64_t group = mask != nullptr ? planes : std::clamp<int64_t>(score_group_bytes() / plane_bytes, 1, planes);
    qh = ggml_reshape_3d(ctx, qh, qh->ne[0], tq, planes);
    if (!ggml_is_contiguous(kh)) kh = ggml_cont(ctx, kh);
    kh = ggml_reshape_3d(ctx, kh, kh->ne[0], tk, planes);
    vt = ggml_reshape_3d(ctx, vt, tk + keys_pad, dv, planes);
    ggml_tensor * out = nullptr;  // (dv, Tq, planes)
    for (int64_t p0 = 0; p0 < planes; p0 += group) {
        const int64_t count = std::min(group, planes - p0);
        auto planes_of = [&](ggml_tensor * t) {
            return ggml_view_3d(ctx, t, t->ne[0], t->ne[1], count, t->nb[1], t->nb[2], p0 * t->nb[2]);
        };
        // Scores (Tk, Tq, planes) = k·qᵀ per head; softmax over Tk.
        ggml_tensor * scores = keys_pad > 0 ? ggml_mul_mat(ctx, planes_of(qh), planes_of(kh))   // (Tq, Tk): transposed below
                                            : ggml_mul_mat(ctx, planes_of(kh), planes_of(qh));
        ggml_mul_mat_set_prec(scores, GGML_PREC_F32);
        if (keys_pad > 0) scores = ggml_cont(ctx, ggml_transpose(ctx, scores));
        scores = ggml_soft_max_ext(ctx, scores, mask, scale, 0.0f);
        if (keys_pad > 0) scores = ggml_pad(ctx, scores, keys_pad, 0, 0, 0);
        ggml_tensor * part = ggml_mul_mat(ctx, planes_of(vt), scores);  // (dv, Tq, count)
        out = out == nullptr ? part : ggml_concat(ctx, out, part, 2);
    }
    out = ggml_reshape_4d(ctx, out, dv, tq, heads, n);
    out = ggml_cont(ctx, ggml_permute(ctx, out, 0, 2, 1, 3));  // (dv, heads, Tq, N)
    return ggml_reshape_3d(ctx, out, dv * heads, tq, n);
}

} // namespace sd::nn
