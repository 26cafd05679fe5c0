#include "sdcore/networks.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <string>

#include "model/loaded_model.h"
#include "model/lora_state.h"
#include "nets/clip_transformer.h"
#include "runtime/graph_runner.h"
#include "sdcore/error.h"

namespace sd {

ClipTextEncoder::ClipTextEncoder(const Model & model)
    : model_(model), config_(model.config().text),
      runner_(std::make_unique<GraphRunner>(model.backend(Network::text_encoder), model.threads())) {
    runner_->bind(&model.residency(), Network::text_encoder);
}

ClipTextEncoder::~ClipTextEncoder() = default;

void ClipTextEncoder::validate(const std::vector<int32_t> & ids, int batch, int clip_skip, const HostTensor * embeddings) const {
    int64_t extra = 0;
    if (embeddings != nullptr && !embeddings->shape.empty()) {
        const std::vector<int64_t> & shape = embeddings->shape;
        if (shape.size() != 2 || shape[1] != config_.hidden || shape[0] < 1 || shape[0] > 65536) {
            std::string given;
            for (int64_t d : shape) given += (given.empty() ? "" : ", ") + std::to_string(d);
            throw RangeError("Expected embeddings of shape [k, " + std::to_string(config_.hidden) +
                             "] (the text encoder's width) but received [" + given + "]");
        }
        if (!std::all_of(embeddings->data.begin(), embeddings->data.end(), [](float v) { return std::isfinite(v); })) {
            throw RangeError("Expected the embeddings to be finite numbers");
        }
        extra = shape[0];
    }
    const int64_t id_limit = config_.vocab_size + extra;
    if (batch < 1) throw RangeError("Expected batch to be at least 1 but received " + std::to_string(batch));
    if (ids.empty() || ids.size() % static_cast<size_t>(batch) != 0) {
        throw RangeError("Expected ids to hold batch (" + std::to_string(batch) + ") rows of equal length but received " +
                         std::to_string(ids.size()) + " ids");
    }
    const size_t n = ids.size() / static_cast<size_t>(batch);
    if (n > static_cast<size_t>(config_.max_positions)) {
        throw RangeError("Expected at most " + std::to_string(config_.max_positions) +
                         " ids per sequence (the text encoder's positions) but received " + std::to_string(n));
    }
    for (size_t i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] >= id_limit) {
            throw RangeError("Expected ids[" + std::to_string(i) + "] to be an integer between 0 and " +
                             std::to_string(id_limit - 1) + " but received " + std::to_string(ids[i]));
        }
    }
    if (clip_skip < 1 || clip_skip > config_.layers_used) {
        throw RangeError("Expected integer clipSkip between 1 and " + std::to_string(config_.layers_used) +
                         " (the layers this text encoder runs) but received " + std::to_string(clip_skip));
    }
}

