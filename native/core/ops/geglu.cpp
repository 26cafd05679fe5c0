#include "ops/geglu.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "ops/fast_exp.h"
#include "ops/vector_clones.h"
#include "sdcore/error.h"

namespace sd::nn {

namespace {

// Abramowitz & Stegun 7.1.26: erf(z) = 1 − t·(a1 + t·(a2 + … + t·a5))·e^(−z²), t = 1/(1 + p·z)
// for z ≥ 0, odd in z.
inline float erf_approx(float z) {
    const float a = std::abs(z);
    const float t = 1.0f / (1.0f + 0.3275911f * a);
    const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    const float e = 1.0f - poly * exp_nonpositive(-a * a);
    return std::copysign(e, z);
}

SD_VECTOR_CLONES void geglu_row(const float * __restrict hidden, const float * __restrict gate, float * __restrict y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const float g = gate[i];
        y[i] = hidden[i] * (0.5f * g * (1.0f + erf_approx(g * 0.70710678118654752f)));
    }
}

void geglu_rows(ggml_tensor * dst, int ith, int nth, void *) {
    const ggml_tensor * x = dst->src[0];
    const int64_t features = dst->ne[0];
    const int64_t rows = ggml_nrows(dst);
    const int64_t first = rows * ith / nth, last = rows * (ith + 1) / nth;
    for (int64_t r = first; r < last; ++r) {
        const auto * in = reinterpret_cast<const float *>(static_cast<const char *>(x->data) + r * x->nb[1]);
        auto * out = reinterpret_cast<float *>(static_cast<char *>(dst->data) + r * dst->nb[1]);
        geglu_row(in, in + features, out, features);
    }
}

} // namespace

ggml_tensor * geglu_erf_cpu(ggml_context * ctx, ggml_tensor * x) {
    if (x->type != GGML_TYPE_F32 || x->ne[0] % 2 != 0) {
        throw Error("ERR_INTERNAL", "geglu_erf_cpu: needs an F32 input with an even number of features");
    }
    if (!ggml_is_contiguous(x)) x = ggml_cont(ctx, x);
    ggml_tensor * args[] = {x};
    return ggml_custom_4d(ctx, GGML_TYPE_F32, x->ne[0] / 2, x->ne[1], x->ne[2], x->ne[3], args, 1, geglu_rows,
                          GGML_N_TASKS_MAX, nullptr);
}

} // namespace sd::nn
