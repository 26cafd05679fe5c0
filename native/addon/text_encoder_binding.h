#pragma once
// The text encoder and prompt encoding on a NativeModel (sd_model_binding.cpp delegates here):
//   encodeText(ids: Int32Array | number[], batch = 1, clipSkip = 1, loras?) → Promise<Tensor [batch, n, hidden]>
//   encodePrompt(cond: PromptChunk[], uncond: PromptChunk[], { clipSkip, weighting, padId, loras })
//     → Promise<{ cond: Tensor [1, 77·k, hidden], uncond: same shape }>
// Chunks come from the JS tokenizer (Tokenizer.tokenizePrompt); weighting, concatenation and
// cond/uncond padding happen in the core (sdcore/networks.h). Arguments are checked here, on
// the JS thread (TypeError / RangeError), the work runs on a worker thread.
#include <memory>

#include <napi.h>

#include "sdcore.h"

namespace sdnode {

// One text encoder per model, made on first use. Workers hold a reference, so dispose() while
// one runs frees it (and the model, which it keeps alive) when the work is done.
struct TextEncoderHandle {
    explicit TextEncoderHandle(std::shared_ptr<sd::Model> model);
    ~TextEncoderHandle();
    std::shared_ptr<sd::Model> model;            // declared first: destroyed after the encoder
    std::unique_ptr<sd::ClipTextEncoder> encoder;
};

Napi::Value encode_text(const Napi::CallbackInfo & info, const std::shared_ptr<TextEncoderHandle> & handle);
Napi::Value encode_prompt(const Napi::CallbackInfo & info, const std::shared_ptr<TextEncoderHandle> & handle);

} // namespace sdnode
