#pragma once
// What a Stable Diffusion model is, from its files: family (SD 1.x / 2.x), variant (base,
// inpainting, depth), the shapes its networks are built with, and the conventions that are not
// in the weights: prediction type, default image size, pad token, which text-encoder layer SD
// uses. Detection works on canonical names (name_mapping.h) plus what the source says (diffusers
// configs, file metadata); the rules are listed in detect_model_config's comment.
#include <optional>
#include <string>
#include <vector>

#include "model/name_mapping.h"

namespace sd {

enum class ModelFamily { sd1, sd2 };
enum class ModelVariant { base, inpaint, depth };
enum class PredictionType { epsilon, v_prediction };
enum class TextActivation { quick_gelu, gelu };

const char * family_name(ModelFamily family);
const char * variant_name(ModelVariant variant);
const char * prediction_type_name(PredictionType type);
const char * activation_name(TextActivation activation);
std::optional<PredictionType> parse_prediction_type(const std::string & text);  // "epsilon", "v_prediction" ("v")

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

// Detection rules, in order of authority:
//   family         sdnode.family metadata; diffusers text_encoder/config.json hidden_act (gelu:
//                  SD2's OpenCLIP, quick_gelu: SD1's CLIP); the LDM text encoder names (OpenCLIP
//                  → sd2); context dim 1024 → sd2, 768 → sd1; linear projections → sd2.
//   variant        UNet input channels: 4 base, 9 inpaint, 5 depth (others: ERR_MODEL_FORMAT).
//   shapes         from the tensors. Heads: diffusers unet/config.json (attention_head_dim is the
//                  head count in SD's configs) / text_encoder num_attention_heads; sdnode.* metadata;
//                  else SD's fixed choices: SD1 UNet 8 heads; SD2 UNet and both text encoders head
//                  dimension 64 (widths that are not a multiple of 64, i.e. test models, use 8).
//   prediction     options; diffusers scheduler/scheduler_config.json (prediction_type, default
//                  epsilon); sdnode.prediction_type or modelspec.prediction_type metadata; a "v_pred"
//                  tensor → v; else a heuristic for single files (as diffusers'): SD1 epsilon;
//                  SD2 inpainting and depth epsilon; SD2 base v_prediction, except a checkpoint with
//                  global_step 875000 (SD 2.0-base) → epsilon.
//   image size     diffusers: unet sample_size × 2^(VAE levels - 1); sdnode.image_size; else 768
//                  for SD2 v-prediction, 512 otherwise.
// Never throws for a missing tensor (fallbacks instead: check_model reports it), only for a
// model it cannot be: no UNet, unsupported input channels, unreadable configs (ERR_MODEL_FORMAT).
ModelConfig detect_model_config(const CanonicalModel & model, const DetectOptions & options = {});

struct ExpectedTensor {
    std::string name;                      // canonical
    std::vector<int64_t> shape;
};

// Every tensor the networks of `config` read, with its shape, in a stable order.
std::vector<ExpectedTensor> expected_tensors(const ModelConfig & config);

// Throws ERR_MODEL_INCOMPLETE naming the first missing tensors (canonical and, for single
// files, the name they would have in the file's layout) and the file, or ERR_MODEL_FORMAT for
// a tensor whose shape differs from the config's.
void check_model(const CanonicalModel & model, const ModelConfig & config);

// The sdnode.* metadata our GGUF files carry, so that detection needs no guessing when it reads
// them back (family, variant, prediction type, image size, heads, text layers, pad token).
std::map<std::string, std::string> config_metadata(const ModelConfig & config);

struct OpenedModel {
    CanonicalModel model;
    ModelConfig config;
    std::vector<std::string> unused;       // canonical tensors the networks do not read (SD2's last text layer)
};

// detect_model_config + check_model on an already mapped model (e.g. one whose VAE was replaced).
OpenedModel open_mapped_model(CanonicalModel model, const DetectOptions & options = {});

// map_model + open_mapped_model.
OpenedModel open_model(const std::string & path, const DetectOptions & options = {});

// The canonical tensors a model is made of, with a replacement VAE applied: what both loading and
// conversion start from. Throws like map_model / check_model.
OpenedModel open_model_with_vae(const std::string & path, const DetectOptions & detect, const std::string & vae_path);

} // namespace sd
