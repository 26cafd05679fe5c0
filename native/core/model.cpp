#include "model.h"

#include <set>

#include "backend_registry.h"
#include "log.h"
#include "name_mapping.h"
#include "string_util.h"

namespace sd {

OpenedModel open_model_with_vae(const std::string & path, const DetectOptions & detect, const std::string & vae_path) {
    if (vae_path.empty()) return open_model(path, detect);

    CanonicalModel model = map_model(path);
    CanonicalModel vae = map_vae_file(vae_path);
    CanonicalModel merged = model;
    merged.tensors.clear();
    merged.source_names.clear();
    merged.by_name.clear();
    auto take = [&merged](const CanonicalModel & from, bool vae_tensors) {
        for (size_t i = 0; i < from.tensors.size(); ++i) {
            if (starts_with(from.tensors[i].name, "vae.") != vae_tensors) continue;
            merged.by_name[from.tensors[i].name] = merged.tensors.size();
            merged.tensors.push_back(from.tensors[i]);
            merged.source_names.push_back(from.source_names[i]);
        }
    };
    take(model, false);
    take(vae, true);
    return open_mapped_model(std::move(merged), detect);
}

std::unique_ptr<Model> Model::load(const std::string & path, const ModelLoadOptions & options) {
    std::unique_ptr<Model> model(new Model());
    model->device_ = select_device(options.backend);
    model->threads_ = options.threads > 0 ? options.threads : default_thread_count();

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

    model->backend_.reset(init_backend(model->device_, model->threads_));
    const bool keep = options.offload, upload_now = !options.offload;
    model->text_encoder_ =
        std::make_unique<ModelWeights>(needed, "text_encoder.", model->backend(), options.weight_type, keep, upload_now);
    model->unet_ = std::make_unique<ModelWeights>(needed, "unet.", model->backend(), options.weight_type, keep, upload_now);
    model->vae_ = std::make_unique<ModelWeights>(needed, "vae.", model->backend(), options.weight_type, keep, upload_now);
    model->residency_.set_weights(Network::text_encoder, model->text_encoder_.get());
    model->residency_.set_weights(Network::unet, model->unet_.get());
    model->residency_.set_weights(Network::vae, model->vae_.get());
    model->residency_.set_offload(options.offload);
    // On Mesa's lavapipe, freeing a Vulkan compute buffer and allocating another corrupts the
    // host heap (the same trigger as a graph outgrowing its buffer; issue 7), and no other GPU
    // backend has been checked: only the CPU backend frees idle networks' buffers.
    model->residency_.set_release_idle_compute(ggml_backend_dev_type(model->device_) == GGML_BACKEND_DEVICE_TYPE_CPU);
    model->residency_.note_allocation();
    log(LogLevel::info, "loaded %s on %s: text encoder %.1f MB, UNet %.1f MB, VAE %.1f MB%s", path.c_str(),
        ggml_backend_dev_name(model->device_), model->text_encoder_->full_bytes() / 1e6,
        model->unet_->full_bytes() / 1e6, model->vae_->full_bytes() / 1e6, options.offload ? " (offloaded until used)" : "");
    return model;
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
         {std::pair<const char *, const ModelWeights *>{"text_encoder.", text_encoder_.get()},
          {"unet.", unet_.get()}, {"vae.", vae_.get()}}) {
        if (starts_with(name, prefix)) return weights->find(name.substr(std::string(prefix).size()));
    }
    return nullptr;
}

} // namespace sd
