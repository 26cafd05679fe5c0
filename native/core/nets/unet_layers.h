#pragma once
// What the UNet needs beyond nn_layers.h (the shared building blocks). Layouts as there:
// images ne = (W, H, C, N), sequences ne = (C, T, N).
#include "ggml.h"

namespace sd::unet_ops {

// x·Wᵀ + b over the innermost dimension with the weight given as a tensor; `b` may be null.
ggml_tensor * linear(ggml_context * ctx, ggml_tensor * x, ggml_tensor * w, ggml_tensor * b);

// A 1x1 convolution's kernel, ne = (1, 1, IC, OC), seen as a linear weight ne = (IC, OC): SD1's
// Transformer2D proj_in/proj_out are such convolutions, and on a token sequence they are linear.
ggml_tensor * conv1x1_as_linear(ggml_context * ctx, ggml_tensor * w);

// A convolution computed in F32 whatever the kernel's stored type (the kernel is cast in the
// graph): for the UNet's first and last convolutions, which are small and whose precision the
// prediction inherits directly. `b` may be null.
ggml_tensor * conv2d_f32(ggml_context * ctx, ggml_tensor * x, ggml_tensor * w, ggml_tensor * b, int stride, int padding);

// Nearest-neighbour resize of an image's W and H to (w, h), as PyTorch's
// F.interpolate(mode="nearest"): source index floor(i · in / out).
ggml_tensor * resize_nearest(ggml_context * ctx, ggml_tensor * x, int64_t w, int64_t h);

} // namespace sd::unet_ops
