#include "sdcore/safety_checker.h"

#include <cmath>
#include <mutex>

#include "io/string_util.h"
#include "model/safety_checker_file.h"
#include "model/standalone_network.h"
#include "nets/clip_transformer.h"
#include "nets/nn_layers.h"
#include "runtime/log.h"
#include "sdcore/error.h"

namespace sd {

namespace {

// CLIP's vision tower and the projection: pixels ne = (S, S, 3, B) → image embeds (projection, B).
ggml_tensor * image_embeds(ggml_context * ctx, const NetworkWeights & w, const SafetyCheckerFile & f, ggml_tensor * pixels,
                           nn::ConvPath path) {
    const int64_t batch = pixels->ne[3];
    ggml_tensor * patches = nn::conv2d(ctx, w, "embeddings.patch_embedding", pixels, static_cast<int>(f.patch_size), 0, path);
    patches = nn::to_sequence(ctx, patches);  // (hidden, grid², B), row by row as PyTorch's flatten(2)
    ggml_tensor * cls = nn::as_f32(ctx, w.get("embeddings.class_embedding"));
    cls = ggml_repeat_4d(ctx, ggml_reshape_3d(ctx, cls, f.hidden, 1, 1), f.hidden, 1, batch, 1);
    ggml_tensor * x = ggml_concat(ctx, cls, patches, 1);  // the class token first
    x = ggml_add(ctx, x, nn::as_f32(ctx, w.get("embeddings.position_embedding.weight")));
    x = nn::clip_layer_norm(ctx, w, "pre_layrnorm", x, f.layer_norm_eps);
    const nn::ClipTransformerShape shape{f.hidden, f.heads, f.layer_norm_eps, f.quick_gelu, /*causal*/ false};
    for (int64_t l = 0; l < f.layers; ++l) x = nn::clip_encoder_layer(ctx, w, "encoder.layers." + std::to_string(l), x, shape);
    ggml_tensor * pooled = ggml_cont(ctx, ggml_view_2d(ctx, x, f.hidden, batch, x->nb[2], 0));  // each image's class token
    pooled = nn::clip_layer_norm(ctx, w, "post_layernorm", pooled, f.layer_norm_eps);
    return ggml_mul_mat(ctx, w.get("visual_projection.weight"), pooled);
}

// Rows of `rows` ([count, dim]) divided by their L2 norms (at least 1e-12, as F.normalize).
std::vector<double> normalized_rows(const float * rows, int64_t count, int64_t dim) {
    std::vector<double> out(static_cast<size_t>(count * dim));
    for (int64_t r = 0; r < count; ++r) {
        double sum = 0;
        for (int64_t i = 0; i < dim; ++i) sum += static_cast<double>(rows[r * dim + i]) * rows[r * dim + i];
        const double norm = std::max(std::sqrt(sum), 1e-12);
        for (int64_t i = 0; i < dim; ++i) out[static_cast<size_t>(r * dim + i)] = rows[r * dim + i] / norm;
    }
    return out;
}

// Cosine of each image embedding with each concept: [batch, concepts].
std::vector<float> cosines(const std::vector<double> & images, int64_t batch, const std::vector<float> & concepts, int64_t dim) {
    const int64_t count = static_cast<int64_t>(concepts.size()) / dim;
    const std::vector<double> c = normalized_rows(concepts.data(), count, dim);
    std::vector<float> out(static_cast<size_t>(batch * count));
    for (int64_t b = 0; b < batch; ++b) {
        for (int64_t k = 0; k < count; ++k) {
            double dot = 0;
            for (int64_t i = 0; i < dim; ++i) dot += images[static_cast<size_t>(b * dim + i)] * c[static_cast<size_t>(k * dim + i)];
            out[static_cast<size_t>(b * count + k)] = static_cast<float>(dot);
        }
    }
    return out;
}

// numpy's round(x, 3) on a float32: x·1000, to the nearest integer (ties to even), ÷1000, each in float32.
float round3(float x) { return static_cast<float>(std::nearbyint(x * 1000.0f)) / 1000.0f; }

} // namespace

struct SafetyChecker::Impl {
    SafetyCheckerInfo info;
    SafetyCheckerFile file;
    std::unique_ptr<StandaloneNetwork> net;
};

SafetyChecker::SafetyChecker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SafetyChecker::~SafetyChecker() = default;

std::shared_ptr<SafetyChecker> SafetyChecker::load(const std::string & path, const SafetyCheckerLoadOptions & options) {
    auto impl = std::make_unique<Impl>();
    impl->file = open_safety_checker(path);
    impl->net = std::make_unique<StandaloneNetwork>(impl->file.tensors, options.backend, options.weight_type, options.threads);
    const SafetyCheckerFile & f = impl->file;
    SafetyCheckerInfo & info = impl->info;
    info.path = path;
    info.files = f.files;
    info.image_size = static_cast<int>(f.image_size);
    info.patch_size = static_cast<int>(f.patch_size);
    info.hidden = static_cast<int>(f.hidden);
    info.layers = static_cast<int>(f.layers);
    info.heads = static_cast<int>(f.heads);
    info.projection_dim = static_cast<int>(f.projection_dim);
    info.concepts = static_cast<int>(f.concept_thresholds.size());
    info.special_concepts = static_cast<int>(f.special_thresholds.size());
    info.device = impl->net->device;
    log(LogLevel::info, "loaded safety checker %s (CLIP ViT, %d layers of %d, %d px, %.2f MB on %s)", path.c_str(), info.layers,
        info.hidden, info.image_size, impl->net->weights->full_bytes() / 1e6, info.device.c_str());
    return std::shared_ptr<SafetyChecker>(new SafetyChecker(std::move(impl)));
}

const SafetyCheckerInfo & SafetyChecker::info() const { return impl_->info; }

void SafetyChecker::check_input(const std::vector<int64_t> & shape) const {
    const int64_t s = impl_->info.image_size;
    if (shape.size() != 4 || shape[1] != 3 || shape[2] != s || shape[3] != s) {
        throw RangeError("Expected pixel values of shape [batch, 3, " + std::to_string(s) + ", " + std::to_string(s) + "], got " +
                         shape_text(shape));
    }
    if (shape[0] < 1 || shape[0] > kMaxBatch) {
        throw RangeError("Expected a batch of 1 to " + std::to_string(kMaxBatch) + ", got " + std::to_string(shape[0]));
    }
}

SafetyCheck SafetyChecker::check(const TensorView & pixels) {
    check_input(pixels.shape);
    if (pixels.data == nullptr) throw RangeError("Expected tensor data");
    Impl & impl = *impl_;
    const SafetyCheckerFile & f = impl.file;
    const nn::ConvPath path = nn::conv_path_for(impl.net->backend.get(), nn::ConvPath::im2col);
    HostTensor embeds;
    {
        std::lock_guard<std::mutex> lock(impl.net->mutex);
        embeds = impl.net->runner->run(
            [&](ggml_context * ctx, GraphInputs & inputs) {
                const auto & s = pixels.shape;
                ggml_tensor * x = inputs.add_f32(ctx, "pixels", pixels.data, {s[3], s[2], s[1], s[0]});
                return image_embeds(ctx, *impl.net->weights, f, x, path);
            },
            2);
    }
    SafetyCheck out;
    const int64_t batch = pixels.shape[0];
    const int64_t dim = f.projection_dim;
    out.batch = batch;
    out.image_embeds = std::move(embeds.data);
    const std::vector<double> images = normalized_rows(out.image_embeds.data(), batch, dim);
    out.concept_cosine = cosines(images, batch, f.concept_embeds, dim);
    out.special_cosine = cosines(images, batch, f.special_embeds, dim);
    const size_t concepts = f.concept_thresholds.size(), special = f.special_thresholds.size();
    out.concept_scores.resize(out.concept_cosine.size());
    out.special_scores.resize(out.special_cosine.size());
    out.nsfw.assign(static_cast<size_t>(batch), false);
    for (size_t b = 0; b < static_cast<size_t>(batch); ++b) {
        // diffusers' loop: once a special concept fires, every later score gets 0.01 more.
        float adjustment = 0.0f;
        for (size_t k = 0; k < special; ++k) {
            const size_t i = b * special + k;
            out.special_scores[i] = round3(out.special_cosine[i] - f.special_thresholds[k] + adjustment);
            if (out.special_scores[i] > 0) adjustment = 0.01f;
        }
        for (size_t k = 0; k < concepts; ++k) {
            const size_t i = b * concepts + k;
            out.concept_scores[i] = round3(out.concept_cosine[i] - f.concept_thresholds[k] + adjustment);
            if (out.concept_scores[i] > 0) out.nsfw[b] = true;
        }
    }
    return out;
}

} // namespace sd
