// Tokenizer: sd::ClipTokenizer for JS. Everything here is synchronous: encoding a prompt takes
// microseconds, and building the tokenizer (about 50 ms) happens once per process in lib/.
#include "tokenizer_binding.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "text/clip_tokenizer.h"
#include "js_errors.h"
#include "text/prompt_parser.h"

namespace sdnode {

namespace {

// Runs `body`, turning engine exceptions into the JS errors js_errors.h describes.
template <typename Body>
Napi::Value guarded(Napi::Env env, Body body) {
    try {
        return body();
    } catch (const Napi::Error &) {
        throw;
    } catch (...) {
        throw to_js_error(env, std::current_exception());
    }
}

std::string string_arg(const Napi::CallbackInfo & info, size_t index, const char * name) {
    if (info.Length() <= index || !info[index].IsString()) {
        throw Napi::TypeError::New(info.Env(), std::string("Expected ") + name + " to be a string");
    }
    return info[index].As<Napi::String>().Utf8Value();
}

std::vector<int> ids_arg(const Napi::CallbackInfo & info, size_t index) {
    Napi::Env env = info.Env();
    if (info.Length() <= index || !info[index].IsArray()) throw Napi::TypeError::New(env, "Expected ids to be an array of integers");
    Napi::Array array = info[index].As<Napi::Array>();
    std::vector<int> ids(array.Length());
    for (uint32_t i = 0; i < array.Length(); ++i) {
        Napi::Value value = array.Get(i);
        double id = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : NAN;
        if (!value.IsNumber() || std::floor(id) != id || id < 0 || id >= sd::ClipTokenizer::kVocabSize) {
            std::string shown = value.IsNumber() ? value.ToString().Utf8Value() : "a non-number";
            throw Napi::RangeError::New(env, "Expected integer ids between 0 and " +
                                                 std::to_string(sd::ClipTokenizer::kVocabSize - 1) +
                                                 " but received " + shown);
        }
        ids[i] = static_cast<int>(id);
    }
    return ids;
}

Napi::Array to_js(Napi::Env env, const std::vector<int> & values) {
    Napi::Array array = Napi::Array::New(env, values.size());
    for (size_t i = 0; i < values.size(); ++i) array.Set(static_cast<uint32_t>(i), values[i]);
    return array;
}

Napi::Array to_js(Napi::Env env, const std::vector<double> & values) {
    Napi::Array array = Napi::Array::New(env, values.size());
    for (size_t i = 0; i < values.size(); ++i) array.Set(static_cast<uint32_t>(i), values[i]);
    return array;
}

Napi::Array to_js(Napi::Env env, const std::vector<std::string> & values) {
    Napi::Array array = Napi::Array::New(env, values.size());
    for (size_t i = 0; i < values.size(); ++i) array.Set(static_cast<uint32_t>(i), values[i]);
    return array;
}

class TokenizerWrap : public Napi::ObjectWrap<TokenizerWrap> {
public:
    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "Tokenizer",
                           {
                               InstanceMethod<&TokenizerWrap::Encode>("encode"),
                               InstanceMethod<&TokenizerWrap::Tokenize>("tokenize"),
                               InstanceMethod<&TokenizerWrap::Decode>("decode"),
                               InstanceMethod<&TokenizerWrap::ConvertIdsToTokens>("convertIdsToTokens"),
                               InstanceMethod<&TokenizerWrap::TokenizePrompt>("tokenizePrompt"),
                           });
    }

    // new Tokenizer(mergesText)
    explicit TokenizerWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<TokenizerWrap>(info) {
        std::string text = string_arg(info, 0, "the merges text");
        guarded(info.Env(), [&] {
            tokenizer_ = std::make_shared<const sd::ClipTokenizer>(text);
            return info.Env().Undefined();
        });
    }

private:
    // encode(text) → ids with bos and eos
    Napi::Value Encode(const Napi::CallbackInfo & info) {
        std::string text = string_arg(info, 0, "text");
        return guarded(info.Env(), [&] { return to_js(info.Env(), tokenizer_->encode(text)); });
    }

    // tokenize(text) → token strings, no bos/eos
    Napi::Value Tokenize(const Napi::CallbackInfo & info) {
        std::string text = string_arg(info, 0, "text");
        return guarded(info.Env(), [&] { return to_js(info.Env(), tokenizer_->tokenize(text)); });
    }

