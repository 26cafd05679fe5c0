#include "ops/winograd_gemm.h"

#include <algorithm>

#include "ops/gemm_f32.h"
#include "runtime/env_settings.h"

namespace sd::nn {

namespace {

constexpr int kPositions = 16;

// Tiles per work item, so that the item's V rows (tiles × IC floats, under
// SDNODE_WINOGRAD_CHUNK_BYTES, default 384 KiB) stay in the core's L2 while every U panel of the
// position streams past them: U, read once per chunk, is the larger operand in the deep layers
// (IC·OC up to 1280², few tiles). A multiple of every GEMM kernel's row block (2, 6, 8;
// gemm_f32.cpp), so that only a chunk's last block can be short. Tests shrink the bytes to cover several chunks.
constexpr int64_t kChunkGranule = 24;

int64_t tiles_per_chunk(int64_t in_c) {
    static const int64_t chunk_bytes = env_positive_int("SDNODE_WINOGRAD_CHUNK_BYTES", 384 << 10);
    const int64_t tiles = chunk_bytes / (in_c * static_cast<int64_t>(sizeof(float)));
    return std::max(kChunkGranule, tiles / kChunkGranule * kChunkGranule);
}

} // namespace

// Work items: (position, chunk of tiles, panel), panels innermost, so that a thread's
// consecutive items reuse one chunk of V from L2 while the panels of U stream through; threads
// take contiguous ranges of items and write disjoint parts of M.
void winograd_gemm(GemmKernel kernel, const WinogradGemmShape & shape, const float * v, const float * u, float * m,
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
        gemm_f32(kernel, count, kWinogradPanel, in_c, GemmOperands{v_rows, in_c, u_panel, kWinogradPanel, m_rows, out_c});
    }
}

} // namespace sd::nn
