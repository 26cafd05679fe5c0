#pragma once
// Building blocks shared by the networks (VAE, UNet, text encoders): plain functions that add
// ggml ops to a graph under construction, reading weights from a component's NetworkWeights by
// name prefix (e.g. "decoder.conv_in" → "decoder.conv_in.weight" + "decoder.conv_in.bias").
// Nothing here allocates or computes: call them inside a GraphRunner build function.
//
// Tensor layouts (ggml order, innermost first):
//   images / feature maps  ne = (W, H, C, N)   — NCHW in PyTorch terms
//   token sequences        ne = (dim, T, N)    — [N, T, dim] in PyTorch terms
//   conv kernels           ne = (KW, KH, IC, OC), F16 or F32
//   linear weights         ne = (in, out), any ggml type (F32, F16, quantized)
//   norm weights, biases   ne = (C), F32 (F16 as stored when a model keeps its files' types:
//                          the functions here cast them, so use them rather than raw ggml_add)
//
// Usage, e.g. a ResNet block (VAE: eps 1e-6; UNet: 1e-5):
//   using namespace sd::nn;
//   ggml_tensor * h = silu(ctx, group_norm(ctx, w, "mid_block.resnets.0.norm1", x, 32, 1e-6f));
//   h = conv2d(ctx, w, "mid_block.resnets.0.conv1", h, /*stride*/ 1, /*padding*/ 1, path);
//   ...
//   ggml_tensor * seq = to_sequence(ctx, h);              // (W,H,C,N) → (C, W·H, N)
//   ggml_tensor * q = linear(ctx, w, "attn.to_q", seq);   // (C, T, N) → (C', T, N)
//   ggml_tensor * o = attention(ctx, q, k, v, heads);     // (C', T, N)
//   h = from_sequence(ctx, o, W, H);                      // back to (W, H, C', N)
#include <string>

#include "ggml-backend.h"
#include "ggml.h"
#include "model/network_weights.h"

