#pragma once
// Unmasked multi-head attention as one op for graphs computed on the CPU backend:
//   out = softmax(scale · q·kᵀ) · v   per head,
// q ne = (heads·d, Tq, N), k ne = (heads·d, Tk, N), v ne = (heads·dv, Tk, N), all F32, heads
// interleaved along ne0 as diffusers lays them out; out ne = (heads·dv, Tq, N).
//
// Why our own op: through ggml the scores are a GEMM whose sum is one head (40 values for
// SD 1.5's outer levels), where ggml's GEMM spends as long adding up its accumulators as on
// the products; the head size had to be padded to its vector width, the scores of a group of
// heads written out in full (up to 256 MiB), then read by a softmax and a second GEMM, with a
// barrier between each. Here each thread takes a block of queries of one head at a time: the
// scores of that block (in L2), their softmax and the product with v, all with our own GEMM
// (gemm_f32.h). No score matrix is ever allocated in the graph.
// Custom ops run only on the CPU backend; other backends keep nn::attention's ggml graph.
#include "ggml.h"

namespace sd::nn {

ggml_tensor * attention_cpu(ggml_context * ctx, ggml_tensor * q, ggml_tensor * k, ggml_tensor * v, int heads, float scale);

// False when SDNODE_ATTENTION=ggml asks for ggml's graph instead (benchmarks compare the two);
// read at each call (graph building).
bool attention_cpu_enabled();

} // namespace sd::nn
