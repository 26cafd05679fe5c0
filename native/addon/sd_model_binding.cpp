// A loaded model as a JS object (the native half of StableDiffusion), and model conversion.
// Loading and conversion read whole models: both run on worker threads. A worker holds its own
// reference to the model, so dispose() while it runs frees the weights when it finishes.
#include "sd_model_binding.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "arguments.h"
#include "js_tensor.h"
#include "model_binding.h"
#include "promise_worker.h"
#include "sdcore.h"
#include "text_encoder_binding.h"

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
    Napi::Value reset = args::at(info, 0);
    return host_memory_object(env, !reset.IsUndefined() && args::boolean(reset, "resetPeak"));
}

std::string string_option(const Napi::Object & options, const char * key) {
    return args::optional(options, key, "options.", args::string).value_or("");
}

// The JS names of a model's networks, indexed by sd::Network.
const char * const kNetworkNames[sd::kNetworkCount] = {"textEncoder", "unet", "vae"};

sd::DetectOptions detect_options(const Napi::Object & options) {
    sd::DetectOptions detect;
    std::string prediction = string_option(options, "predictionType");
    if (!prediction.empty()) {
        detect.prediction_type = args::guarded(options.Env(), [&] { return sd::prediction_type_from_name(prediction); });
    }
    return detect;
}

std::optional<sd::WeightType> weight_type_option(const Napi::Object & options) {
    std::string name = string_option(options, "weightType");
    if (name.empty()) return std::nullopt;
    return args::guarded(options.Env(), [&] { return sd::parse_weight_type(name); });
}

