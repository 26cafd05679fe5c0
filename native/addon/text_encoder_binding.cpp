#include "text_encoder_binding.h"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "nets/clip_text_encoder.h"
#include "sdcore/error.h"
#include "js_tensor.h"
#include "promise_worker.h"

namespace sdnode {

TextEncoderHandle::TextEncoderHandle(std::shared_ptr<sd::Model> model_)
    : model(std::move(model_)), encoder(std::make_unique<sd::ClipTextEncoder>(*model)) {}

TextEncoderHandle::~TextEncoderHandle() { encoder.reset(); }

namespace {

std::vector<int32_t> int_list(Napi::Env env, const Napi::Value & value, const std::string & name) {
    std::vector<int32_t> out;
    if (value.IsTypedArray()) {
        Napi::TypedArray typed = value.As<Napi::TypedArray>();
        if (typed.TypedArrayType() == napi_int32_array) {
            Napi::Int32Array a = value.As<Napi::Int32Array>();
            out.assign(a.Data(), a.Data() + a.ElementLength());
            return out;
        }
        throw Napi::TypeError::New(env, "Expected " + name + " to be an Int32Array or an array of integers");
    }
    if (!value.IsArray()) throw Napi::TypeError::New(env, "Expected " + name + " to be an Int32Array or an array of integers");
    Napi::Array array = value.As<Napi::Array>();
    out.reserve(array.Length());
    for (uint32_t i = 0; i < array.Length(); ++i) {
        Napi::Value v = array.Get(i);
        if (!v.IsNumber()) throw Napi::TypeError::New(env, "Expected " + name + "[" + std::to_string(i) + "] to be an integer");
        const double d = v.As<Napi::Number>().DoubleValue();
        if (!std::isfinite(d) || d != std::floor(d) || d < -2147483648.0 || d > 2147483647.0) {
            throw Napi::RangeError::New(env, "Expected " + name + "[" + std::to_string(i) + "] to be an integer but received " +
                                                 std::to_string(d));
        }
        out.push_back(static_cast<int32_t>(d));
    }
    return out;
}

int int_argument(Napi::Env env, const Napi::Value & value, const char * name, int fallback) {
    if (value.IsUndefined()) return fallback;
    if (!value.IsNumber()) throw Napi::TypeError::New(env, std::string("Expected ") + name + " to be an integer");
    const double d = value.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 1e9) {
        throw Napi::RangeError::New(env, std::string("Expected ") + name + " to be an integer");
    }
    return static_cast<int>(d);
}

std::vector<sd::PromptChunk> chunk_list(Napi::Env env, const Napi::Value & value, const char * name) {
    if (!value.IsArray()) throw Napi::TypeError::New(env, std::string("Expected ") + name + " to be an array of prompt chunks");
    Napi::Array array = value.As<Napi::Array>();
    std::vector<sd::PromptChunk> chunks(array.Length());
    for (uint32_t i = 0; i < array.Length(); ++i) {
        const std::string at = std::string(name) + "[" + std::to_string(i) + "]";
        Napi::Value v = array.Get(i);
        if (!v.IsObject()) throw Napi::TypeError::New(env, "Expected " + at + " to be { ids, weights }");
        Napi::Object chunk = v.As<Napi::Object>();
        chunks[i].ids.clear();
        for (int32_t id : int_list(env, chunk.Get("ids"), at + ".ids")) chunks[i].ids.push_back(id);
        Napi::Value weights = chunk.Get("weights");
        if (!weights.IsArray()) throw Napi::TypeError::New(env, "Expected " + at + ".weights to be an array of numbers");
        Napi::Array w = weights.As<Napi::Array>();
        for (uint32_t j = 0; j < w.Length(); ++j) {
            Napi::Value x = w.Get(j);
            if (!x.IsNumber()) throw Napi::TypeError::New(env, "Expected " + at + ".weights to be an array of numbers");
            const double d = x.As<Napi::Number>().DoubleValue();
            if (!std::isfinite(d)) throw Napi::RangeError::New(env, "Expected " + at + ".weights to be finite numbers");
            chunks[i].weights.push_back(d);
        }
    }
    return chunks;
}

// sd::RangeError from the core's checks → a JS RangeError, thrown synchronously.
template <typename Fn>
void check(Napi::Env env, Fn && fn) {
    try {
        fn();
    } catch (const sd::RangeError & e) {
        Napi::Error error = Napi::RangeError::New(env, e.what());
        error.Set("code", e.code());
        throw error;
    }
}

} // namespace

