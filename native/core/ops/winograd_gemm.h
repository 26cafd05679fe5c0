#pragma once
// The 16 GEMMs of the Winograd convolution (conv2d_winograd.h): for each tile position k,
//   M_k[tile][oc] = Σ_ic V_k[tile][ic] · U_k[ic][oc]
// in F32, on plain arrays (no ggml), so that a benchmark or test can call it on its own.
//
// Why our own: the transformed GEMMs have a short K (IC = 320…1280), where ggml's GEMM spends
// much of its time adding up per-output accumulators; gemm_f32.h's kernels accumulate along
// output channels instead. This file cuts the work into items that keep V in L2 (below).
//
// Layouts (floats, all 16 positions in one array each, position-major):
//   V: [16][tiles][IC]                      (what the input transform writes)
//   U: [16][OCp / 32][IC][32]               output channels padded to OCp, a multiple of
//                                           kWinogradPanel, and cut into panels of 32 columns,
//                                           so that a panel's rows are contiguous; the padding
//                                           columns hold zeros
//   M: [16][tiles][OCp]                     (what the output transform reads)
#include <cstdint>

#include "ops/gemm_f32.h"

namespace sd::nn {

// Output channels per U panel: two AVX-512 vectors.
constexpr int64_t kWinogradPanel = 32;

inline int64_t winograd_padded_channels(int64_t out_c) { return (out_c + kWinogradPanel - 1) / kWinogradPanel * kWinogradPanel; }

struct WinogradGemmShape {
    int64_t tiles;
    int64_t in_c;
    int64_t out_c_padded;  // a multiple of kWinogradPanel
};

// Thread ith of nth computes its share of M (disjoint outputs; no synchronisation needed).
// `kernel`: gemm_kernel(), chosen when the graph is built.
void winograd_gemm(GemmKernel kernel, const WinogradGemmShape & shape, const float * v, const float * u, float * m,
                   int ith, int nth);

} // namespace sd::nn
