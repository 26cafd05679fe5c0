#include "ops/conv2d_winograd.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ops/conv2d_unfold.h"
#include "ops/custom_op_params.h"
#include "ops/fp16_convert.h"
#include "ops/vector_clones.h"
#include "ops/winograd_gemm.h"
#include "runtime/env_settings.h"
#include "sdcore/error.h"

namespace sd::nn {

namespace {

// The 16 positions of a transformed 4×4 tile, index i·4 + j (i down, j across).
constexpr int kTilePositions = 16;
// Tiles along a row transformed together: their input patches overlap, so a channel's four input
// rows are read once for the group, and the 16 output streams stay in L1.
constexpr int64_t kTileGroup = 8;
// Input channels transformed together: one vector of them per patch position, so that the
// arithmetic runs across channels and each transformed value is a contiguous 64-byte store.
// The input channel count must be a multiple of it. The output transform works on blocks of as
// many output channels, one vector of them.
constexpr int64_t kChannelBlock = 16;

int64_t min_tiles() {
    static const int64_t tiles = env_positive_int("SDNODE_WINOGRAD_MIN_TILES", 64);
    return tiles;
}

int64_t tiles_along(int64_t pixels) { return (pixels + 1) / 2; }

struct TileRows {
    int32_t row_begin, row_end;  // tile rows of the whole batch: row = n·tiles_h + ty
};

struct OutputParams {
    int32_t row_begin;   // the stripe's first tile row
    int32_t first_arg;   // src index of the stripe's product (the bias, if any, follows it)
    int32_t has_bias;
};

// Stripes per layer at most: each adds three graph nodes.
constexpr int64_t kMaxStripes = 32;

// Input channels per step of the kernel transform: their 9 gathered planes of a panel's
// output channels (36 KB) stay in L1.
constexpr int64_t kKernelChunk = 32;

// U = G·g·Gᵀ for n (input, output) channel pairs: g holds 9 planes of n values (kernel position
// ky·3 + kx), u 16 rows of n values, `u_stride` bytes apart. Written over whole rows, so that the compiler
// vectorizes across channels (the rows do not overlap: __restrict).
SD_VECTOR_CLONES void kernel_planes_to_tiles(const float * __restrict g, char * __restrict u, size_t u_stride, int64_t n) {
    const float * __restrict g0 = g;
    const float * __restrict g1 = g + n;
    const float * __restrict g2 = g + 2 * n;
    const float * __restrict g3 = g + 3 * n;
    const float * __restrict g4 = g + 4 * n;
    const float * __restrict g5 = g + 5 * n;
    const float * __restrict g6 = g + 6 * n;
    const float * __restrict g7 = g + 7 * n;
    const float * __restrict g8 = g + 8 * n;
    // Rows i of G·g (i = 0..3, one per row of G), each with its 3 columns, then U row i·4 + j.
    for (int i = 0; i < 4; ++i) {
        float * __restrict u0 = reinterpret_cast<float *>(u + (i * 4 + 0) * u_stride);
        float * __restrict u1 = reinterpret_cast<float *>(u + (i * 4 + 1) * u_stride);
        float * __restrict u2 = reinterpret_cast<float *>(u + (i * 4 + 2) * u_stride);
        float * __restrict u3 = reinterpret_cast<float *>(u + (i * 4 + 3) * u_stride);
        for (int64_t c = 0; c < n; ++c) {
            float t0, t1, t2;  // row i of G·g: columns kx = 0, 1, 2
            if (i == 0) {
                t0 = g0[c], t1 = g1[c], t2 = g2[c];
            } else if (i == 1) {
                t0 = 0.5f * (g0[c] + g3[c] + g6[c]), t1 = 0.5f * (g1[c] + g4[c] + g7[c]), t2 = 0.5f * (g2[c] + g5[c] + g8[c]);
            } else if (i == 2) {
                t0 = 0.5f * (g0[c] - g3[c] + g6[c]), t1 = 0.5f * (g1[c] - g4[c] + g7[c]), t2 = 0.5f * (g2[c] - g5[c] + g8[c]);
            } else {
                t0 = g6[c], t1 = g7[c], t2 = g8[c];
            }
            u0[c] = t0;
            u1[c] = 0.5f * (t0 + t1 + t2);
            u2[c] = 0.5f * (t0 - t1 + t2);
            u3[c] = t2;
        }
    }
}

// Gathers the kernels of one U panel's output channels oc0 … oc0 + kWinogradPanel − 1 (the lanes)
// for input channels ic0 … ic0 + n − 1 into 9 planes of n rows of lanes, as F32, so that the
// transform runs over the panel's contiguous rows; lanes past the last output channel are zeros,
// U's padding columns.
void gather_kernels(const ggml_tensor * kernel, int64_t oc0, int64_t ic0, int64_t n, float * slab, float * g) {
    const int64_t out_c = kernel->ne[3];
    for (int64_t l = 0; l < kWinogradPanel; ++l) {
        if (oc0 + l >= out_c) {
            for (int64_t r = 0; r < n; ++r) {
                for (int p = 0; p < 9; ++p) g[(p * n + r) * kWinogradPanel + l] = 0.0f;
            }
            continue;
        }
        const char * src = static_cast<const char *>(kernel->data) + (oc0 + l) * kernel->nb[3] + ic0 * kernel->nb[2];
        if (kernel->type == GGML_TYPE_F16) {
            fp16_to_fp32(reinterpret_cast<const ggml_fp16_t *>(src), slab, 9 * n);
        } else {
            std::copy_n(reinterpret_cast<const float *>(src), 9 * n, slab);
        }
        for (int64_t r = 0; r < n; ++r) {
            for (int p = 0; p < 9; ++p) g[(p * n + r) * kWinogradPanel + l] = slab[r * 9 + p];
        }
    }
}

// dst: U for all 16 positions in the GEMM's panel layout (winograd_gemm.h), ne = (OCp, IC, 16)
// F32, U = G·g·Gᵀ for each (ic, oc), with G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1].
// src: the kernel, ne = (3, 3, IC, OC) F16 or F32, contiguous. Work items: panels, each for all
// input channels, kKernelChunk at a time.
void transform_kernel(ggml_tensor * dst, int ith, int nth, void *) {
    const ggml_tensor * kernel = dst->src[0];
    const int64_t in_c = kernel->ne[2], panels = dst->ne[0] / kWinogradPanel;
    const int64_t first = panels * ith / nth, last = panels * (ith + 1) / nth;
    std::vector<float> slab(static_cast<size_t>(9 * kKernelChunk)), g(static_cast<size_t>(9 * kKernelChunk * kWinogradPanel));
    for (int64_t p = first; p < last; ++p) {
        char * panel = static_cast<char *>(dst->data) + p * in_c * kWinogradPanel * sizeof(float);
        for (int64_t ic0 = 0; ic0 < in_c; ic0 += kKernelChunk) {
            const int64_t n = std::min(kKernelChunk, in_c - ic0);
            gather_kernels(kernel, p * kWinogradPanel, ic0, n, slab.data(), g.data());
            kernel_planes_to_tiles(g.data(), panel + ic0 * kWinogradPanel * sizeof(float), dst->nb[2], n * kWinogradPanel);
        }
    }
}

constexpr int64_t kPatchWidth = 2 * kTileGroup + 2;

// V for `count` tiles of one row and kChannelBlock channels: patch[i][x][lane] is input row i of
// the tiles' patches, column x, channel lane; tile t's values for position k go to
// out + t·tile_stride + k·position_stride, one per channel.
SD_VECTOR_CLONES void input_tiles(const float * __restrict patch, int64_t count, char * __restrict out, size_t tile_stride,
                                  size_t position_stride) {
    constexpr int64_t kRow = kPatchWidth * kChannelBlock;
    for (int64_t t = 0; t < count; ++t) {
        float r[4][4][kChannelBlock];  // Bᵀ·d
        for (int j = 0; j < 4; ++j) {
            const float * d = patch + (2 * t + j) * kChannelBlock;
            for (int64_t l = 0; l < kChannelBlock; ++l) {
                const float d0 = d[l], d1 = d[kRow + l], d2 = d[2 * kRow + l], d3 = d[3 * kRow + l];
                r[0][j][l] = d0 - d2;
                r[1][j][l] = d1 + d2;
                r[2][j][l] = d2 - d1;
                r[3][j][l] = d1 - d3;
            }
        }
        char * tile = out + t * tile_stride;
        for (int i = 0; i < 4; ++i) {  // (Bᵀ·d)·B
            auto * v0 = reinterpret_cast<float *>(tile + (i * 4 + 0) * position_stride);
            auto * v1 = reinterpret_cast<float *>(tile + (i * 4 + 1) * position_stride);
            auto * v2 = reinterpret_cast<float *>(tile + (i * 4 + 2) * position_stride);
            auto * v3 = reinterpret_cast<float *>(tile + (i * 4 + 3) * position_stride);
            for (int64_t l = 0; l < kChannelBlock; ++l) {
                v0[l] = r[i][0][l] - r[i][2][l];
                v1[l] = r[i][1][l] + r[i][2][l];
                v2[l] = r[i][2][l] - r[i][1][l];
                v3[l] = r[i][1][l] - r[i][3][l];
            }
        }
    }
}

// dst ne = (IC, tiles_w·rows, 16) F32: V = Bᵀ·d·B for each tile of the stripe's tile rows and each
// input channel, with Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1] and d the 4×4 input patch at
// (2·tx − 1, 2·ty − 1) (zero outside the image: padding 1). src: x ne = (W, H, IC, N) F32,
// rows contiguous, IC a multiple of kChannelBlock. Work items: a group of kTileGroup tiles of a
// row for all channels, a block of channels at a time (the patches are transposed so that
// channels are innermost).
void transform_input(ggml_tensor * dst, int ith, int nth, void *) {
    const ggml_tensor * x = dst->src[0];
    const TileRows p = get_op_params<TileRows>(dst);
    const int64_t in_w = x->ne[0], in_h = x->ne[1], in_c = x->ne[2];
    const int64_t tiles_w = tiles_along(in_w), tiles_h = tiles_along(in_h);
    const int64_t groups_per_row = (tiles_w + kTileGroup - 1) / kTileGroup;
    const int64_t blocks = (p.row_end - p.row_begin) * groups_per_row;
    const int64_t first = blocks * ith / nth, last = blocks * (ith + 1) / nth;

    alignas(64) float patch[4][kPatchWidth][kChannelBlock];
    for (int64_t block = first; block < last; ++block) {
        const int64_t local_row = block / groups_per_row;
        const int64_t tx0 = (block % groups_per_row) * kTileGroup;
        const int64_t count = std::min(kTileGroup, tiles_w - tx0);
        const int64_t row = p.row_begin + local_row, n = row / tiles_h, ty = row % tiles_h;
        const int64_t iy0 = 2 * ty - 1, ix0 = 2 * tx0 - 1, width = 2 * count + 2;
        const int64_t inside_begin = std::max<int64_t>(0, -ix0), inside_end = std::min(width, in_w - ix0);
        char * out = static_cast<char *>(dst->data) + (local_row * tiles_w + tx0) * dst->nb[1];

        for (int64_t c0 = 0; c0 < in_c; c0 += kChannelBlock) {
            for (int i = 0; i < 4; ++i) {
                const int64_t iy = iy0 + i;
                if (iy < 0 || iy >= in_h) {
                    std::fill(&patch[i][0][0], &patch[i][0][0] + width * kChannelBlock, 0.0f);
                    continue;
                }
                for (int64_t xi = 0; xi < inside_begin; ++xi) std::fill_n(patch[i][xi], kChannelBlock, 0.0f);
                for (int64_t xi = inside_end; xi < width; ++xi) std::fill_n(patch[i][xi], kChannelBlock, 0.0f);
                for (int64_t l = 0; l < kChannelBlock; ++l) {
                    const auto * src = reinterpret_cast<const float *>(static_cast<const char *>(x->data) + (c0 + l) * x->nb[2] +
                                                                       iy * x->nb[1] + n * x->nb[3]) + ix0;
                    for (int64_t xi = inside_begin; xi < inside_end; ++xi) patch[i][xi][l] = src[xi];
                }
            }
            input_tiles(&patch[0][0][0], count, out + c0 * dst->nb[0], dst->nb[1], dst->nb[2]);
        }
    }
}

// M = the 16 products for one stripe: dst ne = (OCp, tiles, 16) F32 (winograd_gemm.h), from
// src[0] = V of the stripe and src[1] = U; op params: the GEMM kernel to run.
void multiply_tiles(ggml_tensor * dst, int ith, int nth, void *) {
    const ggml_tensor * v = dst->src[0];
    const ggml_tensor * u = dst->src[1];
    const WinogradGemmShape shape = {v->ne[1], v->ne[0], dst->ne[0]};
    winograd_gemm(get_op_params<GemmKernel>(dst), shape, static_cast<const float *>(v->data),
                  static_cast<const float *>(u->data), static_cast<float *>(dst->data), ith, nth);
}

// Y = Aᵀ·m·A + bias for `count` tiles of one row and kChannelBlock output channels (the lanes),
// with Aᵀ = [1 1 1 0; 0 1 −1 −1]: position k of tile t is at m + k·position_stride +
// t·tile_stride; the tiles' two output rows go to top and bottom, pixel x's lanes at x·lanes.
// Vectorized across the lanes.
SD_VECTOR_CLONES void output_tiles(const float * __restrict m, size_t position_stride, size_t tile_stride, int64_t count,
                                   const float * __restrict bias, float * __restrict top, float * __restrict bottom) {
    for (int64_t t = 0; t < count; ++t) {
        const float * __restrict tile = m + t * tile_stride;
        float * __restrict top_pair = top + 2 * t * kChannelBlock;
        float * __restrict bottom_pair = bottom + 2 * t * kChannelBlock;
        for (int64_t l = 0; l < kChannelBlock; ++l) {
            float upper[4], lower[4];  // Aᵀ·m
            for (int j = 0; j < 4; ++j) {
                const float m0 = tile[j * position_stride + l], m1 = tile[(4 + j) * position_stride + l];
                const float m2 = tile[(8 + j) * position_stride + l], m3 = tile[(12 + j) * position_stride + l];
                upper[j] = m0 + m1 + m2;
                lower[j] = m1 - m2 - m3;
            }
            top_pair[l] = upper[0] + upper[1] + upper[2] + bias[l];  // (Aᵀ·m)·A
            top_pair[kChannelBlock + l] = upper[1] - upper[2] - upper[3] + bias[l];
            bottom_pair[l] = lower[0] + lower[1] + lower[2] + bias[l];
            bottom_pair[kChannelBlock + l] = lower[1] - lower[2] - lower[3] + bias[l];
        }
    }
}

// Writes one stripe's tile rows of dst ne = (W, H, OC, N) F32 from its product M (ne = (OCp,
// tiles_w·rows, 16)). The last tile of an odd width or height has one row or column outside
// the image, which is dropped. Work items: a tile row for a block of kChannelBlock channels,
// whose results are computed with channels innermost and then written out plane by plane.
void transform_output(ggml_tensor * dst, int ith, int nth, void *) {
    const OutputParams p = get_op_params<OutputParams>(dst);
    const int64_t out_w = dst->ne[0], out_h = dst->ne[1], channels = dst->ne[2];
    const int64_t tiles_w = tiles_along(out_w), tiles_h = tiles_along(out_h);
    const ggml_tensor * product = dst->src[p.first_arg];
    const float * bias = p.has_bias ? static_cast<const float *>(dst->src[p.first_arg + 1]->data) : nullptr;
    const int64_t rows = product->ne[1] / tiles_w, blocks = (channels + kChannelBlock - 1) / kChannelBlock;
    const int64_t items = rows * blocks;
    const int64_t first = items * ith / nth, last = items * (ith + 1) / nth;
    const size_t position_stride = product->nb[2] / sizeof(float), tile_stride = product->nb[1] / sizeof(float);

    std::vector<float> top(2 * tiles_w * kChannelBlock), bottom(2 * tiles_w * kChannelBlock);
    for (int64_t item = first; item < last; ++item) {
        const int64_t r = item / blocks, c0 = (item % blocks) * kChannelBlock;
        const int64_t lanes = std::min(kChannelBlock, channels - c0);
        const int64_t row = p.row_begin + r, n = row / tiles_h, ty = row % tiles_h;
        float block_bias[kChannelBlock] = {};
        if (bias != nullptr) std::copy_n(bias + c0, lanes, block_bias);
        const float * row_products = static_cast<const float *>(product->data) + r * tiles_w * tile_stride + c0;
        output_tiles(row_products, position_stride, tile_stride, tiles_w, block_bias, top.data(), bottom.data());
        for (int64_t l = 0; l < lanes; ++l) {
            char * plane = static_cast<char *>(dst->data) + (c0 + l) * dst->nb[2] + n * dst->nb[3];
            auto * upper_row = reinterpret_cast<float *>(plane + 2 * ty * dst->nb[1]);
            for (int64_t x = 0; x < out_w; ++x) upper_row[x] = top[x * kChannelBlock + l];
            if (2 * ty + 1 < out_h) {
                auto * lower_row = reinterpret_cast<float *>(plane + (2 * ty + 1) * dst->nb[1]);
                for (int64_t x = 0; x < out_w; ++x) lower_row[x] = bottom[x * kChannelBlock + l];
            }
        }
    }
}

// Tile rows per stripe so that a stripe's transformed input and products (16 floats per tile
// and channel each) stay under conv_stripe_bytes(); 0 when that would take more than
// kMaxStripes stripes.
int64_t rows_per_stripe(int64_t tile_rows, int64_t tiles_w, int64_t channels) {
    const int64_t bytes_per_row = kTilePositions * tiles_w * channels * static_cast<int64_t>(sizeof(float));
    const int64_t rows = std::max<int64_t>(1, conv_stripe_bytes() / bytes_per_row);
    return (tile_rows + rows - 1) / rows <= kMaxStripes ? rows : 0;
}

} // namespace

bool winograd_applies(const ggml_tensor * x, const ggml_tensor * kernel, int stride, int padding) {
    if (kernel->ne[0] != 3 || kernel->ne[1] != 3 || stride != 1 || padding != 1 || kernel->ne[2] % kChannelBlock != 0) {
        return false;
    }
    const int64_t tiles_w = tiles_along(x->ne[0]), tile_rows = tiles_along(x->ne[1]) * x->ne[3];
    if (tiles_w * tile_rows < min_tiles()) return false;
    return rows_per_stripe(tile_rows, tiles_w, std::max(kernel->ne[2], winograd_padded_channels(kernel->ne[3]))) > 0;
}

ggml_tensor * conv2d_winograd(ggml_context * ctx, ggml_tensor * x, ggml_tensor * kernel, ggml_tensor * bias) {
    if (x->type != GGML_TYPE_F32 || (kernel->type != GGML_TYPE_F16 && kernel->type != GGML_TYPE_F32) ||
        !ggml_is_contiguous(kernel) || (bias != nullptr && bias->type != GGML_TYPE_F32) || !winograd_applies(x, kernel, 1, 1)) {
        throw Error("ERR_INTERNAL", "conv2d_winograd: needs an F32 input and bias and a 3×3 F16/F32 kernel it applies to");
    }
    const int64_t in_c = kernel->ne[2], out_c = kernel->ne[3], batch = x->ne[3];
    const int64_t tiles_w = tiles_along(x->ne[0]), tile_rows = tiles_along(x->ne[1]) * batch;
    const int64_t padded_c = winograd_padded_channels(out_c);
    const int64_t rows = rows_per_stripe(tile_rows, tiles_w, std::max(in_c, padded_c));
    const GemmKernel product_kernel = gemm_kernel();

    if (x->nb[0] != sizeof(float)) x = ggml_cont(ctx, x);
    ggml_tensor * kernel_args[] = {kernel};
    ggml_tensor * u = ggml_custom_4d(ctx, GGML_TYPE_F32, padded_c, in_c, kTilePositions, 1, kernel_args, 1, transform_kernel,
                                     GGML_N_TASKS_MAX, nullptr);
    // Each stripe's output transform writes its rows of y in place, so that only one stripe's
    // transformed input and products are held at a time: y is made by the first stripe's op and
    // passed through the others' (ggml_custom_inplace), which orders the stripes one after another.
    ggml_tensor * y = nullptr;
    for (int64_t row_begin = 0; row_begin < tile_rows; row_begin += rows) {
        const int64_t row_end = std::min(tile_rows, row_begin + rows);
        ggml_tensor * input_args[] = {x};
        ggml_tensor * v = ggml_custom_4d(ctx, GGML_TYPE_F32, in_c, (row_end - row_begin) * tiles_w, kTilePositions, 1,
                                         input_args, 1, transform_input, GGML_N_TASKS_MAX, nullptr);
        set_op_params(v, TileRows{static_cast<int32_t>(row_begin), static_cast<int32_t>(row_end)});
        ggml_tensor * product_args[] = {v, u};
        ggml_tensor * product = ggml_custom_4d(ctx, GGML_TYPE_F32, padded_c, (row_end - row_begin) * tiles_w, kTilePositions, 1,
                                               product_args, 2, multiply_tiles, GGML_N_TASKS_MAX, nullptr);
        set_op_params(product, product_kernel);
        ggml_tensor * output_args[] = {product, bias};
        const int n_args = bias != nullptr ? 2 : 1;
        if (y == nullptr) {
            y = ggml_custom_4d(ctx, GGML_TYPE_F32, x->ne[0], x->ne[1], out_c, batch, output_args, n_args, transform_output,
                               GGML_N_TASKS_MAX, nullptr);
            set_op_params(y, OutputParams{static_cast<int32_t>(row_begin), 0, n_args - 1});
        } else {
            y = ggml_custom_inplace(ctx, y, output_args, n_args, transform_output, GGML_N_TASKS_MAX, nullptr);
            set_op_params(y, OutputParams{static_cast<int32_t>(row_begin), 1, n_args - 1});
        }
    }
    return y;
}

} // namespace sd::nn