Napi::Value encode_text(const Napi::CallbackInfo & info, const std::shared_ptr<TextEncoderHandle> & handle) {
    Napi::Env env = info.Env();
    std::vector<int32_t> ids = int_list(env, info[0], "ids");
    const int batch = int_argument(env, info[1], "batch", 1);
    const int clip_skip = int_argument(env, info[2], "clipSkip", 1);
    check(env, [&] { handle->encoder->validate(ids, batch, clip_skip); });
    return PromiseWorker<sd::HostTensor>::Start(
        env, [handle, ids = std::move(ids), batch, clip_skip] { return handle->encoder->encode(ids, batch, clip_skip); },
        [](Napi::Env env, sd::HostTensor && result) -> Napi::Value { return make_js_tensor(env, std::move(result)); });
}

Napi::Value encode_prompt(const Napi::CallbackInfo & info, const std::shared_ptr<TextEncoderHandle> & handle) {
    Napi::Env env = info.Env();
    std::vector<sd::PromptChunk> cond = chunk_list(env, info[0], "cond");
    std::vector<sd::PromptChunk> uncond = chunk_list(env, info[1], "uncond");
    Napi::Object options = info[2].IsObject() ? info[2].As<Napi::Object>() : Napi::Object::New(env);
    const int clip_skip = int_argument(env, options.Get("clipSkip"), "clipSkip", 1);
    const int pad_id = int_argument(env, options.Get("padId"), "padId", sd::ClipTokenizer::kEosId);
    Napi::Value weighting_value = options.Get("weighting");
    if (!weighting_value.IsUndefined() && !weighting_value.IsBoolean()) {
        throw Napi::TypeError::New(env, "Expected weighting to be a boolean");
    }
    const bool weighting = weighting_value.IsUndefined() ? true : weighting_value.As<Napi::Boolean>().Value();
    const sd::TextEncoderConfig & config = handle->encoder->config();
    check(env, [&] {
        if (cond.empty()) throw sd::RangeError("Expected cond to have at least one chunk");
        for (const auto * list : {&cond, &uncond}) {
            for (const sd::PromptChunk & chunk : *list) {
                if (static_cast<int>(chunk.ids.size()) != config.max_positions || chunk.weights.size() != chunk.ids.size()) {
                    throw sd::RangeError("Expected every prompt chunk to have " + std::to_string(config.max_positions) +
                                         " ids and as many weights");
                }
                std::vector<int32_t> ids(chunk.ids.begin(), chunk.ids.end());
                handle->encoder->validate(ids, 1, clip_skip);
            }
        }
        if (pad_id < 0 || pad_id >= config.vocab_size) throw sd::RangeError("Expected padId to be a token id");
    });
    return PromiseWorker<sd::PromptEmbeddings>::Start(
        env,
        [handle, cond = std::move(cond), uncond = std::move(uncond), clip_skip, weighting, pad_id] {
            return sd::encode_prompt_chunks(*handle->encoder, cond, uncond, clip_skip, weighting, pad_id);
        },
        [](Napi::Env env, sd::PromptEmbeddings && result) -> Napi::Value {
            Napi::Object out = Napi::Object::New(env);
            out.Set("cond", make_js_tensor(env, std::move(result.cond)));
            out.Set("uncond", make_js_tensor(env, std::move(result.uncond)));
            return out;
        });
}

} // namespace sdnode
