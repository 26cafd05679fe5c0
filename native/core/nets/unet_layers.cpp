#include "nets/unet_layers.h"

namespace sd::unet_ops {

ggml_tensor * linear(ggml_context * ctx, ggml_tensor * x, ggml_tensor * w, ggml_tensor * b) {
    ggml_tensor * y = ggml_mul_mat(ctx, w, x);
    if (b != nullptr) y = ggml_add(ctx, y, b);
    return y;
}

ggml_tensor * conv1x1_as_linear(ggml_context * ctx, ggml_tensor * w) {
    return ggml_reshape_2d(ctx, w, w->ne[2], w->ne[3]);
}

ggml_tensor * conv2d_f32(ggml_context * ctx, ggml_tensor * x, ggml_tensor * w, ggml_tensor * b, int stride, int padding) {
    ggml_tensor * kernel = w->type == GGML_TYPE_F32 ? w : ggml_cast(ctx, w, GGML_TYPE_F32);
    ggml_tensor * y = ggml_conv_2d_direct(ctx, kernel, x, stride, stride, padding, padding, 1, 1);
    if (b != nullptr) y = ggml_add(ctx, y, ggml_reshape_4d(ctx, b, 1, 1, b->ne[0], 1));
    return y;
}

ggml_tensor * resize_nearest(ggml_context * ctx, ggml_tensor * x, int64_t w, int64_t h) {
    if (w == 2 * x->ne[0] && h == 2 * x->ne[1]) return ggml_upscale(ctx, x, 2, GGML_SCALE_MODE_NEAREST);
    return ggml_interpolate(ctx, x, w, h, x->ne[2], x->ne[3], GGML_SCALE_MODE_NEAREST);
}

} // namespace sd::unet_ops