    // decode(ids, skipSpecialTokens) → text
    Napi::Value Decode(const Napi::CallbackInfo & info) {
        std::vector<int> ids = ids_arg(info, 0);
        bool skip = info.Length() > 1 && info[1].ToBoolean().Value();
        return guarded(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), tokenizer_->decode(ids, skip)); });
    }

    // convertIdsToTokens(ids) → vocabulary strings
    Napi::Value ConvertIdsToTokens(const Napi::CallbackInfo & info) {
        std::vector<int> ids = ids_arg(info, 0);
        return guarded(info.Env(), [&] {
            std::vector<std::string> tokens;
            tokens.reserve(ids.size());
            for (int id : ids) tokens.push_back(tokenizer_->token(id));
            return to_js(info.Env(), tokens);
        });
    }

    // tokenizePrompt(prompt, { mode: 'chunks' | 'truncate', weighting, padId })
    //   → { chunks: [{ ids: number[77], weights: number[77] }] }
    Napi::Value TokenizePrompt(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        std::string prompt = string_arg(info, 0, "prompt");
        sd::PromptOptions options;
        if (info.Length() > 1 && !info[1].IsUndefined()) {
            if (!info[1].IsObject()) throw Napi::TypeError::New(env, "Expected options to be an object");
            Napi::Object object = info[1].As<Napi::Object>();
            Napi::Value mode = object.Get("mode");
            if (!mode.IsUndefined()) {
                std::string name = mode.IsString() ? mode.As<Napi::String>().Utf8Value() : "";
                if (name == "chunks") options.mode = sd::PromptMode::chunks;
                else if (name == "truncate") options.mode = sd::PromptMode::truncate;
                else throw Napi::RangeError::New(env, "Expected mode to be one of chunks, truncate");
            }
            Napi::Value weighting = object.Get("weighting");
            if (!weighting.IsUndefined()) {
                if (!weighting.IsBoolean()) throw Napi::TypeError::New(env, "Expected weighting to be a boolean");
                options.weighting = weighting.As<Napi::Boolean>().Value();
            }
            Napi::Value pad = object.Get("padId");
            if (!pad.IsUndefined()) {
                double id = pad.IsNumber() ? pad.As<Napi::Number>().DoubleValue() : NAN;
                if (!pad.IsNumber() || std::floor(id) != id || id < 0 || id >= sd::ClipTokenizer::kVocabSize) {
                    throw Napi::RangeError::New(env, "Expected integer padId between 0 and " +
                                                         std::to_string(sd::ClipTokenizer::kVocabSize - 1));
                }
                options.pad_id = static_cast<int>(id);
            }
        }
        return guarded(env, [&] {
            std::vector<sd::PromptChunk> chunks = sd::tokenize_prompt(*tokenizer_, prompt, options);
            Napi::Array list = Napi::Array::New(env, chunks.size());
            for (size_t i = 0; i < chunks.size(); ++i) {
                Napi::Object chunk = Napi::Object::New(env);
                chunk.Set("ids", to_js(env, chunks[i].ids));
                chunk.Set("weights", to_js(env, chunks[i].weights));
                list.Set(static_cast<uint32_t>(i), chunk);
            }
            Napi::Object result = Napi::Object::New(env);
            result.Set("chunks", list);
            return result;
        });
    }

    std::shared_ptr<const sd::ClipTokenizer> tokenizer_;
};

// parsePromptAttention(prompt) → [[text, weight], …]
Napi::Value ParsePromptAttention(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string prompt = string_arg(info, 0, "prompt");
    return guarded(env, [&] {
        std::vector<sd::WeightedText> parsed = sd::parse_prompt_attention(prompt);
        Napi::Array list = Napi::Array::New(env, parsed.size());
        for (size_t i = 0; i < parsed.size(); ++i) {
            Napi::Array pair = Napi::Array::New(env, 2);
            pair.Set(0u, parsed[i].text);
            pair.Set(1u, parsed[i].weight);
            list.Set(static_cast<uint32_t>(i), pair);
        }
        return list;
    });
}

} // namespace

void register_tokenizer_binding(Napi::Env env, Napi::Object exports) {
    exports.Set("Tokenizer", TokenizerWrap::Define(env));
    exports.Set("parsePromptAttention", Napi::Function::New(env, ParsePromptAttention, "parsePromptAttention"));
}

} // namespace sdnode
