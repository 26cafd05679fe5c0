// Tokenizer: sd::ClipTokenizer for JS. Everything here is synchronous: encoding a prompt takes
// microseconds, and building the tokenizer (about 50 ms) happens once per process in lib/.
#include "tokenizer_binding.h"

#include <memory>
#include <string>
#include <vector>

#include "arguments.h"
#include "sdcore.h"

namespace sdnode {

namespace {

std::string string_arg(const Napi::CallbackInfo & info, size_t index, const char * name) {
    return args::string(args::at(info, index), name);
}

// Ids as integers; the tokenizer refuses those outside its vocabulary (sd::RangeError).
std::vector<int> ids_arg(const Napi::CallbackInfo & info, size_t index) {
    std::vector<int32_t> ids = args::int32_list(args::at(info, index), "ids");
    return std::vector<int>(ids.begin(), ids.end());
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
        args::guarded(info.Env(), [&] {
            tokenizer_ = std::make_shared<const sd::ClipTokenizer>(text);
            return info.Env().Undefined();
        });
    }

private:
    // encode(text) → ids with bos and eos
    Napi::Value Encode(const Napi::CallbackInfo & info) {
        std::string text = string_arg(info, 0, "text");
        return args::guarded(info.Env(), [&] { return to_js(info.Env(), tokenizer_->encode(text)); });
    }

    // tokenize(text) → token strings, no bos/eos
    Napi::Value Tokenize(const Napi::CallbackInfo & info) {
        std::string text = string_arg(info, 0, "text");
        return args::guarded(info.Env(), [&] { return to_js(info.Env(), tokenizer_->tokenize(text)); });
    }

    // decode(ids, skipSpecialTokens) → text
    Napi::Value Decode(const Napi::CallbackInfo & info) {
        std::vector<int> ids = ids_arg(info, 0);
        bool skip = info.Length() > 1 && info[1].ToBoolean().Value();
        return args::guarded(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), tokenizer_->decode(ids, skip)); });
    }

    // convertIdsToTokens(ids) → vocabulary strings
    Napi::Value ConvertIdsToTokens(const Napi::CallbackInfo & info) {
        std::vector<int> ids = ids_arg(info, 0);
        return args::guarded(info.Env(), [&] {
            std::vector<std::string> tokens;
            tokens.reserve(ids.size());
            for (int id : ids) tokens.push_back(tokenizer_->token(id));
            return to_js(info.Env(), tokens);
        });
    }

    // tokenizePrompt(prompt, { mode: 'chunks' | 'truncate', weighting, padId, embeddings?: [{ tokens, firstId, count }] })
    //   → { chunks: [{ ids: number[77], weights: number[77] }] }
    Napi::Value TokenizePrompt(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        std::string prompt = string_arg(info, 0, "prompt");
        sd::PromptOptions options;
        Napi::Object object = args::options(args::at(info, 1));
        std::optional<std::string> mode = args::optional(object, "mode", "", args::string);
        if (mode) options.mode = args::guarded(env, [&] { return sd::prompt_mode_from_name(*mode); });
        options.weighting = args::optional(object, "weighting", "", args::boolean).value_or(options.weighting);
        options.pad_id = args::optional(object, "padId", "", args::int32).value_or(options.pad_id);
        Napi::Value embeddings = object.Get("embeddings");
        if (!embeddings.IsUndefined()) {
            Napi::Array list = args::array(embeddings, "options.embeddings", "an array of embedding triggers");
            for (uint32_t i = 0; i < list.Length(); ++i) {
                const std::string at = "options.embeddings[" + std::to_string(i) + "]";
                Napi::Object entry = args::object(list.Get(i), at);
                sd::EmbeddingTrigger trigger;
                for (int32_t id : args::int32_list(entry.Get("tokens"), at + ".tokens")) trigger.tokens.push_back(id);
                trigger.first_id = args::int32(entry.Get("firstId"), at + ".firstId");
                trigger.count = args::int32(entry.Get("count"), at + ".count");
                options.embeddings.push_back(std::move(trigger));
            }
        }
        return args::guarded(env, [&] {
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
    return args::guarded(env, [&] {
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
