#include "ops/gemm_f32.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#include <immintrin.h>
#define SD_HAVE_X86_GEMM 1
#define SD_TARGET_AVX512 __attribute__((target("avx512f")))
#define SD_TARGET_AVX2 __attribute__((target("avx2,fma")))
#endif

namespace sd::nn {

namespace {

constexpr int64_t kLanes = kGemmColumnBlock;

// Portable: M rows × W·16 columns in a plain array, which the compiler keeps in registers and
// vectorizes for the build's baseline (SSE2 on x86-64: 16 registers at M = 2, W = 2). Whole
// 32-column rows matter: with 16-column rows GCC's -O3 vectorized along the sum instead, 5×
// slower (measured on the Winograd products).
template <int M, int W> struct PortableBlock {
    static void run(int64_t depth, const GemmOperands & m) {
        constexpr int kWidth = W * kLanes;
        float acc[M][kWidth] = {};
        for (int64_t p = 0; p < depth; ++p) {
            const float * __restrict row = m.b + p * m.ldb;
            for (int i = 0; i < M; ++i) {
                const float a = m.a[i * m.lda + p];
                for (int j = 0; j < kWidth; ++j) acc[i][j] += a * row[j];
            }
        }
        for (int i = 0; i < M; ++i) std::memcpy(m.c + i * m.ldc, acc[i], sizeof(acc[i]));
    }
};

#ifdef SD_HAVE_X86_GEMM
// AVX-512: M rows × W·16 columns in M·W zmm accumulators (16 of 32 registers at M = 8, W = 2).
template <int M, int W> struct Avx512Block {
    SD_TARGET_AVX512 static void run(int64_t depth, const GemmOperands & m) {
        __m512 acc[M][W];
        for (int i = 0; i < M; ++i) {
            for (int w = 0; w < W; ++w) acc[i][w] = _mm512_setzero_ps();
        }
        for (int64_t p = 0; p < depth; ++p) {
            __m512 b[W];
            for (int w = 0; w < W; ++w) b[w] = _mm512_loadu_ps(m.b + p * m.ldb + w * kLanes);
            for (int i = 0; i < M; ++i) {
                const __m512 a = _mm512_set1_ps(m.a[i * m.lda + p]);
                for (int w = 0; w < W; ++w) acc[i][w] = _mm512_fmadd_ps(a, b[w], acc[i][w]);
            }
        }
        for (int i = 0; i < M; ++i) {
            for (int w = 0; w < W; ++w) _mm512_storeu_ps(m.c + i * m.ldc + w * kLanes, acc[i][w]);
        }
    }
};

// AVX2 + FMA: M rows × 16 columns (two ymm) in 2·M accumulators (12 of 16 registers at M = 6).
template <int M, int W> struct Avx2Block {
    static_assert(W == 1, "the AVX2 kernel takes 16 columns at a time");
    SD_TARGET_AVX2 static void run(int64_t depth, const GemmOperands & m) {
        __m256 acc[M][2];
        for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        for (int64_t p = 0; p < depth; ++p) {
            const __m256 b0 = _mm256_loadu_ps(m.b + p * m.ldb);
            const __m256 b1 = _mm256_loadu_ps(m.b + p * m.ldb + 8);
            for (int i = 0; i < M; ++i) {
                const __m256 a = _mm256_set1_ps(m.a[i * m.lda + p]);
                acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
            }
        }
        for (int i = 0; i < M; ++i) {
            _mm256_storeu_ps(m.c + i * m.ldc, acc[i][0]);
            _mm256_storeu_ps(m.c + i * m.ldc + 8, acc[i][1]);
        }
    }
};

GemmKernel best_kernel_of_cpu() {
    static const GemmKernel best = []() {
        if (__builtin_cpu_supports("avx512f")) return GemmKernel::avx512;
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return GemmKernel::avx2;
        return GemmKernel::portable;
    }();
    return best;
}
#else
GemmKernel best_kernel_of_cpu() { return GemmKernel::portable; }
#endif

// Block<M, W> for the last `rest` rows (1 … M − 1 … 1), chosen at compile time going down, so
// that each row count has its own unrolled kernel.
template <template <int, int> class Block, int M, int W> void tail_rows(int64_t rest, int64_t depth, const GemmOperands & m) {
    if (rest == M) {
        Block<M, W>::run(depth, m);
    } else if constexpr (M > 1) {
        tail_rows<Block, M - 1, W>(rest, depth, m);
    }
}

// All rows of one strip of W·16 columns, kRows at a time.
template <template <int, int> class Block, int kRows, int W>
void column_strip(int64_t rows, int64_t depth, GemmOperands m) {
    const float * a = m.a;
    float * c = m.c;
    int64_t i = 0;
    for (; i + kRows <= rows; i += kRows) {
        m.a = a + i * m.lda;
        m.c = c + i * m.ldc;
        Block<kRows, W>::run(depth, m);
    }
    if (i < rows) {
        m.a = a + i * m.lda;
        m.c = c + i * m.ldc;
        tail_rows<Block, kRows - 1, W>(rows - i, depth, m);
    }
}

// Strips of kWide·16 columns, then one of 16 if the width leaves one.
template <template <int, int> class Block, int kRows, int kWide>
void gemm_with(int64_t rows, int64_t cols, int64_t depth, const GemmOperands & m) {
    int64_t j = 0;
    for (; j + kWide * kLanes <= cols; j += kWide * kLanes) {
        column_strip<Block, kRows, kWide>(rows, depth, GemmOperands{m.a, m.lda, m.b + j, m.ldb, m.c + j, m.ldc});
    }
    if constexpr (kWide > 1) {
        for (; j < cols; j += kLanes) {
            column_strip<Block, kRows, 1>(rows, depth, GemmOperands{m.a, m.lda, m.b + j, m.ldb, m.c + j, m.ldc});
        }
    }
}

} // namespace

GemmKernel gemm_kernel() {
    const GemmKernel best = best_kernel_of_cpu();
    const char * env = std::getenv("SDNODE_GEMM_KERNEL");
    GemmKernel asked = best;
    if (env != nullptr && std::strcmp(env, "portable") == 0) asked = GemmKernel::portable;
    if (env != nullptr && std::strcmp(env, "avx2") == 0) asked = GemmKernel::avx2;
    return std::min(asked, best);
}

void gemm_f32(GemmKernel kernel, int64_t rows, int64_t cols, int64_t depth, const GemmOperands & m) {
#ifdef SD_HAVE_X86_GEMM
    if (kernel == GemmKernel::avx512) return gemm_with<Avx512Block, 8, 2>(rows, cols, depth, m);
    if (kernel == GemmKernel::avx2) return gemm_with<Avx2Block, 6, 1>(rows, cols, depth, m);
#endif
    (void)kernel;
    gemm_with<PortableBlock, 2, 2>(rows, cols, depth, m);
}

} // namespace sd::nn