namespace sd::nn {

// How conv2d computes.
//   winograd     the CPU backend's path: Winograd's F(2×2, 3×3) (conv2d_winograd.h) for the 3×3
//                layers with enough tiles to pay for it, unfold_gemm for the others.
//   unfold_gemm  our own unfolding op + ggml_mul_mat (conv2d_unfold.h) for every layer.
//                Custom ops run only on the CPU, so graphs for other backends cannot use either.
//   im2col       ggml_im2col + ggml_mul_mat (as ggml_conv_2d, but the unfolded input takes the
//                kernel's type; ggml_conv_2d itself always unfolds to F16, which would lose F32
//                precision). The UNet's path on GPU backends.
//   direct       ggml_conv_2d_direct: the backend's own convolution (Vulkan and CUDA have native
//                kernels). The VAE's path on GPU backends: it never materialises the unfolded
//                input of a full-resolution layer.
// On the CPU, ggml's im2col and direct convolution gather one value at a time (see
// conv2d_unfold.h); measured on the full-size SD VAE decoder, 256², f16, 2 threads: direct
// 9.5 s, unfold_gemm 3.2 s. The unfolding paths give the same values: the unfolded
// patches take the kernel's type (F32 kernels stay exact, F16 kernels round the activations to
// F16 as any F16 GEMM does); Winograd computes in F32 from the F16 or F32 kernel.
// SDNODE_CONV_PATH=winograd|unfold_gemm|im2col|direct in the environment at start-up forces one
// path for every network on every backend (benchmarks, debugging; the first two only work on
// the CPU).
enum class ConvPath { winograd, unfold_gemm, im2col, direct };

// Whether graphs for `backend` are computed by the CPU backend (where our custom ops run).
bool is_cpu_backend(ggml_backend_t backend);

// The path for graphs computed on `backend`, with `gpu_path` as what a network prefers on
// backends other than the CPU.
ConvPath conv_path_for(ggml_backend_t backend, ConvPath gpu_path);

// `t` as F32: a model loaded with its files' own types may hold norm weights, biases and
// embeddings as F16 (or BF16), and ggml's CPU add/mul take only F32 for the second operand.
ggml_tensor * as_f32(ggml_context * ctx, ggml_tensor * t);

// y = x·Wᵀ + b over the innermost dimension: x ne = (in, ...) → (out, ...).
// Reads "<prefix>.weight" (ne = (in, out)) and "<prefix>.bias" if the model has it.
ggml_tensor * linear(ggml_context * ctx, const NetworkWeights & w, const std::string & prefix, ggml_tensor * x);

// 2-D convolution with square stride/padding (dilation 1): x ne = (W, H, IC, N) F32 →
// (OW, OH, OC, N). Reads "<prefix>.weight" (ne = (KW, KH, IC, OC), F16/F32) and "<prefix>.bias"
// if present. `path`: conv_path_for() the backend that computes the graph.
ggml_tensor * conv2d(ggml_context * ctx, const NetworkWeights & w, const std::string & prefix, ggml_tensor * x,
                     int stride, int padding, ConvPath path);

// The same convolution with the kernel (and optional bias) given as tensors.
ggml_tensor * conv2d_kernel(ggml_context * ctx, ggml_tensor * x, ggml_tensor * kernel, ggml_tensor * bias, int stride,
                            int padding, ConvPath path);

// Run-time LoRA changes (network_weights.h's RuntimeAdapter) of the weight "<prefix>.weight",
// added to a layer's output `y` for its input `x`; `y` itself when the weight has none. linear()
// and conv2d() call them; layers that compute their product themselves (SD1's 1×1 proj_in/out
// taken as linear, the UNet's F32 conv_in/conv_out) call them after it.
//   linear: x ne (in, …) → y ne (out, …); a 1×1 convolution's factors are taken as linear ones.
//   conv:   x ne (W, H, IC, N) → y ne (OW, OH, OC, N), with the layer's stride and padding.
ggml_tensor * add_linear_adapters(ggml_context * ctx, const NetworkWeights & w, const std::string & prefix, ggml_tensor * x,
                                  ggml_tensor * y);
ggml_tensor * add_conv_adapters(ggml_context * ctx, const NetworkWeights & w, const std::string & prefix, ggml_tensor * x,
                                ggml_tensor * y, int stride, int padding, ConvPath path);

// GroupNorm over (W, H, C/groups) per sample, then per-channel affine from "<prefix>.weight" and
// "<prefix>.bias", then SiLU if `then_silu`. x ne = (W, H, C, N). PyTorch's default eps is 1e-5;
// SD's VAE uses 1e-6. `cpu`: the graph runs on the CPU backend, so one op does it all (norm_cpu.h).
ggml_tensor * group_norm(ggml_context * ctx, const NetworkWeights & w, const std::string & prefix, ggml_tensor * x,
                         int groups = 32, float eps = 1e-5f, bool cpu = false, bool then_silu = false);

// LayerNorm over the innermost dimension with affine "<prefix>.weight" / "<prefix>.bias"; `cpu`
// as for group_norm.
ggml_tensor * layer_norm(ggml_context * ctx, const NetworkWeights & w, const std::string & prefix, ggml_tensor * x,
                         float eps = 1e-5f, bool cpu = false);

ggml_tensor * silu(ggml_context * ctx, ggml_tensor * x);

// (W, H, C, N) → (C, W·H, N), contiguous: a feature map as a token sequence (token index = y·W + x,
// as PyTorch's x.view(N, C, H·W).transpose(1, 2)).
ggml_tensor * to_sequence(ggml_context * ctx, ggml_tensor * x);
// (C, W·H, N) → (W, H, C, N), contiguous: the inverse of to_sequence.
ggml_tensor * from_sequence(ggml_context * ctx, ggml_tensor * x, int64_t width, int64_t height);

// Scaled dot-product attention, softmax(q·kᵀ / sqrt(d) + mask)·v, with `heads` heads of
// d = dim / heads each (PyTorch's F.scaled_dot_product_attention after splitting heads).
//   q ne = (dim, Tq, N); k ne = (dim, Tk, N); v ne = (dim_v, Tk, N) → (dim_v, Tq, N)
//   mask: nullptr, or F32 ne = (Tk, Tq) added to the scores (e.g. -INFINITY above the diagonal
//         for a causal mask); it forces the mul_mat path.
//   flash: ggml_flash_attn_ext (K and V cast to F16, F32 accumulation; less memory, the scores
//         are never stored) instead of mul_mat + soft_max (F32 throughout). Checked on the VAE's
//         mid attention: F32 weights give 1e-4..2e-4 relative error with flash (F16 K/V) against
//         2e-6 without; with F16 weights both are ~1e-3.
ggml_tensor * attention(ggml_context * ctx, ggml_tensor * q, ggml_tensor * k, ggml_tensor * v, int heads,
                        bool flash = false, ggml_tensor * mask = nullptr);

} // namespace sd::nn
