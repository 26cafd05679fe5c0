// A loaded model as a JS object (the native half of StableDiffusion), and model conversion.
// Loading and conversion read whole models: both run on worker threads. A worker holds its own
// reference to the model, so dispose() while it runs frees the weights when it finishes.
#include "sd_model_binding.h"

#include <cstring>
#include <memory>
#include <string>

#include "sdcore/error.h"
#include "js_tensor.h"
#include "runtime/memory_stats.h"
#include "model/loaded_model.h"
#include "model_binding.h"
#include "model/convert_to_gguf.h"
#include "promise_worker.h"
#include "text_encoder_binding.h"
#include "nets/unet.h"
#include "nets/vae.h"
#include "model/weight_types.h"

namespace sdnode {

namespace {

// { rss, peak, peakReset } in bytes (null where the platform does not say); with `reset`
// the peak restarts from the current RSS after being read.
Napi::Object host_memory_object(Napi::Env env, bool reset) {
    sd::HostMemory host = sd::host_memory();
    Napi::Object o = Napi::Object::New(env);
    o.Set("rss", host.known ? Napi::Value(Napi::Number::New(env, static_cast<double>(host.rss))) : env.Null());
    o.Set("peak", host.known ? Napi::Value(Napi::Number::New(env, static_cast<double>(host.peak))) : env.Null());
    bool resettable = false;
    if (reset) resettable = sd::reset_host_peak();
    o.Set("peakReset", resettable);
    return o;
}

// memoryStats({ resetPeak }?) → { rss, peak, peakReset }: the process's host memory.
Napi::Value MemoryStats(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    bool reset = false;
    if (info.Length() > 0 && !info[0].IsUndefined()) {
        if (!info[0].IsBoolean()) throw Napi::TypeError::New(env, "Expected resetPeak to be a boolean");
        reset = info[0].As<Napi::Boolean>().Value();
    }
    return host_memory_object(env, reset);
}

std::string string_option(const Napi::Object & options, const char * key) {
    Napi::Value value = options.Get(key);
    if (value.IsUndefined()) return "";
    if (!value.IsString()) throw Napi::TypeError::New(options.Env(), std::string("Expected options.") + key + " to be a string");
    return value.As<Napi::String>().Utf8Value();
}

// The JS names of a model's networks, indexed by sd::Network.
const char * const kNetworkNames[sd::kNetworkCount] = {"textEncoder", "unet", "vae"};

sd::DetectOptions detect_options(const Napi::Object & options) {
    sd::DetectOptions detect;
    std::string prediction = string_option(options, "predictionType");
    if (!prediction.empty()) {
        detect.prediction_type = sd::parse_prediction_type(prediction);
        if (!detect.prediction_type) {
            throw Napi::RangeError::New(options.Env(), "Expected options.predictionType to be epsilon or v_prediction");
        }
    }
    return detect;
}

ggml_type weight_type_option(const Napi::Object & options, ggml_type fallback) {
    std::string name = string_option(options, "weightType");
    if (name.empty()) return fallback;
    try {
        return sd::parse_weight_type(name);
    } catch (const sd::RangeError & e) {
        throw Napi::RangeError::New(options.Env(), e.what());
    }
}

Napi::Object options_argument(const Napi::CallbackInfo & info, size_t index) {
    if (info.Length() <= index || info[index].IsUndefined()) return Napi::Object::New(info.Env());
    if (!info[index].IsObject()) throw Napi::TypeError::New(info.Env(), "Expected options to be an object");
    return info[index].As<Napi::Object>();
}

Napi::Array shape_array(Napi::Env env, const ggml_tensor * t) {
    const int rank = ggml_n_dims(t);
    Napi::Array shape = Napi::Array::New(env, rank);
    for (int d = 0; d < rank; ++d) shape.Set(static_cast<uint32_t>(d), static_cast<double>(t->ne[rank - 1 - d]));
    return shape;
}

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
public:
    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "NativeModel",
                           {InstanceMethod<&ModelWrap::Info>("info"), InstanceMethod<&ModelWrap::Weights>("weights"),
                            InstanceMethod<&ModelWrap::ReadWeight>("readWeight"),
                            InstanceMethod<&ModelWrap::Memory>("memory"),
                            InstanceMethod<&ModelWrap::MemoryUsage>("memoryUsage"),
                            InstanceMethod<&ModelWrap::Devices>("devices"),
                            InstanceMethod<&ModelWrap::VaeDecode>("vaeDecode"),
                            InstanceMethod<&ModelWrap::VaeEncode>("vaeEncode"),
                            InstanceMethod<&ModelWrap::UnetPredict>("unetPredict"),
                            InstanceMethod<&ModelWrap::EncodeText>("encodeText"),
                            InstanceMethod<&ModelWrap::EncodePrompt>("encodePrompt"),
                            InstanceMethod<&ModelWrap::Dispose>("dispose")});
    }

    // Only loadModel creates these: it passes the loaded model as an External.
    explicit ModelWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<ModelWrap>(info) {
        if (info.Length() != 1 || !info[0].IsExternal()) {
            throw Napi::TypeError::New(info.Env(), "Models are created by StableDiffusion.load()");
        }
        auto * loaded = info[0].As<Napi::External<std::shared_ptr<sd::Model>>>().Data();
        model_ = std::move(*loaded);
    }