Napi::Array shape_array(Napi::Env env, const std::vector<int64_t> & shape) {
    Napi::Array array = Napi::Array::New(env, shape.size());
    for (size_t d = 0; d < shape.size(); ++d) array.Set(static_cast<uint32_t>(d), static_cast<double>(shape[d]));
    return array;
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
        sd::LoadedModelInfo m = sd::model_info(*model(info.Env()));
        Napi::Object result = config_object(info.Env(), m.config);
        result.Set("layout", sd::layout_name(m.layout));
        result.Set("format", sd::format_name(m.format));
        result.Set("path", m.path);
        return result;
    }

    Napi::Value Weights(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        std::vector<sd::TensorInfo> weights = sd::model_weights(*model(env));
        Napi::Array list = Napi::Array::New(env, weights.size());
        for (size_t i = 0; i < weights.size(); ++i) {
            Napi::Object entry = Napi::Object::New(env);
            entry.Set("name", weights[i].name);
            entry.Set("type", weights[i].type);
            entry.Set("shape", shape_array(env, weights[i].shape));
            list.Set(static_cast<uint32_t>(i), entry);
        }
        return list;
    }

    // readWeight(canonicalName) → Promise<Tensor>: the weight as loaded, dequantized to float32.
    Napi::Value ReadWeight(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        std::shared_ptr<sd::Model> m = model(env);
        std::string name = args::string(args::at(info, 0), "name");
        if (!sd::model_has_weight(*m, name)) {
            Napi::Error error = Napi::Error::New(env, "The model has no weight \"" + name + "\"");
            error.Set("code", "ERR_TENSOR_NOT_FOUND");
            throw error;
        }
        return PromiseWorker<sd::HostTensor>::Start(
            env, [m, name] { return sd::read_model_weight(*m, name); },
            [](Napi::Env env, sd::HostTensor && result) -> Napi::Value { return make_js_tensor(env, std::move(result)); });
    }

    Napi::Value Memory(const Napi::CallbackInfo & info) {
        const sd::DeviceUsage usage = sd::model_memory(*model(info.Env())).usage;
        Napi::Object result = Napi::Object::New(info.Env());
        result.Set("textEncoder", static_cast<double>(usage.weights[static_cast<int>(sd::Network::text_encoder)]));
        result.Set("unet", static_cast<double>(usage.weights[static_cast<int>(sd::Network::unet)]));
        result.Set("vae", static_cast<double>(usage.weights[static_cast<int>(sd::Network::vae)]));
        return result;
    }

    // memoryUsage(resetPeak?: boolean) → { host: { rss, peak, peakReset }, device: { weights,
    // compute: { textEncoder, unet, vae }, total, peak }, offload }: bytes now and the peaks since
    // load or the last reset. With resetPeak the peaks restart from the current figures after this
    // snapshot, so calling it between pipeline stages gives each stage's own peak.
    Napi::Value MemoryUsage(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        std::shared_ptr<sd::Model> m = model(env);
        Napi::Value reset_value = args::at(info, 0);
        const bool reset = !reset_value.IsUndefined() && args::boolean(reset_value, "resetPeak");
        const sd::ModelMemory memory = sd::model_memory(*m, reset);
        const sd::DeviceUsage & device = memory.usage;
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
        // sums them all (the same as the one entry when every network shares a device).
        Napi::Array devices = Napi::Array::New(env, memory.device_names.size());
        std::string names;
        for (size_t slot = 0; slot < memory.device_names.size(); ++slot) {
            size_t weights[sd::kNetworkCount] = {0, 0, 0}, compute[sd::kNetworkCount] = {0, 0, 0};
            for (int n = 0; n < sd::kNetworkCount; ++n) {
                if (device.device_of[n] != static_cast<int>(slot)) continue;
                weights[n] = device.weights[n];
                compute[n] = device.compute[n];
            }
            Napi::Object d = Napi::Object::New(env);
            d.Set("name", memory.device_names[slot]);
            d.Set("weights", per_network(weights));
            d.Set("compute", per_network(compute));
            d.Set("total", static_cast<double>(device.device_total[slot]));
            d.Set("peak", static_cast<double>(device.device_peak[slot]));
            devices.Set(static_cast<uint32_t>(slot), d);
            names += (names.empty() ? "" : " + ") + memory.device_names[slot];
        }
        Napi::Object d = Napi::Object::New(env);
        d.Set("name", names);
        d.Set("weights", per_network(device.weights));
        d.Set("compute", per_network(device.compute));
        d.Set("total", static_cast<double>(device.total));
        d.Set("peak", static_cast<double>(device.peak));
        result.Set("device", d);
        result.Set("devices", devices);
        result.Set("offload", memory.offload);
        return result;
    }

    // devices() → { textEncoder, unet, vae }: each network's device as { name, description,
    // backend, threads }.
    Napi::Value Devices(const Napi::CallbackInfo & info) {
        const sd::Model & m = *model(info.Env());
        const int threads = sd::model_info(m).threads;
        Napi::Object result = Napi::Object::New(info.Env());
        for (int n = 0; n < sd::kNetworkCount; ++n) {
            const sd::NetworkDevice device = sd::model_device(m, static_cast<sd::Network>(n));
            Napi::Object d = Napi::Object::New(info.Env());
            d.Set("name", device.name);
            d.Set("description", device.description);
            d.Set("backend", device.backend);
            d.Set("threads", threads);
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
        auto input = std::make_shared<JsTensorInput>(args::at(info, 0), argument);
        args::guarded(env, [&] { vae_->check_input(direction, input->view().shape); });
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
        auto sample = std::make_shared<JsTensorInput>(args::at(info, 0), "sample");
        Napi::Value t = args::at(info, 1);
        std::vector<float> timesteps;
        if (t.IsNumber()) timesteps.push_back(t.As<Napi::Number>().FloatValue());
        else for (double v : args::numbers(t, "timestep")) timesteps.push_back(static_cast<float>(v));
        auto context = std::make_shared<JsTensorInput>(args::at(info, 2), "context");
        // Optional 4th argument { flashAttention: boolean } (K/V in F16).
        Napi::Object options = args::options(args::at(info, 3));
        const bool flash = args::optional(options, "flashAttention", "options.", args::boolean).value_or(false);
        std::shared_ptr<sd::UNet> & slot = flash ? unet_flash_ : unet_;
        if (!slot) slot = std::make_shared<sd::UNet>(m, sd::UNetOptions{flash});
        args::guarded(env, [&] { slot->validate(sample->view(), timesteps, context->view()); });
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
    std::string path = args::path(args::at(info, 0));
    Napi::Object options = args::options(args::at(info, 1));
    sd::ModelLoadOptions load;
    std::string backend = string_option(options, "backend");
    if (!backend.empty()) load.backend = backend;
    Napi::Value devices = options.Get("devices");
    if (!devices.IsUndefined()) {
        Napi::Object placement = args::object(devices, "options.devices");
        for (int n = 0; n < sd::kNetworkCount; ++n) {
            load.network_devices[n] = args::optional(placement, kNetworkNames[n], "options.devices.", args::string).value_or("");
        }
    }
    load.weight_type = weight_type_option(options);
    load.detect = detect_options(options);
    std::string vae = string_option(options, "vae");
    if (!vae.empty()) load.vae_path = args::path(options.Get("vae"), "options.vae");
    load.threads = args::optional(options, "threads", "options.", args::int32).value_or(0);
    load.offload = args::optional(options, "offload", "options.", args::boolean).value_or(false);
    return PromiseWorker<std::shared_ptr<sd::Model>>::Start(
        env, [path, load] { return sd::load_model(path, load); },
        [](Napi::Env env, std::shared_ptr<sd::Model> && model) -> Napi::Value {
            auto external = Napi::External<std::shared_ptr<sd::Model>>::New(env, &model);
            return env.GetInstanceData<Napi::FunctionReference>()->New({external});
        });
}

// convertModel(input, output, { weightType, predictionType, vae }) → Promise<{ info, tensors, bytes }>
Napi::Value ConvertModel(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string input = args::path(args::at(info, 0), "input");
    std::string output = args::path(args::at(info, 1), "output");
    Napi::Object options = args::options(args::at(info, 2));
    sd::ConvertOptions convert;
    convert.weight_type = weight_type_option(options).value_or(sd::WeightType::f16);
    convert.detect = detect_options(options);
    std::string vae = string_option(options, "vae");
    if (!vae.empty()) convert.vae_path = args::path(options.Get("vae"), "options.vae");
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
