#pragma once
// 2-D convolution for the CPU backend as "unfold, then one GEMM": our own unfolding op writes
// each output pixel's receptive field as one contiguous row (what im2col does), and ggml's
// mul_mat multiplies those rows with the kernel, which on the CPU runs llamafile's tiled GEMM.
//
// Why not ggml's own ops: ggml's CPU im2col and conv_2d_direct gather one value at a time with
// a division per value and a scalar F32→F16 conversion, and conv_2d_direct then scatters its
// result channel by channel; profiled on the SD VAE decoder (256², f16, 2 threads) that gather
// and scatter took 67% of the decode and the GEMM 26%. Our unfolding walks cache-sized blocks
// of output pixels, converts whole blocks at once, and the GEMM's output is already in
// (W, H, C) order, so nothing is scattered back.
//
// Memory stays bounded: the unfolded rows are built for stripes of output rows, each under
// conv_stripe_bytes() (up to 8 stripes, beyond which stripes grow), one stripe's GEMM at a time;
// the graph allocator reuses a stripe's buffer for the next. Custom ops run only on the CPU
// backend: use this only for graphs computed there (nn::conv_path_for picks it).
#include <cstdint>

#include "ggml.h"

namespace sd::nn {

// The byte bound of a stripe's intermediate (unfolded rows here, transformed tiles in
// conv2d_winograd.h): 64 MiB, or SDNODE_CONV_STRIPE_BYTES at start-up, so that tests can cut the
// tiny fixtures' layers into stripes. Each op caps its number of stripes on its own terms.
int64_t conv_stripe_bytes();

// x ne = (W, H, IC, N) F32, kernel ne = (KW, KH, IC, OC) F16 or F32 (the unfolded input takes the
// kernel's type, as ggml_conv_2d does), bias ne = (OC) F32 or nullptr. Square stride and padding,
// dilation 1. Returns (OW, OH, OC, N) F32.
ggml_tensor * conv2d_unfold_gemm(ggml_context * ctx, ggml_tensor * x, ggml_tensor * kernel, ggml_tensor * bias,
                                 int stride, int padding);

} // namespace sd::nn
