#include "model/loaded_model.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "io/weight_types.h"

#include "io/string_util.h"
#include "runtime/backend_registry.h"
#include "runtime/log.h"
#include "sdcore/error.h"

namespace sd {

std::unique_ptr<Model> Model::load(const std::string & path, const ModelLoadOptions & options) {
    std::unique_ptr<Model> model(new Model());
    model->threads_ = options.threads > 0 ? options.threads : default_thread_count();
    model->place_networks(options);

    OpenedModel opened = open_model_with_vae(path, options.detect, options.vae_path);
    model->path_ = path;
    model->layout_ = opened.model.layout;
    model->format_ = opened.model.format;
    model->config_ = opened.config;

    // Only what the networks read is loaded (e.g. not SD2's unused last text layer).
    std::set<std::string> expected;
    for (const ExpectedTensor & t : expected_tensors(opened.config)) expected.insert(t.name);
    std::vector<TensorRecord> needed;
    for (const TensorRecord & t : opened.model.tensors) {
        if (expected.count(t.name)) needed.push_back(t);
    }

    const bool keep = options.offload, upload_now = !options.offload;
    auto weights_of = [&](Network network, const char * prefix) {
        return std::make_unique<NetworkWeights>(needed, prefix, model->backend(network), options.weight_type, keep, upload_now);
    };
    model->text_encoder_ = weights_of(Network::text_encoder, "text_encoder.");
    model->unet_ = weights_of(Network::unet, "unet.");
    model->vae_ = weights_of(Network::vae, "vae.");
    model->residency_.set_weights(Network::text_encoder, model->text_encoder_.get());
    model->residency_.set_weights(Network::unet, model->unet_.get());
    model->residency_.set_weights(Network::vae, model->vae_.get());
    model->residency_.set_offload(options.offload);
    model->residency_.note_allocation();
    log(LogLevel::info, "loaded %s: text encoder %.1f MB on %s, UNet %.1f MB on %s, VAE %.1f MB on %s%s", path.c_str(),
        model->text_encoder_->full_bytes() / 1e6, ggml_backend_dev_name(model->device(Network::text_encoder)),
        model->unet_->full_bytes() / 1e6, ggml_backend_dev_name(model->device(Network::unet)),
        model->vae_->full_bytes() / 1e6, ggml_backend_dev_name(model->device(Network::vae)),
        options.offload ? " (offloaded until used)" : "");
    return model;
}

void Model::place_networks(const ModelLoadOptions & options) {
    const ggml_backend_dev_t default_device = select_device(options.backend);
    for (int i = 0; i < kNetworkCount; ++i) {
        const std::string & wanted = options.network_devices[i];
        const ggml_backend_dev_t device = wanted.empty() ? default_device : select_backend_or_device(wanted);
        size_t slot = std::find(devices_.begin(), devices_.end(), device) - devices_.begin();
        if (slot == devices_.size()) {
            devices_.push_back(device);
            backends_.emplace_back(init_backend(device, threads_));
        }
        const Network network = static_cast<Network>(i);
        placements_[i] = Placement{device, backends_[slot].get()};
        residency_.set_device(network, static_cast<int>(slot));
        // On Mesa's lavapipe, freeing a Vulkan compute buffer and allocating another corrupts the
        // host heap (the same trigger as a graph outgrowing its buffer; issue 7), and no other GPU
        // backend has been checked: only networks on the CPU free their idle compute buffers.
        residency_.set_release_idle_compute(network, ggml_backend_dev_type(device) == GGML_BACKEND_DEVICE_TYPE_CPU);
    }
}

ModelAttachment & Model::lora_attachment(const std::function<std::unique_ptr<ModelAttachment>()> & make) const {
    std::lock_guard<std::mutex> guard(attachment_mutex_);
    if (!lora_attachment_) lora_attachment_ = make();
    return *lora_attachment_;
}

NetworkWeights & Model::weights_for_update(Network network) const {
    switch (network) {
        case Network::text_encoder: return *text_encoder_;
        case Network::unet: return *unet_;
        case Network::vae: return *vae_;
    }
    return *unet_;
}

bool Model::network_of(const std::string & name, Network & network) {
    if (starts_with(name, "text_encoder.")) network = Network::text_encoder;
    else if (starts_with(name, "unet.")) network = Network::unet;
    else if (starts_with(name, "vae.")) network = Network::vae;
    else return false;
    return true;
}

ggml_tensor * Model::find_weight(const std::string & name) const {
    for (const auto & [prefix, weights] :
         {std::pair<const char *, const NetworkWeights *>{"text_encoder.", text_encoder_.get()},
          {"unet.", unet_.get()}, {"vae.", vae_.get()}}) {
        if (starts_with(name, prefix)) return weights->find(name.substr(std::string(prefix).size()));
    }
    return nullptr;
}

// ---- the public queries (sdcore/model.h; read_model_weight is in lora_state.cpp) ----

std::shared_ptr<Model> load_model(const std::string & path, const ModelLoadOptions & options) {
    return Model::load(path, options);
}

LoadedModelInfo model_info(const Model & model) {
    LoadedModelInfo info;
    info.config = model.config();
    info.layout = model.layout();
    info.format = model.format();
    info.path = model.path();
    info.threads = model.threads();
    info.offload = model.offload();
    return info;
}

std::vector<TensorInfo> model_weights(const Model & model) {
    std::vector<TensorInfo> list;
    for (const auto & [prefix, weights] : {std::pair<const char *, const NetworkWeights *>{"text_encoder.", &model.text_encoder()},
                                           {"unet.", &model.unet()}, {"vae.", &model.vae()}}) {
        for (const std::string & name : weights->names()) {
            const ggml_tensor * t = weights->find(name);
            list.push_back({prefix + name, weight_type_name(t->type), tensor_shape(t)});
        }
    }
    return list;
}

bool model_has_weight(const Model & model, const std::string & name) { return model.find_weight(name) != nullptr; }

ModelMemory model_memory(const Model & model, bool reset_peak) {
    ModelMemory memory;
    memory.usage = model.residency().usage();
    // Slots are the model's devices in order (Model::place_networks gives Residency the same numbering).
    for (ggml_backend_dev_t device : model.devices()) memory.device_names.push_back(ggml_backend_dev_name(device));
    memory.offload = model.offload();
    if (reset_peak) model.residency().reset_peak();
    return memory;
}

NetworkDevice model_device(const Model & model, Network network) {
    ggml_backend_dev_t device = model.device(network);
    return {ggml_backend_dev_name(device), ggml_backend_dev_description(device),
            ggml_backend_reg_name(ggml_backend_dev_backend_reg(device))};
}

} // namespace sd
