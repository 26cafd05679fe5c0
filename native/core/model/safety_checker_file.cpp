#include "model/safety_checker_file.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "io/json.h"
#include "io/model_file_reader.h"
#include "io/string_util.h"
#include "sdcore/error.h"

namespace sd {

namespace {

namespace fs = std::filesystem;

constexpr int64_t kMaxWidth = 8192;
constexpr int64_t kMaxLayers = 256;
constexpr int64_t kMaxImageSize = 1024;
constexpr int64_t kMaxGrid = 64;  // patches per side: 4097 tokens, 7× ViT-L/14-336's, bounds attention's memory
constexpr int64_t kMaxConcepts = 4096;
constexpr int64_t kClipHeadWidth = 64;  // every released CLIP ViT; used only when no config names the heads
constexpr int64_t kImageChannels = 3;

// transformers 4 nested the tower in CLIPVisionModel ("vision_model.vision_model.…"), transformers
// 5 flattened it ("vision_model.…"); what follows is the same in both.
constexpr const char * kNestedPrefix = "vision_model.vision_model.";
constexpr const char * kFlatPrefix = "vision_model.";

[[noreturn]] void not_checker(const std::string & path, const std::string & why) {
    throw Error("ERR_SAFETY_CHECKER_FORMAT",
                "Not a safety checker: " + path + ": " + why +
                    ". Expected diffusers' StableDiffusionSafetyChecker (a safety_checker folder with config.json and "
                    "model.safetensors or pytorch_model.bin, or that weight file)",
                path);
}

bool is_float(ggml_type type) { return type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16; }

// The sizes a CLIPConfig's vision part gives; -1 where it says nothing (transformers' defaults
// are not assumed: the weights give every size but the heads).
struct VisionConfig {
    int64_t hidden = -1, intermediate = -1, layers = -1, heads = -1, image_size = -1, patch_size = -1, projection_dim = -1;
    double layer_norm_eps = 1e-5;
    std::string activation = "quick_gelu";
};

VisionConfig read_config(const std::string & path) {
    const json::Value root = json::parse_object_file(path, [&](const std::string & why) { not_checker(path, why); });
    // Configs written before transformers 4.20 keep the vision part under "vision_config_dict".
    const json::Value * vision = root.find("vision_config");
    if (vision == nullptr || !vision->is_object()) vision = root.find("vision_config_dict");
    if (vision == nullptr || !vision->is_object()) not_checker(path, "the config has no vision_config (a CLIPConfig's)");
    auto integer = [&](const json::Value * object, const char * key, int64_t & out) {
        const json::Value * v = object->find(key);
        if (v == nullptr || v->is_null()) return;
        if (!v->is_integer() || v->as_int64() < 1 || v->as_int64() > kMaxWidth) {
            not_checker(path, std::string(key) + " is not an integer between 1 and " + std::to_string(kMaxWidth));
        }
        out = v->as_int64();
    };
    VisionConfig c;
    integer(vision, "hidden_size", c.hidden);
    integer(vision, "intermediate_size", c.intermediate);
    integer(vision, "num_hidden_layers", c.layers);
    integer(vision, "num_attention_heads", c.heads);
    integer(vision, "image_size", c.image_size);
    integer(vision, "patch_size", c.patch_size);
    integer(&root, "projection_dim", c.projection_dim);
    if (const json::Value * eps = vision->find("layer_norm_eps"); eps != nullptr && !eps->is_null()) {
        if (!eps->is_number() || !(eps->as_double() > 0) || eps->as_double() > 1) not_checker(path, "layer_norm_eps is not a small positive number");
        c.layer_norm_eps = eps->as_double();
    }
    if (const json::Value * act = vision->find("hidden_act"); act != nullptr && !act->is_null()) {
        if (!act->is_string() || (act->as_string() != "quick_gelu" && act->as_string() != "gelu")) {
            not_checker(path, "hidden_act is not 'quick_gelu' or 'gelu'");
        }
        c.activation = act->as_string();
    }
    return c;
}

struct Shapes {
    std::map<std::string, const TensorRecord *> by_name;
    const std::string & path;

