#pragma once
// A small F32 matrix product for our CPU ops, on plain arrays:
//   C[i][j] = Σ_p A[i][p] · B[p][j]   for i < rows, j < cols, p < depth
// with every matrix row-major and its rows `ld*` floats apart.
//
// Why our own: ggml's CPU GEMM keeps one accumulator vector per output along the sum and adds
// its lanes up at the end, which costs as much as the sum itself when the sum is short (an
// attention head of 40 or 64 values, a Winograd product over a few hundred channels). These
// kernels keep a block of rows × columns of C in vector registers and run along the sum by
// broadcasting one value of A against a vector of B's row, so every FMA adds to a finished
// output lane and nothing is reduced across lanes.
#include <cstdint>

namespace sd::nn {

// The micro-kernel: the best one the CPU has, or a lower one that SDNODE_GEMM_KERNEL
// (`avx512`, `avx2`, `portable`) asks for, so that tests can cover each on one machine.
enum class GemmKernel : int32_t { portable = 0, avx2 = 1, avx512 = 2 };

// Reads SDNODE_GEMM_KERNEL at each call (graph building), so a test can switch kernels
// between graphs of one process; never returns a kernel the CPU lacks.
GemmKernel gemm_kernel();

// B's columns are taken in vectors of this many floats: `cols` must be a multiple of it, and
// B's and C's rows must hold that many (pad them with zeros).
constexpr int64_t kGemmColumnBlock = 16;

struct GemmOperands {
    const float * a;
    int64_t lda;
    const float * b;
    int64_t ldb;
    float * c;
    int64_t ldc;
};

// C = A·B as above, overwriting C. Single-threaded: callers split rows or columns over threads.
void gemm_f32(GemmKernel kernel, int64_t rows, int64_t cols, int64_t depth, const GemmOperands & m);

} // namespace sd::nn
