#include "winograd_gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "env_settings.h"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#include <immintrin.h>
#define SD_HAVE_X86_KERNELS 1
#define SD_TARGET_AVX512 __attribute__((target("avx512f")))
#define SD_TARGET_AVX2 __attribute__((target("avx2,fma")))
#endif

namespace sd::nn {

namespace {

constexpr int kPositions = 16;

// Tiles per work item, so that the item's V rows (tiles × IC floats, under
// SDNODE_WINOGRAD_CHUNK_BYTES, default 384 KiB) stay in the core's L2 while every U panel of the
// position streams past them: U, read once per chunk, is the larger operand in the deep layers
// (IC·OC up to 1280², few tiles). A multiple of every kernel's tile block (2, 6, 8), so that
// only a chunk's last block can be short. Tests shrink the bytes to cover several chunks.
constexpr int64_t kChunkGranule = 24;

int64_t tiles_per_chunk(int64_t in_c) {
    static const int64_t chunk_bytes = env_positive_int("SDNODE_WINOGRAD_CHUNK_BYTES", 384 << 10);
    const int64_t tiles = chunk_bytes / (in_c * static_cast<int64_t>(sizeof(float)));
    return std::max(kChunkGranule, tiles / kChunkGranule * kChunkGranule);
}

// Calls block<M>(args…) for the remainder `rest` (1 … M), going down from M at compile time,
// so that each block size has its own fully unrolled kernel.
template <int M, template <int> class Block, typename... Args> void tail_block(int64_t rest, Args... args) {
    if (rest == M) {
        Block<M>::run(args...);
    } else if constexpr (M > 1) {
        tail_block<M - 1, Block>(rest, args...);
    }
}

// One panel of one position for `count` tiles: m[t][0..32) = Σ_ic v[t][ic] · u[ic][0..32), in
// blocks of Block's `kTiles` tiles.
template <template <int> class Block, int kTiles>
void panel(int64_t count, int64_t in_c, const float * v, const float * u, float * m, int64_t ldm) {
    int64_t t = 0;
    for (; t + kTiles <= count; t += kTiles) Block<kTiles>::run(in_c, v + t * in_c, u, m + t * ldm, ldm);
    if (t < count) tail_block<kTiles - 1, Block>(count - t, in_c, v + t * in_c, u, m + t * ldm, ldm);
}

// Portable: M tiles × a whole panel in a plain array, which the compiler keeps in registers
// and vectorizes for the build's baseline (SSE2 on x86-64: 16 registers at M = 2). Whole-panel
// rows matter: with half-panel rows GCC's -O3 vectorizes the loop over IC instead, 5× slower.
template <int M> struct PortableBlock {
    static void run(int64_t in_c, const float * __restrict v, const float * __restrict u, float * __restrict m, int64_t ldm) {
        float acc[M][kWinogradPanel] = {};
        for (int64_t ic = 0; ic < in_c; ++ic) {
            const float * __restrict row = u + ic * kWinogradPanel;
            for (int i = 0; i < M; ++i) {
                const float a = v[i * in_c + ic];
                for (int j = 0; j < kWinogradPanel; ++j) acc[i][j] += a * row[j];
            }
        }
        for (int i = 0; i < M; ++i) std::memcpy(m + i * ldm, acc[i], sizeof(acc[i]));
    }
};

#ifdef SD_HAVE_X86_KERNELS
// AVX-512: M tiles × 32 columns in 2·M zmm accumulators (16 of 32 registers at M = 8).
template <int M> struct Avx512Block {
    SD_TARGET_AVX512 static void run(int64_t in_c, const float * v, const float * u, float * m, int64_t ldm) {
        __m512 acc[M][2];
        for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
        for (int64_t ic = 0; ic < in_c; ++ic) {
            const __m512 u0 = _mm512_loadu_ps(u + ic * kWinogradPanel);
            const __m512 u1 = _mm512_loadu_ps(u + ic * kWinogradPanel + 16);
            for (int i = 0; i < M; ++i) {
                const __m512 a = _mm512_set1_ps(v[i * in_c + ic]);
                acc[i][0] = _mm512_fmadd_ps(a, u0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(a, u1, acc[i][1]);
            }
        }
        for (int i = 0; i < M; ++i) {
            _mm512_storeu_ps(m + i * ldm, acc[i][0]);
            _mm512_storeu_ps(m + i * ldm + 16, acc[i][1]);
        }
    }
};

// AVX2 + FMA: M tiles × 16 columns in 2·M ymm accumulators (12 of 16 registers at M = 6);
// each half-panel in turn.
template <int M> struct Avx2Block {
    SD_TARGET_AVX2 static void half(int64_t in_c, const float * v, const float * u, float * m, int64_t ldm) {
        __m256 acc[M][2];
        for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        for (int64_t ic = 0; ic < in_c; ++ic) {
            const __m256 u0 = _mm256_loadu_ps(u + ic * kWinogradPanel);
            const __m256 u1 = _mm256_loadu_ps(u + ic * kWinogradPanel + 8);
            for (int i = 0; i < M; ++i) {
                const __m256 a = _mm256_set1_ps(v[i * in_c + ic]);
                acc[i][0] = _mm256_fmadd_ps(a, u0, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(a, u1, acc[i][1]);
            }
        }
        for (int i = 0; i < M; ++i) {
            _mm256_storeu_ps(m + i * ldm, acc[i][0]);
            _mm256_storeu_ps(m + i * ldm + 8, acc[i][1]);
        }
    }
    SD_TARGET_AVX2 static void run(int64_t in_c, const float * v, const float * u, float * m, int64_t ldm) {
        half(in_c, v, u, m, ldm);
        half(in_c, v, u + 16, m + 16, ldm);
    }
};

WinogradGemmKernel best_kernel_of_cpu() {
    static const WinogradGemmKernel best = []() {
        if (__builtin_cpu_supports("avx512f")) return WinogradGemmKernel::avx512;
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return WinogradGemmKernel::avx2;
        return WinogradGemmKernel::portable;
    }();
    return best;
}
#else
WinogradGemmKernel best_kernel_of_cpu() { return WinogradGemmKernel::portable; }
#endif

constexpr int kPortableTiles = 2;
constexpr int kAvx2Tiles = 6;
constexpr int kAvx512Tiles = 8;

void run_panel(WinogradGemmKernel kernel, int64_t count, int64_t in_c, const float * v, const float * u, float * m, int64_t ldm) {
#ifdef SD_HAVE_X86_KERNELS
    if (kernel == WinogradGemmKernel::avx512) return panel<Avx512Block, kAvx512Tiles>(count, in_c, v, u, m, ldm);
    if (kernel == WinogradGemmKernel::avx2) return panel<Avx2Block, kAvx2Tiles>(count, in_c, v, u, m, ldm);
#endif
    (void)kernel;
    panel<PortableBlock, kPortableTiles>(count, in_c, v, u, m, ldm);
}

} // namespace

WinogradGemmKernel winograd_gemm_kernel() {
    const WinogradGemmKernel best = best_kernel_of_cpu();
    const char * env = std::getenv("SDNODE_WINOGRAD_GEMM");
    WinogradGemmKernel asked = best;
    if (env != nullptr && std::strcmp(env, "portable") == 0) asked = WinogradGemmKernel::portable;
    if (env != nullptr && std::strcmp(env, "avx2") == 0) asked = WinogradGemmKernel::avx2;
    return std::min(asked, best);  // never one the CPU lacks
}

// Work items: (position, chunk of tiles, panel), panels innermost, so that a thread's
// consecutive items reuse one chunk of V from L2 while the panels of U stream through; threads
// take contiguous ranges of items and write disjoint parts of M.
void winograd_gemm(WinogradGemmKernel kernel, const WinogradGemmShape & shape, const float * v, const float * u, float * m,
                   int ith, int nth) {
    const int64_t tiles = shape.tiles, in_c = shape.in_c, out_c = shape.out_c_padded;
    const int64_t chunk = tiles_per_chunk(in_c);
    const int64_t chunks = (tiles + chunk - 1) / chunk, panels = out_c / kWinogradPanel;
    const int64_t items = kPositions * chunks * panels;
    const int64_t first = items * ith / nth, last = items * (ith + 1) / nth;
    for (int64_t item = first; item < last; ++item) {
        const int64_t position = item / (chunks * panels);
        const int64_t tile0 = (item / panels % chunks) * chunk, p = item % panels;
        const int64_t count = std::min(chunk, tiles - tile0);
        const float * v_rows = v + (position * tiles + tile0) * in_c;
        const float * u_panel = u + position * in_c * out_c + p * in_c * kWinogradPanel;
        float * m_rows = m + (position * tiles + tile0) * out_c + p * kWinogradPanel;
        run_panel(kernel, count, in_c, v_rows, u_panel, m_rows, out_c);
    }
}

} // namespace sd::nn
