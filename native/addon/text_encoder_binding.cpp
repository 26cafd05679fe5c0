#include "text_encoder_binding.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "arguments.h"
#include "js_tensor.h"
#include "lora_binding.h"
#include "promise_worker.h"
#include "sdcore.h"

namespace sdnode {

TextEncoderHandle::TextEncoderHandle(std::shared_ptr<sd::Model> model_)
    : model(std::move(model_)), encoder(std::make_unique<sd::ClipTextEncoder>(*model)) {}

TextEncoderHandle::~TextEncoderHandle() { encoder.reset(); }

namespace {

int int_argument(const Napi::Value & value, const char * name, int fallback) {
    return value.IsUndefined() ? fallback : args::int32(value, name);
}

std::vector<sd::PromptChunk> chunk_list(const Napi::Value & value, const char * name) {
    Napi::Array array = args::array(value, name, "an array of prompt chunks");
    std::vector<sd::PromptChunk> chunks(array.Length());
    for (uint32_t i = 0; i < array.Length(); ++i) {
        const std::string at = std::string(name) + "[" + std::to_string(i) + "]";
        Napi::Object chunk = args::object(array.Get(i), at);
        for (int32_t id : args::int32_list(chunk.Get("ids"), at + ".ids")) chunks[i].ids.push_back(id);
        chunks[i].weights = args::numbers(chunk.Get("weights"), at + ".weights");
    }
    return chunks;
}

// Textual-inversion rows [k, hidden] as a tensor, or none (undefined).
std::shared_ptr<sd::HostTensor> embeddings_argument(const Napi::Value & value, const char * name) {
    if (value.IsUndefined()) return nullptr;
    JsTensorInput input(value, name);
    auto rows = std::make_shared<sd::HostTensor>(input.view().shape);
    std::copy(input.view().data, input.view().data + input.view().size(), rows->data.begin());
    return rows;
}

} // namespace

Napi::Value encode_text(const Napi::CallbackInfo & info, const std::shared_ptr<TextEncoderHandle> & handle) {
    Napi::Env env = info.Env();
    std::vector<int32_t> ids = args::int32_list(args::at(info, 0), "ids");
    const int batch = int_argument(args::at(info, 1), "batch", 1);
    const int clip_skip = int_argument(args::at(info, 2), "clipSkip", 1);
    sd::LoraSet loras = lora_set_argument(args::at(info, 3), "loras");
    std::shared_ptr<sd::HostTensor> embeddings = embeddings_argument(args::at(info, 4), "embeddings");
    args::guarded(env, [&] { handle->encoder->validate(ids, batch, clip_skip, embeddings.get()); });
    return PromiseWorker<sd::HostTensor>::Start(
        env,
        [handle, ids = std::move(ids), batch, clip_skip, loras = std::move(loras), embeddings] {
            return handle->encoder->encode(ids, batch, clip_skip, loras, embeddings.get());
        },
        [](Napi::Env env, sd::HostTensor && result) -> Napi::Value { return make_js_tensor(env, std::move(result)); });
}

Napi::Value encode_prompt(const Napi::CallbackInfo & info, const std::shared_ptr<TextEncoderHandle> & handle) {
    Napi::Env env = info.Env();
    std::vector<sd::PromptChunk> cond = chunk_list(args::at(info, 0), "cond");
    std::vector<sd::PromptChunk> uncond = chunk_list(args::at(info, 1), "uncond");
    Napi::Value given = args::at(info, 2);
    Napi::Object options = given.IsObject() ? given.As<Napi::Object>() : Napi::Object::New(env);
    const int clip_skip = int_argument(options.Get("clipSkip"), "clipSkip", 1);
    const int pad_id = int_argument(options.Get("padId"), "padId", sd::ClipTokenizer::kEosId);
    const bool weighting = args::optional(options, "weighting", "", args::boolean).value_or(true);
    sd::LoraSet loras = lora_set_argument(options.Get("loras"), "options.loras");
    std::shared_ptr<sd::HostTensor> embeddings = embeddings_argument(options.Get("embeddings"), "options.embeddings");
    args::guarded(env, [&] { sd::validate_prompt_chunks(*handle->encoder, cond, uncond, clip_skip, pad_id, embeddings.get()); });
    return PromiseWorker<sd::PromptEmbeddings>::Start(
        env,
        [handle, cond = std::move(cond), uncond = std::move(uncond), clip_skip, weighting, pad_id, loras = std::move(loras),
         embeddings] {
            return sd::encode_prompt_chunks(*handle->encoder, cond, uncond, clip_skip, weighting, pad_id, loras, embeddings.get());
        },
        [](Napi::Env env, sd::PromptEmbeddings && result) -> Napi::Value {
            Napi::Object out = Napi::Object::New(env);
            out.Set("cond", make_js_tensor(env, std::move(result.cond)));
            out.Set("uncond", make_js_tensor(env, std::move(result.uncond)));
            return out;
        });
}

} // namespace sdnode
