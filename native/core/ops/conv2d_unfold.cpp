#include "ops/conv2d_unfold.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ops/custom_op_params.h"
#include "ops/fp16_convert.h"
#include "runtime/env_settings.h"
#include "sdcore/error.h"

namespace sd::nn {

namespace {

constexpr int64_t kDefaultStripeBytes = 64ll << 20;
// Stripes per layer at most: a custom op takes at most GGML_MAX_SRC - 1 inputs, and the
// assembling op takes every stripe plus the bias. Beyond it stripes grow over the byte bound.
constexpr int64_t kMaxStripes = 8;

// Output pixels unfolded per block: the block's rows (pixels × IC·KH·KW values) stay in L2 while
// its values are written column by column, and are converted to F16 in one pass.
constexpr int64_t kBlockPixels = 16;

struct UnfoldParams {
    int32_t kernel_w, kernel_h, stride, padding;
    int32_t row_begin, row_end;  // output rows of the whole batch: row = n·OH + oy
};

struct AssembleParams {
    int32_t stripes;
    int32_t has_bias;
};

int64_t output_size(int64_t input, int64_t kernel, int stride, int padding) {
    return (input + 2 * padding - kernel) / stride + 1;
}

// dst ne = (IC·KH·KW, OW·rows): row (r − row_begin)·OW + ox holds the receptive field of output
// pixel (ox, oy) of image n (r = n·OH + oy), ordered (ic, ky, kx) with kx fastest — the order of
// a kernel's (KW, KH, IC) values, so the kernel multiplies it as it is stored.
void unfold_rows(ggml_tensor * dst, int ith, int nth, void *) {
    const ggml_tensor * x = dst->src[0];
    const UnfoldParams p = get_op_params<UnfoldParams>(dst);
    const int64_t in_w = x->ne[0], in_h = x->ne[1], in_c = x->ne[2];
    const int64_t out_w = output_size(in_w, p.kernel_w, p.stride, p.padding);
    const int64_t out_h = output_size(in_h, p.kernel_h, p.stride, p.padding);
    const int64_t row_len = dst->ne[0];
    const bool to_f16 = dst->type == GGML_TYPE_F16;

    const int64_t blocks_per_row = (out_w + kBlockPixels - 1) / kBlockPixels;
    const int64_t blocks = (p.row_end - p.row_begin) * blocks_per_row;
    const int64_t first = blocks * ith / nth, last = blocks * (ith + 1) / nth;

    std::vector<float> tile(to_f16 ? static_cast<size_t>(kBlockPixels * row_len) : 0);
    for (int64_t block = first; block < last; ++block) {
        const int64_t local_row = block / blocks_per_row;
        const int64_t x0 = (block % blocks_per_row) * kBlockPixels;
        const int64_t count = std::min(kBlockPixels, out_w - x0);
        const int64_t row = p.row_begin + local_row;
        const int64_t n = row / out_h, oy = row % out_h;
        const int64_t first_pixel = local_row * out_w + x0;
        float * out = to_f16 ? tile.data() : reinterpret_cast<float *>(static_cast<char *>(dst->data) + first_pixel * dst->nb[1]);

        for (int64_t c = 0; c < in_c; ++c) {
            for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
                const int64_t iy = oy * p.stride + ky - p.padding;
                const bool row_inside = iy >= 0 && iy < in_h;
                const char * src = static_cast<const char *>(x->data) + c * x->nb[2] + iy * x->nb[1] + n * x->nb[3];
                for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
                    float * o = out + (c * p.kernel_h + ky) * p.kernel_w + kx;
                    // Pixels j in [inside_begin, inside_end) read inside the input row (ix ≥ 0 and
                    // ix < W for ix = (x0 + j)·stride + kx − padding); the others read padding.
                    const int64_t first_ix = x0 * p.stride + kx - p.padding;
                    int64_t inside_begin = 0, inside_end = 0;
                    if (row_inside) {
                        inside_begin = first_ix >= 0 ? 0 : std::min(count, (-first_ix + p.stride - 1) / p.stride);
                        inside_end = first_ix >= in_w ? 0 : std::min(count, (in_w - first_ix + p.stride - 1) / p.stride);
                        inside_end = std::max(inside_end, inside_begin);
                    }
                    int64_t j = 0;
                    for (; j < inside_begin; ++j) o[j * row_len] = 0.0f;
                    for (; j < inside_end; ++j) {
                        o[j * row_len] = *reinterpret_cast<const float *>(src + (first_ix + j * p.stride) * x->nb[0]);
                    }
                    for (; j < count; ++j) o[j * row_len] = 0.0f;
                }
            }
        }
        if (to_f16) {
            auto * dst_f16 = reinterpret_cast<ggml_fp16_t *>(static_cast<char *>(dst->data) + first_pixel * dst->nb[1]);
            fp32_to_fp16(tile.data(), dst_f16, count * row_len);
        }
    }
}

