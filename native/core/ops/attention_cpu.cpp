#include "ops/attention_cpu.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ops/custom_op_params.h"
#include "ops/fast_exp.h"
#include "ops/gemm_f32.h"
#include "ops/vector_clones.h"
#include "runtime/env_settings.h"
#include "sdcore/error.h"

namespace sd::nn {

namespace {

struct AttentionParams {
    int32_t heads;
    int32_t keys;  // Tk: the keys and values that count (kᵀ's rows are padded past it)
    float scale;
    GemmKernel kernel;
};

// Queries per work item: their scores (queries × padded keys floats) stay under this many bytes
// (SDNODE_ATTENTION_BLOCK_BYTES, default 256 KiB), within the core's L2 next to one head's kᵀ
// and v; at least 8. Tests shrink it so that the tiny models' heads take several blocks.
int64_t score_block_bytes() {
    static const int64_t bytes = env_positive_int("SDNODE_ATTENTION_BLOCK_BYTES", 256 << 10);
    return bytes;
}

int64_t round_up(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

// The largest of x[0 … n), n ≥ 1, with 16 running maxima that the compiler keeps in one vector.
SD_VECTOR_CLONES float row_max(const float * __restrict x, int64_t n) {
    constexpr int64_t kLanes = 16;
    float lanes[kLanes];
    for (int64_t l = 0; l < kLanes; ++l) lanes[l] = x[0];
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
        for (int64_t l = 0; l < kLanes; ++l) lanes[l] = x[i + l] > lanes[l] ? x[i + l] : lanes[l];
    }
    float best = x[0];
    for (int64_t l = 0; l < kLanes; ++l) best = lanes[l] > best ? lanes[l] : best;
    for (; i < n; ++i) best = x[i] > best ? x[i] : best;
    return best;
}

// x[i] = e^(scale·(x[i] − max)) for i < n; returns their sum (16 running sums, then added up).
SD_VECTOR_CLONES float exp_row(float * __restrict x, int64_t n, float scale, float max) {
    constexpr int64_t kLanes = 16;
    float lanes[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
        for (int64_t l = 0; l < kLanes; ++l) {
            const float e = exp_nonpositive(scale * (x[i + l] - max));
            x[i + l] = e;
            lanes[l] += e;
        }
    }
    float sum = 0.0f;
    for (int64_t l = 0; l < kLanes; ++l) sum += lanes[l];
    for (; i < n; ++i) {
        x[i] = exp_nonpositive(scale * (x[i] - max));
        sum += x[i];
    }
    return sum;
}

// dst ne = (heads·dv, Tq, N). src: q ne = (heads·d, Tq, N) with contiguous rows; kᵀ ne =
// (Tk padded to 16, d, heads·N) and v ne = (dv padded to 16, Tk, heads·N), contiguous, zeros in
// the padding. Work items: a block of queries of one head; each item's scores, softmax and
// product with v are done before the next, in per-thread scratch.
void attend(ggml_tensor * dst, int ith, int nth, void *) {
    const AttentionParams p = get_op_params<AttentionParams>(dst);
    const ggml_tensor * q = dst->src[0];
    const ggml_tensor * kt = dst->src[1];
    const ggml_tensor * vp = dst->src[2];
    const int64_t keys_padded = kt->ne[0], d = kt->ne[1], dv_padded = vp->ne[0];
    const int64_t dv = dst->ne[0] / p.heads, queries = q->ne[1], planes = kt->ne[2];
    const int64_t block = std::max<int64_t>(8, score_block_bytes() / (keys_padded * static_cast<int64_t>(sizeof(float))) / 8 * 8);
    const int64_t blocks = (queries + block - 1) / block;
    const int64_t items = planes * blocks;
    const int64_t first = items * ith / nth, last = items * (ith + 1) / nth;
    if (first >= last) return;

    std::vector<float> scores(static_cast<size_t>(block * keys_padded)), out(static_cast<size_t>(block * dv_padded));
    std::vector<float> inverse_sums(static_cast<size_t>(block));
    for (int64_t item = first; item < last; ++item) {
        const int64_t plane = item / blocks, q0 = (item % blocks) * block;
        const int64_t rows = std::min(block, queries - q0);
        const int64_t head = plane % p.heads, image = plane / p.heads;
        const auto * q_rows = reinterpret_cast<const float *>(static_cast<const char *>(q->data) + image * q->nb[2] +
                                                              q0 * q->nb[1]) + head * d;
        const auto * k_plane = reinterpret_cast<const float *>(static_cast<const char *>(kt->data) + plane * kt->nb[2]);
        const auto * v_plane = reinterpret_cast<const float *>(static_cast<const char *>(vp->data) + plane * vp->nb[2]);

        gemm_f32(p.kernel, rows, keys_padded, d,
                 GemmOperands{q_rows, static_cast<int64_t>(q->nb[1] / sizeof(float)), k_plane, keys_padded, scores.data(), keys_padded});
        for (int64_t r = 0; r < rows; ++r) {
            float * row = scores.data() + r * keys_padded;
            // Only the real keys: the padding's zero scores must not count in the maximum or sum.
            const float max = row_max(row, p.keys);
            inverse_sums[r] = 1.0f / exp_row(row, p.keys, p.scale, max);
        }
        gemm_f32(p.kernel, rows, dv_padded, p.keys, GemmOperands{scores.data(), keys_padded, v_plane, dv_padded, out.data(), dv_padded});
        for (int64_t r = 0; r < rows; ++r) {
            auto * y = reinterpret_cast<float *>(static_cast<char *>(dst->data) + image * dst->nb[2] + (q0 + r) * dst->nb[1]) + head * dv;
            const float * o = out.data() + r * dv_padded;
            for (int64_t j = 0; j < dv; ++j) y[j] = o[j] * inverse_sums[r];
        }
    }
}

} // namespace

bool attention_cpu_enabled() { return !env_equals("SDNODE_ATTENTION", "ggml"); }

ggml_tensor * attention_cpu(ggml_context * ctx, ggml_tensor * q, ggml_tensor * k, ggml_tensor * v, int heads, float scale) {
    const int64_t dim = q->ne[0], tq = q->ne[1], n = q->ne[2];
    const int64_t tk = k->ne[1], dim_v = v->ne[0];
    if (q->type != GGML_TYPE_F32 || k->type != GGML_TYPE_F32 || v->type != GGML_TYPE_F32 || heads <= 0 || dim % heads != 0 ||
        dim_v % heads != 0 || k->ne[0] != dim || v->ne[1] != tk || k->ne[2] != n || v->ne[2] != n || q->ne[3] != 1) {
        throw Error("ERR_INTERNAL", "attention_cpu: q, k, v must be F32 with matching shapes for " + std::to_string(heads) + " heads");
    }
    const int64_t d = dim / heads, dv = dim_v / heads;
    const int64_t keys_padded = round_up(tk, kGemmColumnBlock), dv_padded = round_up(dv, kGemmColumnBlock);
    if (q->nb[0] != sizeof(float)) q = ggml_cont(ctx, q);
    if (!ggml_is_contiguous(k)) k = ggml_cont(ctx, k);
    if (!ggml_is_contiguous(v)) v = ggml_cont(ctx, v);

    // kᵀ per head: (d, heads, Tk, N) → (Tk, d, heads, N), keys zero-padded; v per head: (dv,
    // heads, Tk, N) → (dv, Tk, heads, N), zero-padded to whole vectors. Both small (one value per
    // key and channel), and contiguous so the GEMM reads whole rows.
    ggml_tensor * kt = ggml_permute(ctx, ggml_reshape_4d(ctx, k, d, heads, tk, n), 1, 2, 0, 3);
    kt = keys_padded > tk ? ggml_pad(ctx, kt, static_cast<int>(keys_padded - tk), 0, 0, 0) : ggml_cont(ctx, kt);
    ggml_tensor * vp = ggml_permute(ctx, ggml_reshape_4d(ctx, v, dv, heads, tk, n), 0, 2, 1, 3);
    vp = dv_padded > dv ? ggml_pad(ctx, vp, static_cast<int>(dv_padded - dv), 0, 0, 0) : ggml_cont(ctx, vp);
    kt = ggml_reshape_3d(ctx, kt, keys_padded, d, heads * n);
    vp = ggml_reshape_3d(ctx, vp, dv_padded, tk, heads * n);

    ggml_tensor * args[] = {q, kt, vp};
    ggml_tensor * out = ggml_custom_4d(ctx, GGML_TYPE_F32, dim_v, tq, n, 1, args, 3, attend, GGML_N_TASKS_MAX, nullptr);
    set_op_params(out, AttentionParams{heads, static_cast<int32_t>(tk), scale, gemm_kernel()});
    return out;
}

} // namespace sd::nn
