#pragma once
// What a Stable Diffusion model is, from its files: family (SD 1.x / 2.x), variant (base,
// inpainting, depth), the shapes its networks are built with, and the conventions that are not
// in the weights: prediction type, default image size, pad token, which text-encoder layer SD
// uses. Detection (model/detection.cpp) fills these in; the rules are listed there. Also the
// vocabulary around a model: its networks, file containers, name layouts and weight types.
#include <optional>
#include <string>
#include <vector>

namespace sd {

// A model's three networks; arrays of per-network values are indexed by these.
enum class Network { text_encoder = 0, unet = 1, vae = 2 };
constexpr int kNetworkCount = 3;

// The container of a model file (io/model_file_reader.cpp picks the reader by its first bytes).
enum class FileFormat { safetensors, gguf, checkpoint };
const char * format_name(FileFormat format);

// How a model names its tensors: diffusers' folders, the original (LDM) single files, or our
// canonical names (model/name_mapping.h).
enum class ModelLayout { diffusers, ldm, canonical };
const char * layout_name(ModelLayout layout);

// The storage types a model can be converted to or loaded as (`weightType`). Which tensors take
// the type asked for is io/weight_types.h's rule.
enum class WeightType { f32, f16, bf16, q8_0, q5_0, q5_1, q4_0, q4_1 };
// Parses "f32", "f16", "bf16", "q8_0", "q5_0", "q5_1", "q4_0", "q4_1"; throws sd::RangeError.
WeightType parse_weight_type(const std::string & name);
// The same without throwing: nullopt for a name that is none of them.
std::optional<WeightType> find_weight_type(const std::string & name);
const char * weight_type_name(WeightType type);

enum class ModelFamily { sd1, sd2 };
enum class ModelVariant { base, inpaint, depth };
enum class PredictionType { epsilon, v_prediction };
enum class TextActivation { quick_gelu, gelu };

const char * family_name(ModelFamily family);
const char * variant_name(ModelVariant variant);
const char * prediction_type_name(PredictionType type);
const char * activation_name(TextActivation activation);
std::optional<PredictionType> parse_prediction_type(const std::string & text);  // "epsilon", "v_prediction" ("v")
// The same, throwing sd::RangeError for a name that is neither.
PredictionType prediction_type_from_name(const std::string & text);

struct UNetConfig {
    int in_channels = 4;                   // 4 base, 9 inpainting (+mask +masked image), 5 depth (+depth)
    int out_channels = 4;
    std::vector<int> block_channels;       // per level: SD 320, 640, 1280, 1280
    std::vector<bool> cross_attention;     // per level (down order): has transformer blocks
    std::vector<int> heads;                // per level attention heads; the mid block uses the last
    int layers_per_block = 2;              // resnets per down level (up levels have one more)
    int transformer_depth = 1;             // transformer blocks per attention
    int context_dim = 768;                 // cross-attention input: the text encoder's hidden size
    int time_embed_dim = 1280;             // 4 × block_channels[0]
    bool linear_projection = false;        // SD2: proj_in/proj_out are linear, SD1: 1x1 convolutions
    int norm_groups = 32;
};

struct VaeConfig {
    int in_channels = 3;
    int out_channels = 3;
    std::vector<int> block_channels;       // per level: SD 128, 256, 512, 512
    int layers_per_block = 2;              // encoder resnets per level (decoder: one more)
    int latent_channels = 4;
    int norm_groups = 32;
    double scaling_factor = 0.18215;
};

struct TextEncoderConfig {
    int vocab_size = 49408;
    int max_positions = 77;
    int hidden = 768;
    int intermediate = 3072;
    int heads = 12;
    int layers = 12;                       // stored in the file
    // Layers SD runs: SD2's original files store all 24 OpenCLIP layers and SD takes the
    // penultimate one's output (then the final layer norm); diffusers' SD2 folders store the 23
    // used ones. So: original SD2 files layers - 1, everything else layers. Clip skip counts
    // back from here.
    int layers_used = 12;
    TextActivation activation = TextActivation::quick_gelu;
    double layer_norm_eps = 1e-5;
    std::string pad_token = "<|endoftext|>";  // SD1; SD2 pads with "!" (id 0)
};

struct ModelConfig {
    ModelFamily family = ModelFamily::sd1;
    ModelVariant variant = ModelVariant::base;
    PredictionType prediction_type = PredictionType::epsilon;
    std::string prediction_source;         // where prediction_type came from, for sd.info and logs
    int image_size = 512;                  // default width and height
    UNetConfig unet;
    VaeConfig vae;
    TextEncoderConfig text;
};

struct DetectOptions {
    std::optional<PredictionType> prediction_type;  // always wins
};

} // namespace sd
