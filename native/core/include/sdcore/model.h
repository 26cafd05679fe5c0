#pragma once
// A loaded model: what detection concluded about it and its three networks' weights, all on one
// device or each on its own (e.g. the UNet on a GPU, the text encoder and VAE on the CPU). Callers
// hold it as an opaque shared handle (its class is internal: model/loaded_model.h); the networks
// made from it (sdcore/networks.h) keep it alive, and so does work in flight that holds a handle.
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sdcore/lora.h"
#include "sdcore/model_config.h"
#include "sdcore/model_files.h"
#include "sdcore/tensor.h"

namespace sd {

class Model;

struct ModelLoadOptions {
    std::string backend = "auto";             // "auto", "cpu", "vulkan", "cuda"
    // Per network (indexed by Network), a backend like `backend` or a device name ("Vulkan1");
    // empty: where `backend` puts it.
    std::string network_devices[kNetworkCount];
    std::optional<WeightType> weight_type;    // nullopt: keep each file's own types
    DetectOptions detect;                     // e.g. an explicit prediction type
    std::string vae_path;                     // a separate VAE file replacing the model's own
    int threads = 0;                          // CPU threads, 0 = default
    // Keep each network's weights on the device only while it runs (runtime/residency.h); the file
    // maps stay open to bring them back, and nothing is uploaded before first use.
    bool offload = false;
};

// Maps the files, checks every tensor the networks need, converts each weight to its storage
// type and uploads it once. Throws like inspect_model, ERR_BACKEND_UNAVAILABLE for a backend or
// device that is not there, ERR_OUT_OF_MEMORY.
std::shared_ptr<Model> load_model(const std::string & path, const ModelLoadOptions & options);

struct LoadedModelInfo {
    ModelConfig config;
    ModelLayout layout = ModelLayout::ldm;
    FileFormat format = FileFormat::safetensors;
    std::string path;
    int threads = 0;       // CPU threads its graphs run with
    bool offload = false;
};

LoadedModelInfo model_info(const Model & model);

// The weights as loaded, network by network (text encoder, UNet, VAE; names sorted within each):
// canonical name ("unet.conv_in.weight"), storage type ("f16", "q8_0", …) and shape.
std::vector<TensorInfo> model_weights(const Model & model);

// Whether the model has a weight of this canonical name.
bool model_has_weight(const Model & model, const std::string & name);

// A weight as loaded, dequantized to float32 (under offload its network is brought back for the
// read), with `loras` applied as a network call would apply them (merged weights show the
// change; weights changed at run time show their own bytes). Throws ERR_TENSOR_NOT_FOUND for a
// name model_has_weight denies, and as prepare_loras (sdcore/lora.h).
HostTensor read_model_weight(const Model & model, const std::string & name, const LoraSet & loras = {});

// A model's networks can be placed on different devices (at most one each); a device slot is the
// index of a device among the model's own.
constexpr int kMaxDevices = kNetworkCount;

// Device memory: weights and compute buffers per network, and the peak of their sum, in all and
// per device slot.
struct DeviceUsage {
    size_t weights[kNetworkCount] = {0, 0, 0};
    size_t compute[kNetworkCount] = {0, 0, 0};
    size_t total = 0;  // weights + compute, all networks
    size_t peak = 0;   // the largest total seen since load or the last reset
    // The same two figures per device slot, over the networks placed on it.
    int devices = 1;
    int device_of[kNetworkCount] = {0, 0, 0};  // each network's slot
    size_t device_total[kMaxDevices] = {0, 0, 0};
    size_t device_peak[kMaxDevices] = {0, 0, 0};
};

struct ModelMemory {
    DeviceUsage usage;
    std::vector<std::string> device_names;  // per device slot, ggml's device name ("CPU", "Vulkan0")
    bool offload = false;
};

// Now and the peaks since load or the last reset; with `reset_peak` the peaks restart from the
// current figures after this snapshot (so a pipeline stage can be measured on its own).
ModelMemory model_memory(const Model & model, bool reset_peak = false);

struct NetworkDevice {
    std::string name;         // e.g. "CPU", "Vulkan0"
    std::string description;  // e.g. the CPU model or GPU name
    std::string backend;      // the registry that owns it, e.g. "CPU", "Vulkan"
};

// Where a network's weights live and its graphs run.
NetworkDevice model_device(const Model & model, Network network);

} // namespace sd
