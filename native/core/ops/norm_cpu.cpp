#include "ops/norm_cpu.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "ops/custom_op_params.h"
#include "ops/fast_exp.h"
#include "ops/vector_clones.h"
#include "runtime/env_settings.h"
#include "sdcore/error.h"

namespace sd::nn {

namespace {

struct NormParams {
    int32_t groups;  // GroupNorm only
    float eps;
    int32_t then_silu;
};

constexpr int64_t kLanes = 16;

// Σ x[i] for i < n: 16 running float sums (one vector), added up in double.
SD_VECTOR_CLONES double sum_of(const float * __restrict x, int64_t n) {
    float lanes[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
        for (int64_t l = 0; l < kLanes; ++l) lanes[l] += x[i + l];
    }
    double sum = 0.0;
    for (int64_t l = 0; l < kLanes; ++l) sum += lanes[l];
    for (; i < n; ++i) sum += x[i];
    return sum;
}

// Σ (x[i] − mean)² for i < n, likewise.
SD_VECTOR_CLONES double squared_deviations(const float * __restrict x, int64_t n, float mean) {
    float lanes[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
        for (int64_t l = 0; l < kLanes; ++l) {
            const float d = x[i + l] - mean;
            lanes[l] += d * d;
        }
    }
    double sum = 0.0;
    for (int64_t l = 0; l < kLanes; ++l) sum += lanes[l];
    for (; i < n; ++i) {
        const float d = x[i] - mean;
        sum += d * d;
    }
    return sum;
}

// y = x·scale + shift, then y·sigmoid(y) if `silu` (sigmoid from e^−|y|, which cannot overflow).
SD_VECTOR_CLONES void scale_shift(const float * __restrict x, float * __restrict y, int64_t n, float scale, float shift,
                                  bool silu) {
    if (!silu) {
        for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale + shift;
        return;
    }
    for (int64_t i = 0; i < n; ++i) {
        const float v = x[i] * scale + shift;
        const float e = exp_nonpositive(v > 0.0f ? -v : v);
        const float sigmoid = v > 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
        y[i] = v * sigmoid;
    }
}

// y[i] = (x[i] − mean)·inv_std·w[i] + b[i].
SD_VECTOR_CLONES void normalize_row(const float * __restrict x, float * __restrict y, int64_t n, float mean, float inv_std,
                                    const float * __restrict w, const float * __restrict b) {
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mean) * inv_std * w[i] + b[i];
}

// dst, src[0] = x ne = (W, H, C, N) contiguous; src[1], src[2] = weight, bias. Work items:
// (group, sample); a group's channels are consecutive planes, so its values are contiguous.
void group_norm_rows(ggml_tensor * dst, int ith, int nth, void *) {
    const NormParams p = get_op_params<NormParams>(dst);
    const ggml_tensor * x = dst->src[0];
    const auto * weight = static_cast<const float *>(dst->src[1]->data);
    const auto * bias = static_cast<const float *>(dst->src[2]->data);
    const int64_t plane = x->ne[0] * x->ne[1], channels = x->ne[2], per_group = channels / p.groups;
    const int64_t items = p.groups * x->ne[3];
    const int64_t first = items * ith / nth, last = items * (ith + 1) / nth;
    for (int64_t item = first; item < last; ++item) {
        const int64_t group = item % p.groups, sample = item / p.groups;
        const int64_t c0 = group * per_group, count = per_group * plane;
        const float * in = reinterpret_cast<const float *>(static_cast<const char *>(x->data) + sample * x->nb[3] + c0 * x->nb[2]);
        float * out = reinterpret_cast<float *>(static_cast<char *>(dst->data) + sample * dst->nb[3] + c0 * dst->nb[2]);
        const float mean = static_cast<float>(sum_of(in, count) / count);
        const float variance = static_cast<float>(squared_deviations(in, count, mean) / count);
        const float inv_std = 1.0f / std::sqrt(variance + p.eps);
        for (int64_t c = 0; c < per_group; ++c) {
            const float scale = inv_std * weight[c0 + c];
            const float shift = bias[c0 + c] - mean * scale;
            scale_shift(in + c * plane, out + c * plane, plane, scale, shift, p.then_silu != 0);
        }
    }
}

// dst, src[0] = x ne = (C, rows…) contiguous; src[1], src[2] = weight, bias. Split over rows.
void layer_norm_rows(ggml_tensor * dst, int ith, int nth, void *) {
    const NormParams p = get_op_params<NormParams>(dst);
    const ggml_tensor * x = dst->src[0];
    const auto * weight = static_cast<const float *>(dst->src[1]->data);
    const auto * bias = static_cast<const float *>(dst->src[2]->data);
    const int64_t n = x->ne[0], rows = ggml_nrows(x);
    const int64_t first = rows * ith / nth, last = rows * (ith + 1) / nth;
    for (int64_t r = first; r < last; ++r) {
        const float * in = static_cast<const float *>(x->data) + r * n;
        float * out = static_cast<float *>(dst->data) + r * n;
        const float mean = static_cast<float>(sum_of(in, n) / n);
        const float variance = static_cast<float>(squared_deviations(in, n, mean) / n);
        normalize_row(in, out, n, mean, 1.0f / std::sqrt(variance + p.eps), weight, bias);
    }
}

void check_affine(const ggml_tensor * x, int64_t channels, const ggml_tensor * weight, const ggml_tensor * bias, const char * op) {
    if (x->type != GGML_TYPE_F32 || weight->type != GGML_TYPE_F32 || bias->type != GGML_TYPE_F32 ||
        ggml_nelements(weight) != channels || ggml_nelements(bias) != channels) {
        throw Error("ERR_INTERNAL", std::string(op) + ": needs an F32 input and F32 weight and bias of its channel count");
    }
}

} // namespace

bool norm_cpu_enabled() { return !env_equals("SDNODE_NORM", "ggml"); }

ggml_tensor * group_norm_cpu(ggml_context * ctx, ggml_tensor * x, ggml_tensor * weight, ggml_tensor * bias, int groups,
                             float eps, bool then_silu) {
    check_affine(x, x->ne[2], weight, bias, "group_norm_cpu");
    if (groups <= 0 || x->ne[2] % groups != 0) throw Error("ERR_INTERNAL", "group_norm_cpu: channels do not split into groups");
    if (!ggml_is_contiguous(x)) x = ggml_cont(ctx, x);
    ggml_tensor * args[] = {x, weight, bias};
    ggml_tensor * y = ggml_custom_4d(ctx, GGML_TYPE_F32, x->ne[0], x->ne[1], x->ne[2], x->ne[3], args, 3, group_norm_rows,
                                     GGML_N_TASKS_MAX, nullptr);
    set_op_params(y, NormParams{groups, eps, then_silu ? 1 : 0});
    return y;
}

ggml_tensor * layer_norm_cpu(ggml_context * ctx, ggml_tensor * x, ggml_tensor * weight, ggml_tensor * bias, float eps) {
    check_affine(x, x->ne[0], weight, bias, "layer_norm_cpu");
    if (!ggml_is_contiguous(x)) x = ggml_cont(ctx, x);
    ggml_tensor * args[] = {x, weight, bias};
    ggml_tensor * y = ggml_custom_4d(ctx, GGML_TYPE_F32, x->ne[0], x->ne[1], x->ne[2], x->ne[3], args, 3, layer_norm_rows,
                                     GGML_N_TASKS_MAX, nullptr);
    set_op_params(y, NormParams{0, eps, 0});
    return y;
}

} // namespace sd::nn