private:
    const std::shared_ptr<sd::Model> & model(Napi::Env env) const {
        if (!model_) {
            Napi::Error error = Napi::Error::New(env, "The model has been disposed");
            error.Set("code", "ERR_DISPOSED");
            throw error;
        }
        return model_;
    }

    Napi::Value Info(const Napi::CallbackInfo & info) {
        const sd::Model & m = *model(info.Env());
        Napi::Object result = config_object(info.Env(), m.config());
        result.Set("layout", sd::layout_name(m.layout()));
        result.Set("format", sd::format_name(m.format()));
        result.Set("path", m.path());
        return result;
    }

    Napi::Value Weights(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        const sd::Model & m = *model(env);
        Napi::Array list = Napi::Array::New(env);
        uint32_t i = 0;
        for (const auto & [prefix, weights] : {std::pair<const char *, const sd::NetworkWeights *>{"text_encoder.", &m.text_encoder()},
                                               {"unet.", &m.unet()}, {"vae.", &m.vae()}}) {
            for (const std::string & name : weights->names()) {
                const ggml_tensor * t = weights->find(name);
                Napi::Object entry = Napi::Object::New(env);
                entry.Set("name", prefix + name);
                entry.Set("type", sd::weight_type_name(t->type));
                entry.Set("shape", shape_array(env, t));
                list.Set(i++, entry);
            }
        }
        return list;
    }

    // readWeight(canonicalName) → Promise<Tensor>: the weight as loaded, dequantized to float32.
    Napi::Value ReadWeight(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        std::shared_ptr<sd::Model> m = model(env);
        if (!info[0].IsString()) throw Napi::TypeError::New(env, "Expected name to be a string");
        std::string name = info[0].As<Napi::String>().Utf8Value();
        ggml_tensor * t = m->find_weight(name);
        if (t == nullptr) {
            Napi::Error error = Napi::Error::New(env, "The model has no weight \"" + name + "\"");
            error.Set("code", "ERR_TENSOR_NOT_FOUND");
            throw error;
        }
        sd::Network network = sd::Network::unet;
        sd::Model::network_of(name, network);
        return PromiseWorker<sd::HostTensor>::Start(
            env,
            [m, t, network] {
                // Under offload the weight may have no data until its network is brought back.
                std::unique_lock<std::mutex> stage = m->residency().enter(network);
                std::vector<uint8_t> raw(ggml_nbytes(t));
                ggml_backend_tensor_get(t, raw.data(), 0, raw.size());
                std::vector<int64_t> shape;
                for (int d = ggml_n_dims(t) - 1; d >= 0; --d) shape.push_back(t->ne[d]);
                sd::HostTensor result(shape);
                if (t->type == GGML_TYPE_F32) {
                    std::memcpy(result.data.data(), raw.data(), raw.size());
                } else {
                    ggml_get_type_traits(t->type)->to_float(raw.data(), result.data.data(), ggml_nelements(t));
                }
                return result;
            },
            [](Napi::Env env, sd::HostTensor && result) -> Napi::Value { return make_js_tensor(env, std::move(result)); });
    }

    Napi::Value Memory(const Napi::CallbackInfo & info) {
        const sd::Model & m = *model(info.Env());
        Napi::Object result = Napi::Object::New(info.Env());
        result.Set("textEncoder", static_cast<double>(m.text_encoder().bytes()));
        result.Set("unet", static_cast<double>(m.unet().bytes()));
        result.Set("vae", static_cast<double>(m.vae().bytes()));
        return result;
    }

    // memoryUsage(resetPeak?: boolean) → { host: { rss, peak, peakReset }, device: { weights,
    // compute: { textEncoder, unet, vae }, total, peak }, offload }: bytes now and the peaks since
    // load or the last reset. With resetPeak the peaks restart from the current figures after this
    // snapshot, so calling it between pipeline stages gives each stage's own peak.
    Napi::Value MemoryUsage(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        const sd::Model & m = *model(env);
        bool reset = false;
        if (info.Length() > 0 && !info[0].IsUndefined()) {
            if (!info[0].IsBoolean()) throw Napi::TypeError::New(env, "Expected resetPeak to be a boolean");
            reset = info[0].As<Napi::Boolean>().Value();
        }
        sd::DeviceUsage device = m.residency().usage();
        Napi::Object result = Napi::Object::New(env);
        result.Set("host", host_memory_object(env, reset));
        auto per_network = [env](const size_t (&values)[sd::kNetworkCount]) {
            Napi::Object o = Napi::Object::New(env);
            o.Set("textEncoder", static_cast<double>(values[static_cast<int>(sd::Network::text_encoder)]));
            o.Set("unet", static_cast<double>(values[static_cast<int>(sd::Network::unet)]));
            o.Set("vae", static_cast<double>(values[static_cast<int>(sd::Network::vae)]));
            return o;
        };
        // One entry per device the networks are placed on, with only its networks' buffers; `device`
        // sums them all (the same as the one entry when every network shares a device). Slots are
        // the model's devices in order (Model::place_networks gives Residency the same numbering).
        const std::vector<ggml_backend_dev_t> & placed = m.devices();
        Napi::Array devices = Napi::Array::New(env, placed.size());
        std::string names;
        for (size_t slot = 0; slot < placed.size(); ++slot) {
            size_t weights[sd::kNetworkCount] = {0, 0, 0}, compute[sd::kNetworkCount] = {0, 0, 0};
            for (int n = 0; n < sd::kNetworkCount; ++n) {
                if (device.device_of[n] != static_cast<int>(slot)) continue;
                weights[n] = device.weights[n];
                compute[n] = device.compute[n];
            }
            Napi::Object d = Napi::Object::New(env);
            d.Set("name", ggml_backend_dev_name(placed[slot]));
            d.Set("weights", per_network(weights));
            d.Set("compute", per_network(compute));
            d.Set("total", static_cast<double>(device.device_total[slot]));
            d.Set("peak", static_cast<double>(device.device_peak[slot]));
            devices.Set(static_cast<uint32_t>(slot), d);
            names += (names.empty() ? "" : " + ") + std::string(ggml_backend_dev_name(placed[slot]));
        }
        Napi::Object d = Napi::Object::New(env);
        d.Set("name", names);
        d.Set("weights", per_network(device.weights));
        d.Set("compute", per_network(device.compute));
        d.Set("total", static_cast<double>(device.total));
        d.Set("peak", static_cast<double>(device.peak));
        result.Set("device", d);
        result.Set("devices", devices);
        result.Set("offload", m.offload());
        if (reset) m.residency().reset_peak();
        return result;
    }

    // devices() → { textEncoder, unet, vae }: each network's device as { name, description,
    // backend, threads }.
    Napi::Value Devices(const Napi::CallbackInfo & info) {
        const sd::Model & m = *model(info.Env());
        Napi::Object result = Napi::Object::New(info.Env());
        for (int n = 0; n < sd::kNetworkCount; ++n) {
            ggml_backend_dev_t device = m.device(static_cast<sd::Network>(n));
            Napi::Object d = Napi::Object::New(info.Env());
            d.Set("name", ggml_backend_dev_name(device));
            d.Set("description", ggml_backend_dev_description(device));
            d.Set("backend", ggml_backend_reg_name(ggml_backend_dev_backend_reg(device)));
            d.Set("threads", m.threads());
            result.Set(kNetworkNames[n], d);
        }
        return result;
    }

    // vaeDecode(latents [B,4,h,w]) → Promise<Tensor [B,3,8h,8w]>; vaeEncode(image [B,3,H,W]) →
    // Promise<Tensor moments [B,8,H/8,W/8]> (mean then log-variance). Shapes are checked here,
    // before anything is queued (RangeError), and again by the engine.
    Napi::Value VaeDecode(const Napi::CallbackInfo & info) { return RunVae(info, "latents", sd::Vae::Direction::decode); }
    Napi::Value VaeEncode(const Napi::CallbackInfo & info) { return RunVae(info, "image", sd::Vae::Direction::encode); }

    Napi::Value RunVae(const Napi::CallbackInfo & info, const char * argument, sd::Vae::Direction direction) {
        Napi::Env env = info.Env();
        std::shared_ptr<sd::Model> m = model(env);
        if (!vae_) vae_ = std::make_shared<sd::Vae>(m);
        auto input = std::make_shared<JsTensorInput>(info[0], argument);
        try {
            vae_->check_input(direction, input->view().shape);
        } catch (const sd::RangeError & e) {
            throw Napi::RangeError::New(env, e.what());
        }
        std::shared_ptr<sd::Vae> vae = vae_;
        return PromiseWorker<sd::HostTensor>::Start(
            env, [vae, input, direction] { return vae->run(direction, input->view()); },
            [](Napi::Env env, sd::HostTensor && result) -> Napi::Value { return make_js_tensor(env, std::move(result)); });
    }

    // unetPredict(sample [B,C,h,w], timestep: number | number[], context [B,n,dim], { flashAttention }?)
    // → Promise<Tensor [B,4,h,w]>. Everything is checked here, before the work is queued (RangeError/TypeError).
    Napi::Value UnetPredict(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        std::shared_ptr<sd::Model> m = model(env);
        auto sample = std::make_shared<JsTensorInput>(info[0], "sample");
        std::vector<float> timesteps;
        if (info[1].IsNumber()) {
            timesteps.push_back(info[1].As<Napi::Number>().FloatValue());
        } else if (info[1].IsArray()) {
            Napi::Array list = info[1].As<Napi::Array>();
            for (uint32_t i = 0; i < list.Length(); ++i) {
                Napi::Value t = list.Get(i);
                if (!t.IsNumber()) throw Napi::TypeError::New(env, "Expected timestep to be a number or an array of numbers");
                timesteps.push_back(t.As<Napi::Number>().FloatValue());
            }
        } else {
            throw Napi::TypeError::New(env, "Expected timestep to be a number or an array of numbers");
        }
        auto context = std::make_shared<JsTensorInput>(info[2], "context");
        // Optional 4th argument { flashAttention: boolean } (ggml_flash_attn_ext, K/V in F16).
        bool flash = false;
        if (info.Length() > 3 && !info[3].IsUndefined()) {
            if (!info[3].IsObject()) throw Napi::TypeError::New(env, "Expected options to be an object");
            Napi::Value f = info[3].As<Napi::Object>().Get("flashAttention");
            if (!f.IsUndefined() && !f.IsBoolean()) throw Napi::TypeError::New(env, "Expected options.flashAttention to be a boolean");
            flash = f.IsBoolean() && f.As<Napi::Boolean>().Value();
        }
        std::shared_ptr<sd::UNet> & slot = flash ? unet_flash_ : unet_;
        if (!slot) slot = std::make_shared<sd::UNet>(m, sd::UNetOptions{flash});
        try {
            slot->validate(sample->view(), timesteps, context->view());
        } catch (const sd::RangeError & e) {
            throw Napi::RangeError::New(env, e.what());
        }
        std::shared_ptr<sd::UNet> unet = slot;
        return PromiseWorker<sd::HostTensor>::Start(
            env, [unet, sample, timesteps, context] { return unet->predict(sample->view(), timesteps, context->view()); },
            [](Napi::Env env, sd::HostTensor && result) -> Napi::Value { return make_js_tensor(env, std::move(result)); });
    }

    // encodeText / encodePrompt: see text_encoder_binding.h.
    Napi::Value EncodeText(const Napi::CallbackInfo & info) { return encode_text(info, text_encoder(info.Env())); }
    Napi::Value EncodePrompt(const Napi::CallbackInfo & info) { return encode_prompt(info, text_encoder(info.Env())); }

    const std::shared_ptr<TextEncoderHandle> & text_encoder(Napi::Env env) {
        if (!text_encoder_) text_encoder_ = std::make_shared<TextEncoderHandle>(model(env));
        return text_encoder_;
    }

    Napi::Value Dispose(const Napi::CallbackInfo & info) {
        text_encoder_.reset();
        vae_.reset();
        unet_.reset();
        unet_flash_.reset();
        model_.reset();
        return info.Env().Undefined();
    }

    std::shared_ptr<sd::Model> model_;
    std::shared_ptr<TextEncoderHandle> text_encoder_;  // created on first use
    std::shared_ptr<sd::UNet> unet_, unet_flash_;  // created on first use; hold the UNet's graph allocator
    std::shared_ptr<sd::Vae> vae_;  // created on first use; holds the VAE's graph allocator
};

