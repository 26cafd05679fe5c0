#pragma once
// SD's AutoencoderKL (diffusers' layout and maths): the encoder maps an image [B, 3, H, W] in
// [-1, 1] to the latent distribution's moments [B, 2·latent, H/f, W/f] (mean, then log-variance,
// after quant_conv; f = 2^(levels-1) = 8 for SD), the decoder maps latents [B, latent, h, w]
// (unscaled: divide sampled latents by the scaling factor first) to an image [B, 3, h·f, w·f].
//
// Structure (norms: GroupNorm(norm_groups, eps 1e-6); ResNet blocks without time embedding):
//   encoder  conv_in → per level: resnets, then (but the last) pad right/bottom by 1 + 3×3 conv
//            stride 2 → mid (resnet, single-head attention over H·W, resnet) → norm, SiLU,
//            conv_out (2·latent) → quant_conv (1×1)
//   decoder  post_quant_conv (1×1) → conv_in → mid → per level (channels reversed): resnets
//            (one more than the encoder's), then (but the last) nearest ×2 + 3×3 conv → norm,
//            SiLU, conv_out
// Convolutions take ggml's direct path (bounded memory at full resolution; see nn_layers.h).
#include <memory>
#include <mutex>

#include "runtime/graph_runner.h"
#include "model/loaded_model.h"
#include "sdcore/tensor.h"

namespace sd {

class Vae {
public:
    // Keeps the model alive. Calls are serialised: one graph runs at a time.
    explicit Vae(std::shared_ptr<const Model> model);

    // The spatial factor between image and latents (8 for SD).
    int downscale_factor() const;

    enum class Direction { decode, encode };

    // Throw sd::RangeError for shapes the networks cannot take (checked before any graph is built).
    void check_decode_input(const std::vector<int64_t> & shape) const;
    void check_encode_input(const std::vector<int64_t> & shape) const;
    void check_input(Direction direction, const std::vector<int64_t> & shape) const;

    // latents [B, latent, h, w] → image [B, out_channels, h·f, w·f] (not clamped).
    HostTensor decode(const TensorView & latents);
    // image [B, in_channels, H, W] (H, W multiples of f) → moments [B, 2·latent, H/f, W/f].
    HostTensor encode(const TensorView & image);
    // decode or encode: one path, checks included.
    HostTensor run(Direction direction, const TensorView & input);

private:
    std::shared_ptr<const Model> model_;
    std::mutex mutex_;
    GraphRunner runner_;
};

} // namespace sd
