#pragma once
// TAESD, madebyollin's tiny autoencoder for SD 1.x/2.x latents (diffusers' AutoencoderTiny), on
// its own: loaded from its own files, with its own weights and device, next to (not inside) a
// model. A fraction of the VAE's cost, for previews at full resolution and, optionally, as the
// whole VAE.
//
// Files (model/tiny_vae_file.cpp): diffusers' folder (diffusion_pytorch_model.safetensors,
// "encoder.layers.N.…" / "decoder.layers.N.…") or that file alone, or madebyollin's original
// halves taesd_encoder / taesd_decoder (safetensors or .pth; each an nn.Sequential, "N.…"): given
// one half, the other is read too when it lies beside it under the same name with
// encoder ↔ decoder swapped. Either half may be missing; the other direction then throws.
//
// Maths (diffusers' convention: images in [-1, 1], latents as the sampler holds them, i.e. SD's
// VAE latents times its scaling factor; TAESD's own scaling factor is 1):
//   block(x)  = relu(conv₃(relu(conv₃(relu(conv₃(x))))) + skip(x)), skip a 1×1 conv or identity
//   encoder   x → (x + 1) / 2 → conv₃ → blocks, each 3×3 stride-2 convolution (no bias) halving
//             the size → conv₃ to the latent channels
//   decoder   z → 3·tanh(z / 3) → conv₃, relu → blocks, each bias-less conv₃ preceded by nearest
//             ×2 → the last conv₃ to RGB → x·2 − 1
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sdcore/model_config.h"
#include "sdcore/tensor.h"

namespace sd {

struct TinyVaeLoadOptions {
    std::string backend = "auto";           // as ModelLoadOptions::backend, or a device name
    std::optional<WeightType> weight_type;  // nullopt: keep the files' own types
    int threads = 0;                        // CPU threads, 0 = default
};

struct TinyVaeInfo {
    std::string path;               // as given
    std::string layout;             // "diffusers" or "taesd" (madebyollin's halves)
    std::vector<std::string> files; // the files read
    bool has_encoder = false;
    bool has_decoder = false;
    int latent_channels = 4;
    int image_channels = 3;
    int downscale_factor = 8;       // pixels per latent along each side
    std::string device;             // ggml's device name ("CPU", "Vulkan0")
};

class TinyVae {
public:
    // Throws sd::Error ERR_FILE_NOT_FOUND / ERR_FILE_READ, ERR_MODEL_FORMAT (with the path) for
    // anything that is not a TAESD, ERR_BACKEND_UNAVAILABLE, ERR_OUT_OF_MEMORY.
    static std::shared_ptr<TinyVae> load(const std::string & path, const TinyVaeLoadOptions & options);
    ~TinyVae();
    TinyVae(const TinyVae &) = delete;
    TinyVae & operator=(const TinyVae &) = delete;

    const TinyVaeInfo & info() const;

    enum class Direction { decode, encode };

    // sd::RangeError for a shape the network cannot take (decode: [B, latent, h, w], B ≤ 64,
    // 1 ≤ h, w ≤ 1024; encode: [B, 3, H, W], H and W multiples of the factor up to 1024 latents);
    // sd::Error ERR_TINY_VAE_NO_ENCODER / ERR_TINY_VAE_NO_DECODER when that half was not loaded.
    void check_input(Direction direction, const std::vector<int64_t> & shape) const;

    // decode: latents [B, latent, h, w] → image [B, 3, f·h, f·w] in about [-1, 1] (not clamped);
    // encode: image [B, 3, H, W] in [-1, 1] → latents [B, latent, H/f, W/f]. Checks included;
    // calls are serialised.
    HostTensor run(Direction direction, const TensorView & input);

    struct Impl;

private:
    explicit TinyVae(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace sd
