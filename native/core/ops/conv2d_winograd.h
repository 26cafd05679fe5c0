#pragma once
// 3×3 convolution (stride 1, padding 1) for the CPU backend by Winograd's minimal filtering
// F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015).
//
// Each 2×2 block of output pixels ("tile") comes from a 4×4 input patch d as
//   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
// so the 16 elementwise products, summed over input channels, are 16 independent GEMMs of
// (tiles × IC) · (IC × OC): 16 multiplications per tile and channel pair instead of 36, 2.25×
// fewer FLOPs than unfolding. Why it is worth it: the UNet's convolutions are most of a step,
// and the GEMM already runs near the machine's FMA peak (bench/README.md), so fewer FLOPs is
// what is left. All three transforms use only additions and halvings, and everything is F32
// (the kernel is transformed per graph from its F16 or F32 values; the GEMMs take F32 operands),
// so the result is no less accurate than unfolding, which rounds activations to F16. The 16
// GEMMs are our own op (winograd_gemm.h), accumulating along output channels.
//
// Costs the unfolding path does not have: the kernel transform writes 16·IC·OCp floats per
// evaluation (OCp: OC rounded up to the GEMM's panel of 32), which only pays off with enough
// tiles per GEMM (winograd_applies()), and the transformed input and the 16 products are F32
// (16·IC and 16·OCp floats per tile): they are
// built for stripes of tile rows under the same byte bound as unfolding's stripes, and each
// stripe's output transform writes its rows of the result in place before the next stripe is
// transformed, so only one stripe's are held at a time.
// Custom ops run only on the CPU backend: nn::conv2d uses this only for graphs computed there.
#include "ggml.h"

namespace sd::nn {

// Whether conv2d_winograd() takes this convolution (x ne = (W, H, IC, N), kernel ne = (KW, KH,
// IC, OC)): a 3×3 kernel with stride 1 and padding 1, IC a multiple of 16 (the input
// transform's channel block; the 4-channel input layers are left to unfolding), and at least
// SDNODE_WINOGRAD_MIN_TILES tiles (default 64; tests set 1 to cover the tiny fixtures).
bool winograd_applies(const ggml_tensor * x, const ggml_tensor * kernel, int stride, int padding);

// x ne = (W, H, IC, N) F32, kernel ne = (3, 3, IC, OC) F16 or F32, bias ne = (OC) F32 or nullptr.
// Returns (W, H, OC, N) F32.
ggml_tensor * conv2d_winograd(ggml_context * ctx, ggml_tensor * x, ggml_tensor * kernel, ggml_tensor * bias);

} // namespace sd::nn
