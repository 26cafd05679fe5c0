#pragma once
// The model behind sdcore/model.h's handle: what detection concluded about it and its three
// networks' weights, all on one device or each on its own (e.g. the UNet on a GPU, the text
// encoder and VAE on the CPU). Loading maps the files, checks every tensor the networks need,
// converts each weight to its storage type (io/weight_types.h) and uploads it once; the file maps
// are released afterwards (with offload they stay, to upload a network again; see residency.h).
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "model/detection.h"
#include "model/network_weights.h"
#include "runtime/ggml_handles.h"
#include "runtime/residency.h"
#include "sdcore/model.h"
#include "sdcore/system.h"

namespace sd {

// State that another part of model/ keeps per loaded model and that goes with it: the applied
// LoRAs (lora_state.h). Opaque here, so that the model does not depend on what is attached.
class ModelAttachment {
public:
    virtual ~ModelAttachment() = default;
};

class Model {
public:
    static std::unique_ptr<Model> load(const std::string & path, const ModelLoadOptions & options);

    const ModelConfig & config() const { return config_; }
    const std::string & path() const { return path_; }
    ModelLayout layout() const { return layout_; }
    FileFormat format() const { return format_; }
    // Where a network's weights live and its graphs run.
    ggml_backend_dev_t device(Network network) const { return placements_[static_cast<int>(network)].device; }
    ggml_backend_t backend(Network network) const { return placements_[static_cast<int>(network)].backend; }
    // The model's distinct devices, in the order of Residency's device slots.
    const std::vector<ggml_backend_dev_t> & devices() const { return devices_; }
    int threads() const { return threads_; }

    const NetworkWeights & text_encoder() const { return *text_encoder_; }
    const NetworkWeights & unet() const { return *unet_; }
    const NetworkWeights & vae() const { return *vae_; }
    // A network's weights for the one thing that changes them after load: applying LoRAs
    // (LoraState, under its lock).
    NetworkWeights & weights_for_update(Network network) const;

    // The LoRA state (lora_state.h's lora_state() makes it with `make` on first use).
    ModelAttachment & lora_attachment(const std::function<std::unique_ptr<ModelAttachment>()> & make) const;

    // A weight by canonical name ("unet.conv_in.weight"), or nullptr.
    ggml_tensor * find_weight(const std::string & canonical_name) const;
    // The network a canonical name belongs to (false for none).
    static bool network_of(const std::string & canonical_name, Network & network);

    // Device memory per network and offload; networks bind their graph runners to it. Mutable:
    // networks share the model as const while residency changes underneath.
    Residency & residency() const { return residency_; }
    bool offload() const { return residency_.offload(); }

private:
    Model() = default;
    // Chooses each network's device and starts one backend per distinct device.
    void place_networks(const ModelLoadOptions & options);

    // Declared first, destroyed last: once the weights and backends below are gone, their
    // memory goes back to the OS (return_free_memory) rather than staying in malloc's arenas.
    struct ReturnFreeMemoryAtEnd {
        ~ReturnFreeMemoryAtEnd() { return_free_memory(); }
    } return_free_memory_at_end_;
    std::string path_;
    ModelLayout layout_ = ModelLayout::ldm;
    FileFormat format_ = FileFormat::safetensors;
    ModelConfig config_;
    struct Placement {
        ggml_backend_dev_t device = nullptr;
        ggml_backend_t backend = nullptr;  // owned by backends_
    };
    Placement placements_[kNetworkCount];
    std::vector<ggml_backend_dev_t> devices_;
    std::vector<BackendPtr> backends_;  // one per device, parallel to devices_
    int threads_ = 0;
    std::unique_ptr<NetworkWeights> text_encoder_, unet_, vae_;
    mutable Residency residency_;  // runners detach from it before it goes
    mutable std::mutex attachment_mutex_;
    mutable std::unique_ptr<ModelAttachment> lora_attachment_;  // declared last: its buffers go before the weights
};

} // namespace sd
