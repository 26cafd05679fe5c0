#pragma once
// One naming for every layout a Stable Diffusion 1.x/2.x model comes in. The canonical name of a
// tensor is its diffusers state-dict key with the component as prefix:
//
//   unet.<UNet2DConditionModel key>        unet.down_blocks.1.attentions.0.proj_in.weight
//   vae.<AutoencoderKL key>                vae.decoder.mid_block.attentions.0.to_q.weight
//   text_encoder.<CLIPTextModel key>       text_encoder.encoder.layers.3.self_attn.q_proj.weight
//                                          (without transformers' "text_model." prefix)
//
// Sources: diffusers folders (model_index.json + unet/ vae/ text_encoder/), the original
// single-file checkpoints (LDM names: model.diffusion_model.*, first_stage_model.*,
// cond_stage_model.transformer.text_model.* for SD1's CLIP, cond_stage_model.model.* for SD2's
// OpenCLIP) as safetensors, .ckpt or GGUF, and files already in canonical names (our GGUF).
// Mapping never copies weights: a canonical TensorRecord points at the source file's bytes.
// Where LDM and diffusers differ in more than the name it is still a view of the same bytes:
// OpenCLIP's fused attn.in_proj_weight [3H, H] becomes q/k/v_proj [H, H] at three offsets (rows
// are the outer dimension), and the VAE's mid-block attention 1x1 convs [C, C, 1, 1] become
// diffusers' linear weights [C, C].
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "io/json.h"
#include "io/tensor_index.h"
#include "sdcore/model_config.h"

namespace sd {

// What the source says beyond tensor shapes; detection (detection.h) reads it.
struct ModelHints {
    // diffusers folder: the parsed JSON files that exist (null otherwise).
    std::shared_ptr<const json::Value> model_index, unet_config, vae_config, text_encoder_config,
        scheduler_config, tokenizer_config;
    // Single files: safetensors __metadata__, GGUF key/values, a checkpoint's scalars
    // (global_step, epoch). Folders: empty.
    std::map<std::string, std::string> metadata;
    // LDM text encoder kind: SD2's OpenCLIP (cond_stage_model.model.*, or fused in_proj under
    // CLIP names as stable-diffusion.cpp's converter renames it) or SD1's CLIP.
    bool open_clip = false;
    bool clip = false;
    // A tensor named "v_pred": training tools mark v-prediction models with it.
    bool v_pred_marker = false;
};

struct CanonicalModel {
    std::string path;                       // the file or folder as given
    ModelLayout layout = ModelLayout::ldm;
    FileFormat format = FileFormat::safetensors;  // container of the weights
    std::vector<TensorRecord> tensors;      // name = canonical name; bytes in the source file
    std::vector<std::string> source_names;  // per tensor: its name in the source file
    std::unordered_map<std::string, size_t> by_name;
    std::vector<std::string> ignored;       // names in the source that map to nothing (EMA, optimizer, ...)
    ModelHints hints;

    const TensorRecord * find(const std::string & name) const;
    // The file a canonical tensor comes from; the model's path if there is no such tensor.
    std::string file_of(const std::string & name) const;
};

// Opens a model file or diffusers folder and maps its tensors to canonical names. Checks names and
// the byte sizes views need, nothing about completeness (see detection.h's open_model).
// Throws sd::Error: ERR_FILE_NOT_FOUND / ERR_FILE_READ, ERR_MODEL_FORMAT (with the path) for a
// file that is no SD model or a folder without usable weights.
CanonicalModel map_model(const std::string & path);

// Maps a stand-alone VAE file (LDM names as in vae-ft-mse-*.safetensors, or diffusers names, with
// or without a first_stage_model./vae. prefix) to canonical "vae.*" names.
CanonicalModel map_vae_file(const std::string & path);

// The name mappings on their own (exposed for tests and tools). Each returns the canonical name
// without its component prefix, or nullopt if the name is not one of that component's.
// `unet_layers_per_block` is needed to number LDM's flat input/output blocks; `vae_levels` to
// reverse LDM's decoder level numbering.
std::optional<std::string> ldm_unet_name(const std::string & name, int unet_layers_per_block);
std::optional<std::string> ldm_vae_name(const std::string & name, int vae_levels);
std::optional<std::string> open_clip_name(const std::string & name);

// The reverse, for messages: the name a canonical tensor has in an original checkpoint
// ("unet.conv_in.weight" → "model.diffusion_model.input_blocks.0.0.weight"; q/k/v_proj of an
// OpenCLIP text encoder → its fused attn.in_proj_*).
std::string ldm_original_name(const std::string & canonical, int unet_layers_per_block,
                              const std::vector<bool> & unet_cross_attention, int vae_levels, bool open_clip);

// A diffusers config file's text (model_index.json, unet/config.json, …) as ModelHints holds it.
// Throws ERR_MODEL_FORMAT naming `path` for malformed JSON or anything but an object.
std::shared_ptr<const json::Value> parse_json_config(std::string_view text, const std::string & path);

} // namespace sd
