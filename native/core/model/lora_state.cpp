#include "model/lora_state.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>
#include <map>

#include "io/string_util.h"
#include "runtime/log.h"
#include "sdcore/error.h"

namespace sd {

namespace {

constexpr size_t kCachedFiles = 8;

// The text encoder's and UNet's weights by canonical name and shape, as read_lora_file takes them.
std::vector<LoraWeight> lora_weights(const Model & model) {
    std::vector<LoraWeight> weights;
    for (const auto & [prefix, network] : {std::pair<const char *, const NetworkWeights *>{"text_encoder.", &model.text_encoder()},
                                           {"unet.", &model.unet()}}) {
        for (const std::string & name : network->names()) weights.push_back({prefix + name, tensor_shape(network->find(name))});
    }
    return weights;
}

int slot(Network network) { return network == Network::text_encoder ? 0 : 1; }

const char * prefix_of(Network network) { return network == Network::text_encoder ? "text_encoder." : "unet."; }

bool mergeable(const ggml_tensor * t) {
    return t->type == GGML_TYPE_F32 || t->type == GGML_TYPE_F16 || t->type == GGML_TYPE_BF16;
}

// ggml order (innermost first) of a PyTorch shape.
std::vector<int64_t> ggml_ne(const std::vector<int64_t> & shape) { return {shape.rbegin(), shape.rend()}; }

ggml_tensor * new_f32(ggml_context * ctx, const std::vector<int64_t> & ne) {
    return ggml_new_tensor(ctx, GGML_TYPE_F32, static_cast<int>(ne.size()), ne.data());
}

} // namespace

LoraState::LoraState(const Model & model) : model_(model) {}

LoraState::~LoraState() = default;

std::vector<std::shared_ptr<const LoraFile>> LoraState::files(const LoraSet & set) {
    std::vector<std::shared_ptr<const LoraFile>> result;
    for (const LoraRequest & request : set) {
        if (!std::isfinite(request.text_encoder_weight) || !std::isfinite(request.unet_weight)) {
            throw RangeError("Expected finite LoRA weights for " + request.path);
        }
        uint64_t size = 0;
        int64_t modified = 0;
        lora_file_identity(request.path, size, modified);
        std::shared_ptr<const LoraFile> found;
        {
            std::lock_guard<std::mutex> guard(cache_mutex_);
            for (auto it = cache_.begin(); it != cache_.end(); ++it) {
                if (it->first != request.path) continue;
                if (it->second->size == size && it->second->modified == modified) {
                    found = it->second;
                    cache_.splice(cache_.begin(), cache_, it);
                } else {
                    cache_.erase(it);
                }
                break;
            }
        }
        if (!found) {
            found = std::make_shared<const LoraFile>(read_lora_file(request.path, model_.config(), lora_weights(model_)));
            std::lock_guard<std::mutex> guard(cache_mutex_);
            cache_.emplace_front(request.path, found);
            while (cache_.size() > kCachedFiles) cache_.pop_back();
        }
        result.push_back(std::move(found));
    }
    return result;
}

LoraState::Key LoraState::key_for(Network network, const LoraSet & set) {
    std::vector<std::shared_ptr<const LoraFile>> parsed = files(set);
    Key key;
    for (size_t i = 0; i < set.size(); ++i) {
        const float weight = network == Network::text_encoder ? set[i].text_encoder_weight : set[i].unet_weight;
        const int layers = network == Network::text_encoder ? parsed[i]->text_encoder_layers : parsed[i]->unet_layers;
        if (weight != 0.0f && layers > 0) key.emplace_back(parsed[i], weight);
    }
    return key;
}

std::shared_lock<std::shared_mutex> LoraState::use(Network network, const LoraSet & set) {
    if (network == Network::vae) return {};
    NetworkState & state = networks_[slot(network)];
    const Key wanted = key_for(network, set);
    for (;;) {
        std::shared_lock<std::shared_mutex> shared(state.mutex);
        if (state.applied == wanted) return shared;
        shared.unlock();
        std::unique_lock<std::shared_mutex> exclusive(state.mutex);
        if (state.applied != wanted) apply(network, state, wanted);
    }
}

void LoraState::restore(Network network, NetworkState & state) {
    for (const auto & [name, bytes] : state.backups) {
        ggml_tensor * t = model_.find_weight(name);
        ggml_backend_tensor_set(t, bytes.data(), 0, bytes.size());
    }
    model_.weights_for_update(network).set_adapters({}, 0);
    state.adapter_buffer.reset();
    state.adapter_ctx.reset();
    state.applied.clear();
    state.merged = state.runtime = 0;
}

void LoraState::apply(Network network, NetworkState & state, const Key & wanted) {
    const auto started = std::chrono::steady_clock::now();
    restore(network, state);
    if (wanted.empty()) {
        state.backups.clear();
        return;
    }
    try {
        // Every module of this network, grouped by the weight it changes (in file order).
        std::map<std::string, std::vector<std::pair<const LoraModule *, float>>> by_target;
        for (const auto & [file, weight] : wanted) {
            for (const LoraModule & m : file->modules) {
                if (m.network == network) by_target[m.target].emplace_back(&m, weight);
            }
        }
        // Merged weights keep their original bytes for restore(); backups of weights this set
        // leaves alone are dropped (restore() has just written them back).
        for (auto it = state.backups.begin(); it != state.backups.end();) {
            it = by_target.count(it->first) ? std::next(it) : state.backups.erase(it);
        }
        const bool runtime_only = model_.offload();
        const int threads = model_.threads();
        std::vector<std::pair<std::string, std::vector<std::pair<const LoraModule *, float>>>> runtime;
        for (const auto & [name, modules] : by_target) {
            ggml_tensor * t = model_.find_weight(name);
            if (t == nullptr) throw Error("ERR_INTERNAL", "LoRA target " + name + " is not a weight of the model");
            if (runtime_only || !mergeable(t)) {
                runtime.emplace_back(name, modules);
                continue;
            }
            std::vector<uint8_t> & original = state.backups[name];
            if (original.empty()) {
                original.resize(ggml_nbytes(t));
                ggml_backend_tensor_get(t, original.data(), 0, original.size());
            }
            const int64_t count = ggml_nelements(t);
            std::vector<float> values(static_cast<size_t>(count));
            if (t->type == GGML_TYPE_F32) std::memcpy(values.data(), original.data(), original.size());
            else ggml_get_type_traits(t->type)->to_float(original.data(), values.data(), count);
            for (const auto & [module, weight] : modules) {
                const std::vector<float> delta = lora_delta(*module, threads);
                for (size_t i = 0; i < values.size(); ++i) values[i] += weight * delta[i];
            }
            if (t->type == GGML_TYPE_F32) {
                ggml_backend_tensor_set(t, values.data(), 0, ggml_nbytes(t));
            } else {
                std::vector<uint8_t> converted(ggml_nbytes(t));
                ggml_quantize_chunk(t->type, values.data(), converted.data(), 0, ggml_nrows(t), t->ne[0], nullptr);
                ggml_backend_tensor_set(t, converted.data(), 0, converted.size());
            }
            ++state.merged;
        }

        if (!runtime.empty()) {
            // One context and one device buffer for every factor of this network.
            struct Upload {
                ggml_tensor * tensor;
                std::vector<float> values;
            };
            std::vector<Upload> uploads;
            size_t tensors = 0;
            for (const auto & entry : runtime) tensors += 2 * entry.second.size();
            ggml_init_params params = {ggml_tensor_overhead() * (tensors + 1), nullptr, true};
            GgmlContextPtr ctx(ggml_init(params));
            std::unordered_map<std::string, std::vector<RuntimeAdapter>> adapters;
            const std::string network_prefix = prefix_of(network);
            for (const auto & [name, modules] : runtime) {
                const std::string layer = name.substr(network_prefix.size(), name.size() - network_prefix.size() - 7);
                std::vector<RuntimeAdapter> & list = adapters[layer];
                for (const auto & [m, weight] : modules) {
                    RuntimeAdapter adapter;
                    const std::vector<int64_t> & shape = m->target_shape;
                    if (m->kind == LoraKind::lora) {
                        // down [r, in·kh·kw] → (in, r) or (kw, kh, in, r), with the weight's input
                        // channels (zeros past the module's own: conv_in of inpainting UNets).
                        const int64_t r = m->rank, in = shape[1];
                        const int64_t kernel = shape.size() == 4 ? shape[2] * shape[3] : 1;
                        std::vector<int64_t> down_ne = shape.size() == 4 ? std::vector<int64_t>{shape[3], shape[2], in, r}
                                                                         : std::vector<int64_t>{in, r};
                        std::vector<float> down(static_cast<size_t>(r * in * kernel), 0.0f);
                        const int64_t own = m->in_channels * kernel;
                        for (int64_t i = 0; i < r; ++i) {
                            std::copy_n(m->factors[0].data.begin() + i * own, own, down.begin() + i * in * kernel);
                        }
                        adapter.down = new_f32(ctx.get(), down_ne);
                        uploads.push_back({adapter.down, std::move(down)});
                        std::vector<float> up = m->factors[1].data;  // [out, r] → ne (r, out)
                        for (float & v : up) v *= m->scale * weight;
                        adapter.up = new_f32(ctx.get(), {r, shape[0]});
                        uploads.push_back({adapter.up, std::move(up)});
                    } else {
                        std::vector<float> delta = lora_delta(*m, threads);
                        for (float & v : delta) v *= weight;
                        adapter.delta = new_f32(ctx.get(), ggml_ne(shape));
                        uploads.push_back({adapter.delta, std::move(delta)});
                    }
                    list.push_back(adapter);
                }
                ++state.runtime;
            }
            ggml_backend_t backend = model_.backend(network);
            BufferPtr buffer(ggml_backend_alloc_ctx_tensors(ctx.get(), backend));
            if (!buffer) throw Error("ERR_OUT_OF_MEMORY", "Could not allocate memory for the LoRA factors");
            for (const Upload & u : uploads) ggml_backend_tensor_set(u.tensor, u.values.data(), 0, ggml_nbytes(u.tensor));
            const size_t bytes = ggml_backend_buffer_get_size(buffer.get());
            model_.weights_for_update(network).set_adapters(std::move(adapters), bytes);
            state.adapter_ctx = std::move(ctx);
            state.adapter_buffer = std::move(buffer);
        }
        state.applied = wanted;
        model_.residency().note_allocation();
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
        log(LogLevel::debug, "LoRA: %s: %d weights merged, %d at run time (%.0f ms)", network == Network::unet ? "UNet" : "text encoder",
            state.merged, state.runtime, ms);
    } catch (...) {
        restore(network, state);
        state.backups.clear();
        throw;
    }
}

LoraStatus LoraState::status() const {
    LoraStatus status;
    for (const NetworkState & state : networks_) {
        std::shared_lock<std::shared_mutex> lock(state.mutex);
        status.merged += state.merged;
        status.runtime += state.runtime;
        for (const auto & entry : state.backups) status.backup_bytes += entry.second.size();
        if (state.adapter_buffer) status.adapter_bytes += ggml_backend_buffer_get_size(state.adapter_buffer.get());
    }
    std::lock_guard<std::mutex> guard(cache_mutex_);
    status.cached_files = cache_.size();
    return status;
}

// ---- the public functions (sdcore/lora.h) ----

LoraState & lora_state(const Model & model) {
    ModelAttachment & attached = model.lora_attachment([&model] { return std::make_unique<LoraState>(model); });
    return static_cast<LoraState &>(attached);
}

std::vector<LoraFileReport> prepare_loras(const Model & model, const LoraSet & loras) {
    std::vector<std::shared_ptr<const LoraFile>> files = lora_state(model).files(loras);
    std::vector<LoraFileReport> reports;
    for (const auto & file : files) {
        LoraFileReport report;
        report.path = file->path;
        report.format = file->format;
        report.text_encoder_layers = file->text_encoder_layers;
        report.unet_layers = file->unet_layers;
        report.unmatched = file->unmatched;
        reports.push_back(std::move(report));
    }
    return reports;
}

LoraStatus lora_status(const Model & model) { return lora_state(model).status(); }

// Here rather than with the model's other queries (loaded_model.cpp): a weight is read as the
// LoRAs a call would run with leave it.
HostTensor read_model_weight(const Model & model, const std::string & name, const LoraSet & loras) {
    ggml_tensor * t = model.find_weight(name);
    if (t == nullptr) throw Error("ERR_TENSOR_NOT_FOUND", "The model has no weight \"" + name + "\"");
    Network network = Network::unet;
    Model::network_of(name, network);
    std::shared_lock<std::shared_mutex> lora_lock = lora_state(model).use(network, loras);
    // Under offload the weight may have no data until its network is brought back.
    std::unique_lock<std::mutex> stage = model.residency().enter(network);
    std::vector<uint8_t> raw(ggml_nbytes(t));
    ggml_backend_tensor_get(t, raw.data(), 0, raw.size());
    HostTensor result(tensor_shape(t));
    if (t->type == GGML_TYPE_F32) {
        std::memcpy(result.data.data(), raw.data(), raw.size());
    } else {
        ggml_get_type_traits(t->type)->to_float(raw.data(), result.data.data(), ggml_nelements(t));
    }
    return result;
}


} // namespace sd