    const TensorRecord & get(const std::string & name) const {
        auto it = by_name.find(name);
        if (it == by_name.end()) not_checker(path, "no tensor " + name);
        return *it->second;
    }
    void expect(const std::string & name, const std::vector<int64_t> & shape) const {
        const TensorRecord & t = get(name);
        if (t.shape != shape) not_checker(path, name + " has the shape " + shape_text(t.shape) + ", not " + shape_text(shape) + " as the other weights give it");
    }
    // A 1-D or 2-D tensor's leading size, checked against a bound.
    int64_t size(const std::string & name, size_t rank, int64_t max) const {
        const TensorRecord & t = get(name);
        if (t.shape.size() != rank || t.shape[0] < 1 || t.shape[0] > max) not_checker(path, name + " has an unexpected shape");
        return t.shape[0];
    }
};

// Agrees with the config where the config says something.
void agree(int64_t from_weights, int64_t from_config, const char * what, const std::string & config_path) {
    if (from_config != -1 && from_config != from_weights) {
        not_checker(config_path, std::string("its ") + what + " (" + std::to_string(from_config) + ") disagrees with the weights (" +
                                     std::to_string(from_weights) + ")");
    }
}

std::vector<float> host_floats(const TensorRecord & t) {
    std::vector<float> out(static_cast<size_t>(t.element_count()));
    read_tensor_f32(t, out.data());
    return out;
}

} // namespace

SafetyCheckerFile open_safety_checker(const std::string & path) {
    SafetyCheckerFile file;
    std::error_code ec;
    fs::path weights(path), config;
    if (fs::is_directory(path, ec)) {
        weights.clear();
        for (const char * name : {"model.safetensors", "pytorch_model.bin"}) {
            if (fs::is_regular_file(fs::path(path) / name, ec)) {
                weights = fs::path(path) / name;
                break;
            }
        }
        if (weights.empty()) not_checker(path, "the folder has neither model.safetensors nor pytorch_model.bin");
        config = fs::path(path) / "config.json";
        if (!fs::is_regular_file(config, ec)) not_checker(path, "the folder has no config.json");
    } else if (fs::is_regular_file(fs::path(path).parent_path() / "config.json", ec)) {
        config = fs::path(path).parent_path() / "config.json";
    }
    VisionConfig c;
    if (!config.empty()) {
        c = read_config(config.string());
        file.files.push_back(config.string());
    }
    const std::string weights_path = weights.string();
    TensorIndex index;
    try {
        index = read_model_file(weights_path);
    } catch (const Error & e) {
        if (e.code() != "ERR_MODEL_FORMAT") throw;
        throw Error("ERR_SAFETY_CHECKER_FORMAT", std::string("Not a safety checker file: ") + e.what(), weights_path);
    }
    file.files.push_back(weights_path);

    Shapes s{{}, weights_path};
    for (const TensorRecord & t : index.tensors) {
        std::string name = t.name;
        if (starts_with(name, kNestedPrefix)) name = name.substr(std::string(kNestedPrefix).size());
        else if (starts_with(name, kFlatPrefix)) name = name.substr(std::string(kFlatPrefix).size());
        else if (name != "visual_projection.weight" && name != "concept_embeds" && name != "special_care_embeds" &&
                 name != "concept_embeds_weights" && name != "special_care_embeds_weights") {
            not_checker(weights_path, "unexpected tensor " + t.name);
        }
        if (name == "embeddings.position_ids") continue;  // a buffer older transformers saved: 0, 1, 2, …
        if (!is_float(t.type)) not_checker(weights_path, t.name + " is not a float tensor");
        if (!s.by_name.emplace(name, &t).second) not_checker(weights_path, "two tensors named " + name);
    }

    // Sizes from the weights, then every tensor checked against them.
    const int64_t hidden = s.size("embeddings.class_embedding", 1, kMaxWidth);
    const TensorRecord & patch = s.get("embeddings.patch_embedding.weight");
    if (patch.shape.size() != 4 || patch.shape[0] != hidden || patch.shape[1] != kImageChannels || patch.shape[2] != patch.shape[3] ||
        patch.shape[2] < 1 || patch.shape[2] > kMaxImageSize) {
        not_checker(weights_path, "embeddings.patch_embedding.weight is not a square RGB patch kernel to " + std::to_string(hidden) + " channels");
    }
    const int64_t p = patch.shape[2];
    const int64_t positions = s.size("embeddings.position_embedding.weight", 2, kMaxImageSize * kMaxImageSize + 1);
    const auto grid = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(positions - 1))));
    if (positions < 2 || grid * grid != positions - 1 || grid * p > kMaxImageSize) {
        not_checker(weights_path, "embeddings.position_embedding.weight does not hold a class position and a square grid of patches");
    }
    if (grid > kMaxGrid) not_checker(weights_path, "more than " + std::to_string(kMaxGrid) + "×" + std::to_string(kMaxGrid) + " patches");
    s.expect("embeddings.position_embedding.weight", {positions, hidden});
    for (const char * norm : {"pre_layrnorm", "post_layernorm"}) {
        s.expect(std::string(norm) + ".weight", {hidden});
        s.expect(std::string(norm) + ".bias", {hidden});
    }
    int64_t layers = 0;
    while (s.by_name.count("encoder.layers." + std::to_string(layers) + ".layer_norm1.weight") != 0) ++layers;
    if (layers < 1 || layers > kMaxLayers) not_checker(weights_path, "no encoder layers (encoder.layers.0.…)");
    const int64_t intermediate = s.size("encoder.layers.0.mlp.fc1.bias", 1, 4 * kMaxWidth);
    for (int64_t l = 0; l < layers; ++l) {
        const std::string layer = "encoder.layers." + std::to_string(l);
        for (const char * proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
            s.expect(layer + ".self_attn." + proj + ".weight", {hidden, hidden});
            s.expect(layer + ".self_attn." + proj + ".bias", {hidden});
        }
        for (const char * norm : {".layer_norm1", ".layer_norm2"}) {
            s.expect(layer + norm + ".weight", {hidden});
            s.expect(layer + norm + ".bias", {hidden});
        }
        s.expect(layer + ".mlp.fc1.weight", {intermediate, hidden});
        s.expect(layer + ".mlp.fc1.bias", {intermediate});
        s.expect(layer + ".mlp.fc2.weight", {hidden, intermediate});
        s.expect(layer + ".mlp.fc2.bias", {hidden});
    }
    const int64_t projection = s.size("visual_projection.weight", 2, kMaxWidth);
    s.expect("visual_projection.weight", {projection, hidden});
    const int64_t concepts = s.size("concept_embeds", 2, kMaxConcepts);
    const int64_t special = s.size("special_care_embeds", 2, kMaxConcepts);
    s.expect("concept_embeds", {concepts, projection});
    s.expect("special_care_embeds", {special, projection});
    s.expect("concept_embeds_weights", {concepts});
    s.expect("special_care_embeds_weights", {special});
    // Every tensor is one of those above (a layer past the last counted one would be left over).
    const size_t expected = 7 + static_cast<size_t>(layers) * 16 + 5;
    if (s.by_name.size() != expected) not_checker(weights_path, "it has tensors beyond encoder layer " + std::to_string(layers - 1));

    const std::string config_path = config.empty() ? weights_path : config.string();
    agree(hidden, c.hidden, "hidden_size", config_path);
    agree(intermediate, c.intermediate, "intermediate_size", config_path);
    agree(layers, c.layers, "num_hidden_layers", config_path);
    agree(p, c.patch_size, "patch_size", config_path);
    agree(grid * p, c.image_size, "image_size", config_path);
    agree(projection, c.projection_dim, "projection_dim", config_path);
    const int64_t heads = c.heads != -1 ? c.heads : std::max<int64_t>(1, hidden / kClipHeadWidth);
    if (hidden % heads != 0) not_checker(config_path, "hidden_size " + std::to_string(hidden) + " is not a multiple of the heads (" + std::to_string(heads) + ")");

    file.image_size = grid * p;
    file.patch_size = p;
    file.hidden = hidden;
    file.intermediate = intermediate;
    file.layers = layers;
    file.heads = heads;
    file.projection_dim = projection;
    file.layer_norm_eps = static_cast<float>(c.layer_norm_eps);
    file.quick_gelu = c.activation == "quick_gelu";
    file.concept_embeds = host_floats(s.get("concept_embeds"));
    file.special_embeds = host_floats(s.get("special_care_embeds"));
    file.concept_thresholds = host_floats(s.get("concept_embeds_weights"));
    file.special_thresholds = host_floats(s.get("special_care_embeds_weights"));
    for (const auto * values : {&file.concept_embeds, &file.special_embeds, &file.concept_thresholds, &file.special_thresholds}) {
        for (float v : *values) {
            if (!std::isfinite(v)) not_checker(weights_path, "its concept embeddings or thresholds are not finite");
        }
    }
    for (const auto & [name, record] : s.by_name) {
        if (name == "concept_embeds" || name == "special_care_embeds" || name == "concept_embeds_weights" ||
            name == "special_care_embeds_weights") {
            continue;
        }
        TensorRecord r = *record;
        r.name = name;
        file.tensors.push_back(std::move(r));
    }
    return file;
}

} // namespace sd
