#pragma once
// Detection: what a model is (sdcore/model_config.h's ModelConfig), from canonical names
// (name_mapping.h) plus what the source says (diffusers configs, file metadata), and the check
// that every tensor the networks read is there with the shape they need.
#include <map>
#include <string>
#include <vector>

#include "model/name_mapping.h"
#include "sdcore/model_config.h"

namespace sd {

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
