#pragma once
// A safety checker's files (sdcore/safety_checker.h lists the layouts) read into the vision
// tower's tensors under transformers' CLIPVisionModel names without the prefix ("embeddings.…",
// "pre_layrnorm.…", "encoder.layers.N.…", "post_layernorm.…", "visual_projection.weight"), the
// concept embeddings and thresholds as host floats, and the sizes, all checked before anything
// is loaded.
#include <string>
#include <vector>

#include "io/tensor_index.h"

namespace sd {

struct SafetyCheckerFile {
    std::vector<std::string> files;     // read: config.json (when there was one), the weights
    std::vector<TensorRecord> tensors;  // the tower and the projection
    int64_t image_size = 0, patch_size = 0, hidden = 0, intermediate = 0, layers = 0, heads = 0, projection_dim = 0;
    float layer_norm_eps = 1e-5f;
    bool quick_gelu = true;
    // Row-major [concepts, projection_dim] and [special, projection_dim]; thresholds per row.
    std::vector<float> concept_embeds, special_embeds, concept_thresholds, special_thresholds;
};

// `path`: the safety_checker folder or a weight file. Throws sd::Error ERR_SAFETY_CHECKER_FORMAT
// naming the file when it is not a safety checker (or its config disagrees with its weights), and
// the readers' ERR_FILE_NOT_FOUND, ERR_FILE_READ, ERR_UNSAFE_PICKLE.
SafetyCheckerFile open_safety_checker(const std::string & path);

} // namespace sd
