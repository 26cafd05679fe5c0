#pragma once
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
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "runtime/graph_runner.h"
#include "model/loaded_model.h"
#include "text/prompt_parser.h"
#include "sdcore/tensor.h"

namespace sd {

class ClipTextEncoder {
public:
    // `model` must outlive the encoder. The graph allocator is kept between calls.
    explicit ClipTextEncoder(const Model & model);

    const TextEncoderConfig & config() const { return config_; }

    // ids: `batch` rows of n = ids.size() / batch token ids, row-major, 1 ≤ n ≤ max_positions.
    // Returns [batch, n, hidden]. Throws sd::RangeError for ids outside the vocabulary, a bad
    // length or batch, or clip_skip outside 1..layers_used; nothing is built then.
    // Thread-safe: calls on one encoder run one at a time.
    HostTensor encode(const std::vector<int32_t> & ids, int batch = 1, int clip_skip = 1);

    // The checks encode() makes, for callers that want to fail before queueing work.
    void validate(const std::vector<int32_t> & ids, int batch, int clip_skip) const;

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
PromptEmbeddings encode_prompt_chunks(ClipTextEncoder & encoder, const std::vector<PromptChunk> & cond,
                                      const std::vector<PromptChunk> & uncond, int clip_skip, bool weighting,
                                      int pad_id);

// tokenize_prompt + encode_prompt_chunks for a prompt and a negative prompt.
PromptEmbeddings encode_prompt(ClipTextEncoder & encoder, const ClipTokenizer & tokenizer, std::string_view prompt,
                               std::string_view negative_prompt, const PromptOptions & options, int clip_skip);

// A1111's emphasis: z [tokens, hidden] row-major, times weights[token], then rescaled to the mean
// it had before. Exposed for tests.
void apply_token_weights(float * z, int64_t tokens, int64_t hidden, const std::vector<double> & weights);

} // namespace sd
