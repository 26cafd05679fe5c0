#pragma once
// The denoising UNet (diffusers' UNet2DConditionModel as SD 1.x and 2.x configure it) on ggml.
//
//   sample   [B, in_channels, h, w]  latents (in_channels 4; 9 inpainting: latents, mask, masked
//                                    image latents; 5 depth: latents, depth)
//   timestep one value for the batch or one per batch item, 0 ≤ t ≤ 1000 (fractions allowed)
//   context  [B, n, context_dim]     the text encoder's hidden states (n = 77, or 77·k)
//   → [B, out_channels, h, w]        noise (epsilon) or v prediction, as the model was trained
//
// Any h, w ≥ 1 works: like diffusers, each upsampling resizes to the size of the skip connection
// it is joined with, so sizes that are not multiples of 8 give what diffusers gives.
// Inputs are checked before a graph is built (sd::RangeError); a UNet serialises its own calls.
#include <memory>
#include <mutex>
#include <vector>

#include "runtime/graph_runner.h"
#include "model/loaded_model.h"
#include "sdcore/tensor.h"

namespace sd {

struct UNetOptions {
    // ggml_flash_attn_ext (K/V cast to F16) instead of mul_mat + softmax. Measured on the CPU
    // backend (SD 1.5 random weights, 512², 2 threads, README "Low memory"): 65–74 s vs 11–15 s
    // per step, 0.2 GB less memory (the plain path computes scores a group of heads at a time),
    // and 7e-2 max relative difference from the exact path (1e-3 on the tiny test models).
    bool flash_attention = false;
};

class UNet {
public:
    // Keeps the model (its weights) alive.
    explicit UNet(std::shared_ptr<const Model> model, UNetOptions options = {});

    // Throws sd::RangeError naming the first problem.
    void validate(const TensorView & sample, const std::vector<float> & timesteps, const TensorView & context) const;

    HostTensor predict(const TensorView & sample, const std::vector<float> & timesteps, const TensorView & context);

    // Bytes of the compute buffer kept between calls.
    size_t compute_buffer_bytes() const;

    // Limits of validate(): batch, latent side, context tokens.
    static constexpr int64_t max_batch = 64;
    static constexpr int64_t max_side = 1024;
    static constexpr int64_t max_tokens = 77 * 64;

private:
    std::shared_ptr<const Model> model_;
    const UNetConfig & config_;
    const NetworkWeights & weights_;
    UNetOptions options_;
    mutable std::mutex mutex_;
    GraphRunner runner_;
};

// diffusers' sinusoidal timestep embedding (flip_sin_to_cos=True, downscale_freq_shift=0,
// max_period 10000), computed in float32 as PyTorch does: for each timestep, `dim` values
// [cos(t·f_0) … cos(t·f_{half-1}), sin(t·f_0) … sin(t·f_{half-1})], f_i = exp(-ln(10000)·i/half).
std::vector<float> timestep_embedding(const std::vector<float> & timesteps, int dim);

} // namespace sd