// loadModel(path, { backend, devices: { textEncoder, unet, vae }, weightType, predictionType, vae, threads,
// offload }) → Promise<NativeModel>
Napi::Value LoadModel(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string path = path_argument(info[0]);
    Napi::Object options = options_argument(info, 1);
    sd::ModelLoadOptions load;
    std::string backend = string_option(options, "backend");
    if (!backend.empty()) load.backend = backend;
    Napi::Value devices = options.Get("devices");
    if (!devices.IsUndefined()) {
        if (!devices.IsObject()) throw Napi::TypeError::New(env, "Expected options.devices to be an object");
        for (int n = 0; n < sd::kNetworkCount; ++n) {
            load.network_devices[n] = string_option(devices.As<Napi::Object>(), kNetworkNames[n]);
        }
    }
    load.weight_type = weight_type_option(options, GGML_TYPE_COUNT);
    load.detect = detect_options(options);
    std::string vae = string_option(options, "vae");
    if (!vae.empty()) load.vae_path = path_argument(options.Get("vae"));
    Napi::Value threads = options.Get("threads");
    if (!threads.IsUndefined()) {
        if (!threads.IsNumber()) throw Napi::TypeError::New(env, "Expected options.threads to be an integer");
        load.threads = threads.As<Napi::Number>().Int32Value();
    }
    Napi::Value offload = options.Get("offload");
    if (!offload.IsUndefined()) {
        if (!offload.IsBoolean()) throw Napi::TypeError::New(env, "Expected options.offload to be a boolean");
        load.offload = offload.As<Napi::Boolean>().Value();
    }
    return PromiseWorker<std::shared_ptr<sd::Model>>::Start(
        env, [path, load] { return std::shared_ptr<sd::Model>(sd::Model::load(path, load)); },
        [](Napi::Env env, std::shared_ptr<sd::Model> && model) -> Napi::Value {
            auto external = Napi::External<std::shared_ptr<sd::Model>>::New(env, &model);
            return env.GetInstanceData<Napi::FunctionReference>()->New({external});
        });
}

