#pragma once
// The networks of a loaded model (sdcore/model.h): the CLIP text encoder with A1111's prompt
// encoding, the UNet and the VAE, each running its graphs on its network's device. Make them from
// a model handle; each keeps the graph memory it allocates between calls and serialises its own
// calls. Inputs are checked before any graph is built (sd::RangeError).
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "sdcore/lora.h"
#include "sdcore/model.h"
#include "sdcore/model_config.h"
#include "sdcore/tensor.h"
#include "sdcore/text.h"

namespace sd {

class GraphRunner;     // runtime/graph_runner.h
class NetworkWeights;  // model/network_weights.h

// ---- the text encoder (nets/clip_text_encoder.cpp) ----
// The CLIP text transformer of Stable Diffusion on ggml: CLIP ViT-L/14's (SD 1.x, quick_gelu) and
// OpenCLIP ViT-H/14's (SD 2.x, exact erf gelu), both under transformers' CLIPTextModel names
// (name_mapping.h turns OpenCLIP's into them). Pre-LN transformer layers with a causal mask, then
// the final layer norm:
//
//   x = token_embedding[ids] + position_embedding[0..n)
//   per layer: x += out_proj(attention(layer_norm1(x)));  x += fc2(act(fc1(layer_norm2(x))))
//   output = final_layer_norm(x after layer `layers_used - (clip_skip - 1)`)
//
// Which layer (as diffusers does with each layout): SD1 runs all 12; SD2's diffusers folders store
// the 23 layers SD uses and SD2's original files store all 24, of which the 24th is never run
// (TextEncoderConfig::layers_used). clip_skip counts back from there as A1111 does: 1 = that
// layer (diffusers' default, clip_skip=None), 2 = the one before (diffusers' clip_skip=1), …
// The final layer norm is applied to whichever layer's output is taken (A1111 and diffusers both do).
//
// Prompt encoding (A1111's rule) is encode_prompt_chunks below.

class ClipTextEncoder {
public:
    // `model` must outlive the encoder. The graph allocator is kept between calls.
    explicit ClipTextEncoder(const Model & model);
    ~ClipTextEncoder();

    const TextEncoderConfig & config() const { return config_; }

    // ids: `batch` rows of n = ids.size() / batch token ids, row-major, 1 ≤ n ≤ max_positions.
    // Returns [batch, n, hidden]. Throws sd::RangeError for ids outside the vocabulary, a bad
    // length or batch, or clip_skip outside 1..layers_used; nothing is built then.
    // Thread-safe: calls on one encoder run one at a time. `loras`: the LoRAs to run with
    // (sdcore/lora.h); the weights are brought to that set first (none: the base weights).
    // `embeddings` [k, hidden] (textual inversion): ids vocab_size … vocab_size+k-1 take these
    // rows instead of the token embedding's (EmbeddingTrigger in sdcore/text.h makes such ids).
    HostTensor encode(const std::vector<int32_t> & ids, int batch = 1, int clip_skip = 1, const LoraSet & loras = {},
                      const HostTensor * embeddings = nullptr);

    // The checks encode() makes, for callers that want to fail before queueing work.
    void validate(const std::vector<int32_t> & ids, int batch, int clip_skip, const HostTensor * embeddings = nullptr) const;

private:
    const Model & model_;
    TextEncoderConfig config_;
    std::mutex mutex_;
    std::unique_ptr<GraphRunner> runner_;
};

struct PromptEmbeddings {
    HostTensor cond;    // [1, 77 · chunks, hidden]
    HostTensor uncond;  // same shape as cond
};

// Encodes tokenized prompts (tokenize_prompt's 77-token chunks) as A1111 does:
// - every chunk goes through the encoder on its own (batched, up to 8 chunks per graph);
// - with `weighting`, each chunk's hidden states are multiplied by its per-token weights and then
//   scaled so that the chunk's mean equals its mean before weighting (A1111's
//   process_tokens; with all weights 1 this changes nothing);
// - the chunks are concatenated along the sequence;
// - the shorter of cond / uncond is padded with the encoding of the empty prompt (A1111's
//   cond_stage_model_empty_prompt) until both have as many chunks.
// `pad_id` builds that empty chunk (bos, eos, then pad_id; SD1 49407, SD2 0). Chunks must have 77
// ids (sd::RangeError otherwise).
// `embeddings`: the textual-inversion rows of ClipTextEncoder::encode.
PromptEmbeddings encode_prompt_chunks(ClipTextEncoder & encoder, const std::vector<PromptChunk> & cond,
                                      const std::vector<PromptChunk> & uncond, int clip_skip, bool weighting,
                                      int pad_id, const LoraSet & loras = {}, const HostTensor * embeddings = nullptr);

// The checks encode_prompt_chunks makes, for callers that want to fail before queueing work:
// at least one cond chunk, pad_id in the vocabulary, every chunk of 77 ids in the vocabulary with
// as many finite weights, clip_skip the encoder can take (sd::RangeError).
void validate_prompt_chunks(const ClipTextEncoder & encoder, const std::vector<PromptChunk> & cond,
                            const std::vector<PromptChunk> & uncond, int clip_skip, int pad_id,
                            const HostTensor * embeddings = nullptr);

// tokenize_prompt + encode_prompt_chunks for a prompt and a negative prompt.
PromptEmbeddings encode_prompt(ClipTextEncoder & encoder, const ClipTokenizer & tokenizer, std::string_view prompt,
                               std::string_view negative_prompt, const PromptOptions & options, int clip_skip);

// A1111's emphasis: z [tokens, hidden] row-major, times weights[token], then rescaled to the mean
// it had before. Exposed for tests.
void apply_token_weights(float * z, int64_t tokens, int64_t hidden, const std::vector<double> & weights);

// ---- the UNet (nets/unet.cpp) ----
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
    ~UNet();

    // Throws sd::RangeError naming the first problem.
    void validate(const TensorView & sample, const std::vector<float> & timesteps, const TensorView & context) const;

    // `loras`: the LoRAs to run with (sdcore/lora.h); the weights are brought to that set first.
    HostTensor predict(const TensorView & sample, const std::vector<float> & timesteps, const TensorView & context,
                       const LoraSet & loras = {});

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
    std::unique_ptr<GraphRunner> runner_;
};

// diffusers' sinusoidal timestep embedding (flip_sin_to_cos=True, downscale_freq_shift=0,
// max_period 10000), computed in float32 as PyTorch does: for each timestep, `dim` values
// [cos(t·f_0) … cos(t·f_{half-1}), sin(t·f_0) … sin(t·f_{half-1})], f_i = exp(-ln(10000)·i/half).
std::vector<float> timestep_embedding(const std::vector<float> & timesteps, int dim);

// ---- the VAE (nets/vae.cpp) ----
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

class Vae {
public:
    // Keeps the model alive. Calls are serialised: one graph runs at a time.
    explicit Vae(std::shared_ptr<const Model> model);
    ~Vae();

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
    std::unique_ptr<GraphRunner> runner_;
};

} // namespace sd
