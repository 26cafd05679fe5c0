#pragma once
// The 16 GEMMs of the Winograd convolution (conv2d_winograd.h): for each tile position k,
//   M_k[tile][oc] = Σ_ic V_k[tile][ic] · U_k[ic][oc]
// in F32, on plain arrays (no ggml), so that a benchmark or test can call it on its own.
//
// Why our own: the transformed GEMMs have a short K (IC = 320…1280), and a GEMM that keeps one
// accumulator vector per output along K pays a horizontal sum per output. These kernels keep a
// block of tiles × output channels in vector registers and accumulate along IC by broadcasting
// one V value and multiplying it with a vector of U over output channels, so every FMA adds to
// a finished output lane.
//
// Layouts (floats, all 16 positions in one array each, position-major):
//   V: [16][tiles][IC]                      (what the input transform writes)
//   U: [16][OCp / 32][IC][32]               output channels padded to OCp, a multiple of
//                                           kWinogradPanel, and cut into panels of 32 columns,
//                                           so that a panel's rows are contiguous; the padding
//                                           columns hold zeros
//   M: [16][tiles][OCp]                     (what the output transform reads)
#include <cstdint>

namespace sd::nn {

// Output channels per U panel: two AVX-512 vectors.
constexpr int64_t kWinogradPanel = 32;

inline int64_t winograd_padded_channels(int64_t out_c) { return (out_c + kWinogradPanel - 1) / kWinogradPanel * kWinogradPanel; }

// The micro-kernel the GEMM runs: the best one the CPU has, or a lower one that
// SDNODE_WINOGRAD_GEMM (`avx512`, `avx2`, `portable`) asks for, so that tests cover each.
enum class WinogradGemmKernel : int32_t { portable = 0, avx2 = 1, avx512 = 2 };

// The kernel to use; reads SDNODE_WINOGRAD_GEMM at each call (graph building), so that a test
// can switch kernels between graphs of one process.
WinogradGemmKernel winograd_gemm_kernel();

struct WinogradGemmShape {
    int64_t tiles;
    int64_t in_c;
    int64_t out_c_padded;  // a multiple of kWinogradPanel
};

// Thread ith of nth computes its share of M (disjoint outputs; no synchronisation needed).
void winograd_gemm(WinogradGemmKernel kernel, const WinogradGemmShape & shape, const float * v, const float * u, float * m,
                   int ith, int nth);

} // namespace sd::nn