// dst ne = (OW, OH, OC, N) from the stripes' GEMM products (ne = (OW·rows, OC) each, in row
// order) plus the bias, split over output channels.
void assemble_stripes(ggml_tensor * dst, int ith, int nth, void *) {
    const AssembleParams p = get_op_params<AssembleParams>(dst);
    const int64_t out_w = dst->ne[0], out_h = dst->ne[1], channels = dst->ne[2];
    const int64_t c_first = channels * ith / nth, c_last = channels * (ith + 1) / nth;
    const float * bias = p.has_bias ? static_cast<const float *>(dst->src[p.stripes]->data) : nullptr;

    int64_t row_begin = 0;
    for (int s = 0; s < p.stripes; ++s) {
        const ggml_tensor * product = dst->src[s];
        const int64_t rows = product->ne[0] / out_w;
        for (int64_t c = c_first; c < c_last; ++c) {
            const float b = bias != nullptr ? bias[c] : 0.0f;
            const auto * in = reinterpret_cast<const float *>(static_cast<const char *>(product->data) + c * product->nb[1]);
            for (int64_t r = 0; r < rows; ++r) {
                const int64_t row = row_begin + r, n = row / out_h, oy = row % out_h;
                auto * out = reinterpret_cast<float *>(static_cast<char *>(dst->data) + oy * dst->nb[1] + c * dst->nb[2] + n * dst->nb[3]);
                const float * src = in + r * out_w;
                for (int64_t i = 0; i < out_w; ++i) out[i] = src[i] + b;
            }
        }
        row_begin += rows;
    }
}

} // namespace

int64_t conv_stripe_bytes() {
    static const int64_t bytes = env_positive_int("SDNODE_CONV_STRIPE_BYTES", kDefaultStripeBytes);
    return bytes;
}

ggml_tensor * conv2d_unfold_gemm(ggml_context * ctx, ggml_tensor * x, ggml_tensor * kernel, ggml_tensor * bias,
                                 int stride, int padding) {
    if (x->type != GGML_TYPE_F32 || (kernel->type != GGML_TYPE_F16 && kernel->type != GGML_TYPE_F32) ||
        !ggml_is_contiguous(kernel) || (bias != nullptr && bias->type != GGML_TYPE_F32)) {
        throw Error("ERR_INTERNAL", "conv2d_unfold_gemm: needs an F32 input and bias and a contiguous F16/F32 kernel");
    }
    const int64_t kernel_w = kernel->ne[0], kernel_h = kernel->ne[1], out_c = kernel->ne[3];
    const int64_t out_w = output_size(x->ne[0], kernel_w, stride, padding);
    const int64_t out_h = output_size(x->ne[1], kernel_h, stride, padding);
    const int64_t batch = x->ne[3];
    const int64_t row_len = kernel_w * kernel_h * kernel->ne[2];

    const int64_t total_rows = out_h * batch;
    const int64_t bytes_per_row = out_w * row_len * static_cast<int64_t>(ggml_type_size(kernel->type));
    int64_t stripes = std::clamp<int64_t>((total_rows * bytes_per_row + conv_stripe_bytes() - 1) / conv_stripe_bytes(), 1,
                                          std::min(kMaxStripes, total_rows));
    const int64_t rows_per_stripe = (total_rows + stripes - 1) / stripes;
    stripes = (total_rows + rows_per_stripe - 1) / rows_per_stripe;

    ggml_tensor * kernel_rows = ggml_reshape_2d(ctx, kernel, row_len, out_c);
    ggml_tensor * parts[GGML_MAX_SRC];
    for (int64_t s = 0; s < stripes; ++s) {
        const int64_t row_begin = s * rows_per_stripe, row_end = std::min(total_rows, row_begin + rows_per_stripe);
        ggml_tensor * args[] = {x};
        ggml_tensor * cols = ggml_custom_4d(ctx, kernel->type, row_len, (row_end - row_begin) * out_w, 1, 1, args, 1,
                                            unfold_rows, GGML_N_TASKS_MAX, nullptr);
        set_op_params(cols, UnfoldParams{static_cast<int32_t>(kernel_w), static_cast<int32_t>(kernel_h), stride, padding,
                                      static_cast<int32_t>(row_begin), static_cast<int32_t>(row_end)});
        parts[s] = ggml_mul_mat(ctx, cols, kernel_rows);  // ne = (OW·rows, OC)
    }

    if (stripes == 1 && batch == 1) {  // the product is already (OW, OH, OC)
        ggml_tensor * y = ggml_reshape_4d(ctx, parts[0], out_w, out_h, out_c, 1);
        return bias != nullptr ? ggml_add(ctx, y, ggml_reshape_4d(ctx, bias, 1, 1, out_c, 1)) : y;
    }
    int n_args = static_cast<int>(stripes);
    if (bias != nullptr) parts[n_args++] = bias;
    ggml_tensor * y = ggml_custom_4d(ctx, GGML_TYPE_F32, out_w, out_h, out_c, batch, parts, n_args, assemble_stripes,
                                     GGML_N_TASKS_MAX, nullptr);
    set_op_params(y, AssembleParams{static_cast<int32_t>(stripes), bias != nullptr ? 1 : 0});
    return y;
}

} // namespace sd::nn