HostTensor ClipTextEncoder::encode(const std::vector<int32_t> & ids, int batch, int clip_skip, const LoraSet & loras,
                                   const HostTensor * embeddings) {
    validate(ids, batch, clip_skip, embeddings);
    // Textual inversion: token rows for the vocabulary's ids, times 0 where an embedding's id
    // stands, plus rows of [0; embeddings] (row 0 for the vocabulary's ids).
    const bool extra = embeddings != nullptr && !embeddings->shape.empty();
    std::vector<int32_t> token_ids = ids, extra_ids;
    std::vector<float> keep, extra_rows;
    if (extra) {
        extra_ids.assign(ids.size(), 0);
        keep.assign(ids.size(), 1.0f);
        for (size_t i = 0; i < ids.size(); ++i) {
            if (ids[i] < config_.vocab_size) continue;
            extra_ids[i] = ids[i] - config_.vocab_size + 1;
            token_ids[i] = 0;
            keep[i] = 0.0f;
        }
        extra_rows.assign(static_cast<size_t>(config_.hidden), 0.0f);
        extra_rows.insert(extra_rows.end(), embeddings->data.begin(), embeddings->data.end());
    }
    const int64_t n = static_cast<int64_t>(ids.size()) / batch;
    const int layers = config_.layers_used - (clip_skip - 1);
    std::vector<int32_t> positions(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) positions[static_cast<size_t>(i)] = static_cast<int32_t>(i);

    const NetworkWeights & w = model_.text_encoder();
    const TextEncoderConfig & c = config_;
    auto build = [&](ggml_context * ctx, GraphInputs & inputs) {
        const nn::ClipTransformerShape shape{c.hidden, c.heads, static_cast<float>(c.layer_norm_eps),
                                             c.activation == TextActivation::quick_gelu, /*causal*/ true};
        ggml_tensor * ids_t = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n * batch);
        ggml_set_name(ids_t, "ids");
        inputs.add(ids_t, token_ids.data(), token_ids.size() * sizeof(int32_t));
        ggml_tensor * pos_t = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n);
        ggml_set_name(pos_t, "positions");
        inputs.add(pos_t, positions.data(), positions.size() * sizeof(int32_t));

        ggml_tensor * x = ggml_get_rows(ctx, w.get("embeddings.token_embedding.weight"), ids_t);  // [hidden, n·B]
        if (extra) {
            ggml_tensor * rows = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, c.hidden, static_cast<int64_t>(extra_rows.size()) / c.hidden);
            ggml_set_name(rows, "ti_rows");
            inputs.add(rows, extra_rows.data(), extra_rows.size() * sizeof(float));
            ggml_tensor * extra_t = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n * batch);
            ggml_set_name(extra_t, "ti_ids");
            inputs.add(extra_t, extra_ids.data(), extra_ids.size() * sizeof(int32_t));
            ggml_tensor * keep_t = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 1, n * batch);
            ggml_set_name(keep_t, "ti_keep");
            inputs.add(keep_t, keep.data(), keep.size() * sizeof(float));
            x = ggml_add(ctx, ggml_mul(ctx, x, keep_t), ggml_get_rows(ctx, rows, extra_t));
        }
        x = ggml_reshape_3d(ctx, x, c.hidden, n, batch);
        x = ggml_add(ctx, x, ggml_get_rows(ctx, w.get("embeddings.position_embedding.weight"), pos_t));
        for (int l = 0; l < layers; ++l) x = nn::clip_encoder_layer(ctx, w, "encoder.layers." + std::to_string(l), x, shape);
        return nn::clip_layer_norm(ctx, w, "final_layer_norm", x, shape.layer_norm_eps);
    };
    std::lock_guard<std::mutex> lock(mutex_);
    std::shared_lock<std::shared_mutex> lora_lock = lora_state(model_).use(Network::text_encoder, loras);
    return runner_->run(build, 3);
}

void apply_token_weights(float * z, int64_t tokens, int64_t hidden, const std::vector<double> & weights) {
    const int64_t count = tokens * hidden;
    auto mean = [&] {
        double sum = 0;
        for (int64_t i = 0; i < count; ++i) sum += z[i];
        return static_cast<float>(sum / static_cast<double>(count));
    };
    const float before = mean();
    for (int64_t t = 0; t < tokens; ++t) {
        const float weight = static_cast<float>(weights[static_cast<size_t>(t)]);
        for (int64_t h = 0; h < hidden; ++h) z[t * hidden + h] *= weight;
    }
    const float after = mean();
    if (after == 0.0f || !std::isfinite(after)) return;  // A1111 would divide by zero here
    const float scale = before / after;
    for (int64_t i = 0; i < count; ++i) z[i] *= scale;
}

void validate_prompt_chunks(const ClipTextEncoder & encoder, const std::vector<PromptChunk> & cond,
                            const std::vector<PromptChunk> & uncond, int clip_skip, int pad_id,
                            const HostTensor * embeddings) {
    const TextEncoderConfig & c = encoder.config();
    const int64_t length = c.max_positions;
    if (cond.empty()) throw RangeError("Expected the prompt to have at least one chunk");
    if (pad_id < 0 || pad_id >= c.vocab_size) {
        throw RangeError("Expected padId between 0 and " + std::to_string(c.vocab_size - 1) + " but received " +
                         std::to_string(pad_id));
    }
    size_t i = 0;
    for (const auto * list : {&cond, &uncond}) {
        for (const PromptChunk & chunk : *list) {
            if (static_cast<int64_t>(chunk.ids.size()) != length || chunk.weights.size() != chunk.ids.size()) {
                throw RangeError("Expected every prompt chunk to have " + std::to_string(length) +
                                 " ids and as many weights but chunk " + std::to_string(i) + " has " +
                                 std::to_string(chunk.ids.size()) + " ids and " + std::to_string(chunk.weights.size()) +
                                 " weights");
            }
            if (!std::all_of(chunk.weights.begin(), chunk.weights.end(), [](double w) { return std::isfinite(w); })) {
                throw RangeError("Expected the weights of prompt chunk " + std::to_string(i) + " to be finite numbers");
            }
            encoder.validate(std::vector<int32_t>(chunk.ids.begin(), chunk.ids.end()), 1, clip_skip, embeddings);
            ++i;
        }
    }
}

