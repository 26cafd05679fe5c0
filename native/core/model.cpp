#include "model.h"

#include <set>

#include "backend_registry.h"
#include "log.h"
#include "name_mapping.h"

namespace sd {

namespace {

bool starts_with(const std::string & text, const char * prefix) { return text.rfind(prefix, 0) == 0; }

} // namespace

OpenedModel open_model_with_vae(const std::string & path, const DetectOptions & detect, const std::string & vae_path) {
    if (vae_path.empty()) return open_model(path, detect);

    OpenedModel opened{map_model(path), {}, {}};
    CanonicalModel vae = map_vae_file(vae_path);
    std::vector<TensorRecord> tensors;
    std::vector<std::string> source_names;
    for (size_t i = 0; i < opened.model.tensors.size(); ++i) {
        if (starts_with(opened.model.tensors[i].name, "vae.")) continue;
        tensors.push_back(opened.model.tensors[i]);
        source_names.push_back(opened.model.source_names[i]);
    }
    for (size_t i = 0; i < vae.tensors.size(); ++i) {
        tensors.push_back(vae.tensors[i]);
        source_names.push_back(vae.source_names[i]);
    }
    opened.model.tensors = std::move(tensors);
    opened.model.source_names = std::move(source_names);
    opened.model.by_name.clear();
    for (size_t i = 0; i < opened.model.tensors.size(); ++i) opened.model.by_name[opened.model.tensors[i].name] = i;

    opened.config = detect_model_config(opened.model, detect);
    check_model(opened.model, opened.config);
    std::set<std::string> expected;
    for (const ExpectedTensor & t : expected_tensors(opened.config)) expected.insert(t.name);
    for (const TensorRecord & t : opened.model.tensors) {
        if (!expected.count(t.name)) opened.unused.push_back(t.name);
    }
    return opened;
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
    model->text_encoder_ = std::make_unique<ModelWeights>(needed, "text_encoder.", model->backend(), options.weight_type);
    model->unet_ = std::make_unique<ModelWeights>(needed, "unet.", model->backend(), options.weight_type);
    model->vae_ = std::make_unique<ModelWeights>(needed, "vae.", model->backend(), options.weight_type);
    log(LogLevel::info, "loaded %s on %s: text encoder %.1f MB, UNet %.1f MB, VAE %.1f MB", path.c_str(),
        ggml_backend_dev_name(model->device_), model->text_encoder_->bytes() / 1e6, model->unet_->bytes() / 1e6,
        model->vae_->bytes() / 1e6);
    return model;
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