// convertModel(input, output, { weightType, predictionType, vae }) → Promise<{ info, tensors, bytes }>
Napi::Value ConvertModel(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string input = path_argument(info[0]);
    std::string output = path_argument(info[1]);
    Napi::Object options = options_argument(info, 2);
    sd::ConvertOptions convert;
    convert.weight_type = weight_type_option(options, GGML_TYPE_F16);
    convert.detect = detect_options(options);
    std::string vae = string_option(options, "vae");
    if (!vae.empty()) convert.vae_path = path_argument(options.Get("vae"));
    return PromiseWorker<sd::ConvertReport>::Start(
        env, [input, output, convert] { return sd::convert_model(input, output, convert); },
        [](Napi::Env env, sd::ConvertReport && report) -> Napi::Value {
            Napi::Object result = Napi::Object::New(env);
            result.Set("info", config_object(env, report.config));
            result.Set("tensors", static_cast<double>(report.tensor_count));
            result.Set("bytes", static_cast<double>(report.bytes_written));
            return result;
        });
}

} // namespace

void register_sd_model_binding(Napi::Env env, Napi::Object exports) {
    // The addon's only instance data: the model class, for loadModel to construct.
    env.SetInstanceData(new Napi::FunctionReference(Napi::Persistent(ModelWrap::Define(env))));
    exports.Set("loadModel", Napi::Function::New(env, LoadModel, "loadModel"));
    exports.Set("convertModel", Napi::Function::New(env, ConvertModel, "convertModel"));
    exports.Set("memoryStats", Napi::Function::New(env, MemoryStats, "memoryStats"));
}

} // namespace sdnode