PromptEmbeddings encode_prompt_chunks(ClipTextEncoder & encoder, const std::vector<PromptChunk> & cond,
                                      const std::vector<PromptChunk> & uncond, int clip_skip, bool weighting,
                                      int pad_id, const LoraSet & loras, const HostTensor * embeddings) {
    validate_prompt_chunks(encoder, cond, uncond, clip_skip, pad_id, embeddings);
    const TextEncoderConfig & c = encoder.config();
    const int64_t length = c.max_positions;
    PromptChunk empty;
    empty.ids.assign(static_cast<size_t>(length), pad_id);
    empty.ids[0] = ClipTokenizer::kBosId;
    empty.ids[1] = ClipTokenizer::kEosId;
    empty.weights.assign(static_cast<size_t>(length), 1.0);

    const size_t chunks = std::max(cond.size(), uncond.size());
    std::vector<const PromptChunk *> all;  // cond's chunks, then uncond's, each padded with empty ones
    for (const auto * list : {&cond, &uncond}) {
        for (size_t i = 0; i < chunks; ++i) all.push_back(i < list->size() ? &(*list)[i] : &empty);
    }
    std::vector<int32_t> ids;
    ids.reserve(all.size() * static_cast<size_t>(length));
    for (const PromptChunk * chunk : all) ids.insert(ids.end(), chunk->ids.begin(), chunk->ids.end());
    // [chunks·2, 77, hidden], at most kGroup chunks per graph so that a very long prompt needs no
    // more memory than a few chunks do.
    constexpr size_t kGroup = 8;
    const int64_t hidden = c.hidden;
    const int64_t chunk_floats = length * hidden;
    HostTensor z({static_cast<int64_t>(all.size()), length, hidden});
    for (size_t first = 0; first < all.size(); first += kGroup) {
        const size_t count = std::min(kGroup, all.size() - first);
        std::vector<int32_t> group(ids.begin() + static_cast<std::ptrdiff_t>(first * length),
                                   ids.begin() + static_cast<std::ptrdiff_t>((first + count) * length));
        HostTensor part = encoder.encode(group, static_cast<int>(count), clip_skip, loras, embeddings);
        std::memcpy(z.data.data() + static_cast<int64_t>(first) * chunk_floats, part.data.data(), part.data.size() * sizeof(float));
    }
    if (weighting) {
        for (size_t i = 0; i < all.size(); ++i) {
            const std::vector<double> & weights = all[i]->weights;
            if (std::all_of(weights.begin(), weights.end(), [](double x) { return x == 1.0; })) continue;
            apply_token_weights(z.data.data() + static_cast<int64_t>(i) * chunk_floats, length, hidden, weights);
        }
    }
    // [chunks, 77, hidden] rows are already the concatenation along the sequence.
    PromptEmbeddings out{HostTensor({1, static_cast<int64_t>(chunks) * length, hidden}),
                         HostTensor({1, static_cast<int64_t>(chunks) * length, hidden})};
    const size_t half = chunks * static_cast<size_t>(chunk_floats);
    std::memcpy(out.cond.data.data(), z.data.data(), half * sizeof(float));
    std::memcpy(out.uncond.data.data(), z.data.data() + half, half * sizeof(float));
    return out;
}

PromptEmbeddings encode_prompt(ClipTextEncoder & encoder, const ClipTokenizer & tokenizer, std::string_view prompt,
                               std::string_view negative_prompt, const PromptOptions & options, int clip_skip) {
    std::vector<PromptChunk> cond = tokenize_prompt(tokenizer, prompt, options);
    std::vector<PromptChunk> uncond = tokenize_prompt(tokenizer, negative_prompt, options);
    return encode_prompt_chunks(encoder, cond, uncond, clip_skip, options.weighting, options.pad_id);
}

} // namespace sd
