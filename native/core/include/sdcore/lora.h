#pragma once
// LoRA and LyCORIS files applied to a loaded model, per call. A call names the files it wants and
// their strength per network (LoraSet); the networks (sdcore/networks.h) bring their weights to
// that state before they run and keep it until a call asks for another, so repeated calls with
// one set pay the cost once, and a call with an empty set runs on exactly the base weights.
//
// Formats (model/lora_file.cpp): kohya-ss (lora_unet_* / lora_te_* with .lora_down, .lora_up,
// .alpha; linear and convolution layers, 1×1 and 3×3 LoCon; diffusers or LDM module names),
// diffusers/PEFT (unet.… / text_encoder.… with .lora_A / .lora_B, alphas as .alpha tensors or in
// the safetensors metadata "lora_adapter_metadata"; the older .lora.down / .lora.up and
// .lora_linear_layer names), LyCORIS LoHa (hada_w1_a, hada_w1_b, hada_w2_a, hada_w2_b) and LoKr
// (lokr_w1 or lokr_w1_a·lokr_w1_b, lokr_w2 or lokr_w2_a·lokr_w2_b), in .safetensors and PyTorch
// .ckpt/.pt/.bin (read by the restricted unpickler). A module's change is
//   ΔW = weight · scale · delta,  scale = alpha / rank (1 without an alpha; A1111's rule)
// with delta = up·down (LoRA), (w1a·w1b) ⊙ (w2a·w2b) (LoHa), w1 ⊗ w2 (LoKr).
//
// How a change is applied (model/lora_state.cpp), per weight:
// - merged: f32, f16 and bf16 weights get W + ΔW written into them; their original bytes are kept
//   on the host and written back when the set changes (never subtracted), so the base model is
//   restored bit for bit;
// - at run time: quantized weights (q8_0, q4_0, …), and every weight under offload, keep their
//   bytes; the graph adds scale·weight·up(down(x)) (LoRA) or ΔW·x (LoHa, LoKr) to the layer's
//   output, so a quantized model keeps the LoRA's full effect.
#include <cstddef>
#include <string>
#include <vector>

namespace sd {

class Model;

// One file and its strength for the text encoder and for the UNet (A1111's <lora:NAME:TE:UNET>).
struct LoraRequest {
    std::string path;
    float text_encoder_weight = 1.0f;
    float unet_weight = 1.0f;
};

// The LoRAs a call runs with, in order; the same file may appear more than once (the changes add).
using LoraSet = std::vector<LoraRequest>;

// What a file holds, as mapped onto a model.
struct LoraFileReport {
    std::string path;
    // "kohya", "peft", "diffusers" (the older attention-processor names), with "+loha", "+lokr"
    // when LyCORIS modules are present (e.g. "kohya+loha").
    std::string format;
    int text_encoder_layers = 0;        // weights of the text encoder it changes
    int unet_layers = 0;                // weights of the UNet it changes
    std::vector<std::string> unmatched; // its keys that change nothing in this model (sorted)
};

// Reads each file of `loras` (parsed files are cached per model, keyed by path, size and
// modification time), maps its keys onto the model and checks every shape. Throws sd::RangeError
// for a weight that is not finite, sd::Error with the path: ERR_FILE_NOT_FOUND / ERR_FILE_READ,
// ERR_UNSAFE_PICKLE, ERR_LORA_FORMAT (a file that is not a LoRA state dict: malformed,
// truncated, a pickle of something else, no LoRA keys, a module missing a part),
// ERR_LORA_INCOMPATIBLE (a LoRA for another model: another family such as SD 2.x or SDXL, shapes
// that do not fit, no key naming a layer of this model). Nothing about the model changes.
std::vector<LoraFileReport> prepare_loras(const Model & model, const LoraSet & loras);

// How the LoRAs now applied to a model are held, for tests, benchmarks and logs.
struct LoraStatus {
    int merged = 0;             // weights changed in place
    int runtime = 0;            // weights left as they are, their change added in the graph
    size_t backup_bytes = 0;    // host bytes of the original weights kept to restore them
    size_t adapter_bytes = 0;   // device bytes of the run-time factors
    size_t cached_files = 0;    // parsed files kept for reuse
};

LoraStatus lora_status(const Model & model);

} // namespace sd
