#pragma once
// diffusers' StableDiffusionSafetyChecker, on its own: loaded from its own files with its own
// weights and device, beside (not inside) a model.
//
// Files (model/safety_checker_file.cpp): diffusers' `safety_checker/` folder (config.json, a
// CLIPConfig, and model.safetensors or pytorch_model.bin), or one of those weight files alone
// (its sizes then come from a config.json beside it, else from the weights with 64-wide heads as
// in every CLIP ViT). Tensor names as transformers 4 saved them ("vision_model.vision_model.…")
// or as transformers 5 does ("vision_model.…").
//
// Maths:
//   tower     CLIP's vision transformer: a bias-less patch convolution (stride = patch), the class
//             embedding before the patches, position embeddings, pre_layrnorm, the encoder
//             layers (nets/clip_transformer.h, no mask), post_layernorm on the class token
//   embeds    visual_projection (no bias) of the tower's output
//   cosine    of embeds with each row of concept_embeds (17 in SD's checker) and of
//             special_care_embeds (3), both sides L2-normalised
//   scores    diffusers' loop, in float32 as numpy runs it: special score k = round(cos − threshold
//             + adjustment, 3), where adjustment turns from 0 to 0.01 once a special score is > 0
//             (for the special concepts after it and for every concept score); concept scores the
//             same with the final adjustment. Thresholds: concept_embeds_weights and
//             special_care_embeds_weights. An image is flagged when any concept score is > 0.
// Input: pixel values as CLIPImageProcessor gives them ([B, 3, S, S], S the config's image_size,
// normalised with CLIP's mean and std); the resizing is the caller's.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sdcore/model_config.h"
#include "sdcore/tensor.h"

namespace sd {

struct SafetyCheckerLoadOptions {
    std::string backend = "auto";           // as ModelLoadOptions::backend, or a device name
    std::optional<WeightType> weight_type;  // nullopt: keep the files' own types
    int threads = 0;                        // CPU threads, 0 = default
};

struct SafetyCheckerInfo {
    std::string path;                 // as given
    std::vector<std::string> files;   // read (config.json first when there was one)
    int image_size = 224;             // the side of the tower's input
    int patch_size = 14;
    int hidden = 1024;
    int layers = 24;
    int heads = 16;
    int projection_dim = 768;
    int concepts = 17;
    int special_concepts = 3;
    std::string device;               // ggml's device name ("CPU", "Vulkan0")
};

// One call's result, row-major per image.
struct SafetyCheck {
    int64_t batch = 0;
    std::vector<float> image_embeds;     // [batch, projection_dim]: visual_projection's output
    std::vector<float> concept_cosine;   // [batch, concepts]: before thresholds
    std::vector<float> special_cosine;   // [batch, special_concepts]
    std::vector<float> concept_scores;   // [batch, concepts]: diffusers' rounded scores
    std::vector<float> special_scores;   // [batch, special_concepts]
    std::vector<bool> nsfw;              // [batch]: any concept score > 0
};

class SafetyChecker {
public:
    static constexpr int64_t kMaxBatch = 64;

    // Throws sd::Error ERR_FILE_NOT_FOUND / ERR_FILE_READ, ERR_SAFETY_CHECKER_FORMAT (with the path)
    // for anything that is not a safety checker, ERR_UNSAFE_PICKLE, ERR_BACKEND_UNAVAILABLE,
    // ERR_OUT_OF_MEMORY.
    static std::shared_ptr<SafetyChecker> load(const std::string & path, const SafetyCheckerLoadOptions & options);
    ~SafetyChecker();
    SafetyChecker(const SafetyChecker &) = delete;
    SafetyChecker & operator=(const SafetyChecker &) = delete;

    const SafetyCheckerInfo & info() const;

    // sd::RangeError unless the shape is [B, 3, image_size, image_size] with 1 ≤ B ≤ kMaxBatch.
    void check_input(const std::vector<int64_t> & shape) const;

    // Pixel values (see above) → scores and flags. Checks included; calls are serialised.
    SafetyCheck check(const TensorView & pixels);

    struct Impl;

private:
    explicit SafetyChecker(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace sd
