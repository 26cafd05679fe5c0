#include "model_info_binding.h"

#include <string>
#include <vector>

#include "arguments.h"
#include "js_tensor.h"
#include "lora_binding.h"
#include "model_binding.h"
#include "promise_worker.h"

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

bool reset_argument(const Napi::CallbackInfo & info) {
    Napi::Value reset = args::at(info, 0);
    return !reset.IsUndefined() && args::boolean(reset, "resetPeak");
}

// { textEncoder, unet, vae } from values indexed by sd::Network.
Napi::Object per_network(Napi::Env env, const size_t (&values)[sd::kNetworkCount]) {
    Napi::Object o = Napi::Object::New(env);
    for (int n = 0; n < sd::kNetworkCount; ++n) o.Set(kNetworkNames[n], static_cast<double>(values[n]));
    return o;
}

} // namespace

Napi::Value model_info(const Napi::CallbackInfo & info, const sd::Model & model) {
    sd::LoadedModelInfo m = sd::model_info(model);
    Napi::Object result = config_object(info.Env(), m.config);
    result.Set("layout", sd::layout_name(m.layout));
    result.Set("format", sd::format_name(m.format));
    result.Set("path", m.path);
    return result;
}

Napi::Value model_weights(const Napi::CallbackInfo & info, const sd::Model & model) {
    return tensor_info_array(info.Env(), sd::model_weights(model));
}

// readWeight(canonicalName, loras?) → Promise<Tensor>: the weight as loaded (with `loras` applied as
// a network call applies them), dequantized to float32.
Napi::Value read_model_weight(const Napi::CallbackInfo & info, const std::shared_ptr<sd::Model> & model) {
    Napi::Env env = info.Env();
    std::string name = args::string(args::at(info, 0), "name");
    if (!sd::model_has_weight(*model, name)) {
        Napi::Error error = Napi::Error::New(env, "The model has no weight \"" + name + "\"");
        error.Set("code", "ERR_TENSOR_NOT_FOUND");
        throw error;
    }
    sd::LoraSet loras = lora_set_argument(args::at(info, 1), "loras");
    return PromiseWorker<sd::HostTensor>::Start(
        env, [model, name, loras = std::move(loras)] { return sd::read_model_weight(*model, name, loras); },
        [](Napi::Env env, sd::HostTensor && result) -> Napi::Value { return make_js_tensor(env, std::move(result)); });
}

Napi::Value model_memory(const Napi::CallbackInfo & info, const sd::Model & model) {
    return per_network(info.Env(), sd::model_memory(model).usage.weights);
}

// memoryUsage(resetPeak?: boolean) → { host: { rss, peak, peakReset }, device: { name, weights,
// compute: { textEncoder, unet, vae }, total, peak }, devices: [same, per device], offload }:
// bytes now and the peaks since load or the last reset. With resetPeak the peaks restart from the
// current figures after this snapshot, so calling it between pipeline stages gives each stage's
// own peak.
Napi::Value model_memory_usage(const Napi::CallbackInfo & info, const sd::Model & model) {
    Napi::Env env = info.Env();
    const bool reset = reset_argument(info);
    const sd::ModelMemory memory = sd::model_memory(model, reset);
    const sd::DeviceUsage & usage = memory.usage;
    Napi::Object result = Napi::Object::New(env);
    result.Set("host", host_memory_object(env, reset));
    // One entry per device the networks are placed on, with only its networks' buffers; `device`
    // sums them all (the same as the one entry when every network shares a device).
    Napi::Array devices = Napi::Array::New(env, memory.device_names.size());
    std::string names;
    for (size_t slot = 0; slot < memory.device_names.size(); ++slot) {
        size_t weights[sd::kNetworkCount] = {0, 0, 0}, compute[sd::kNetworkCount] = {0, 0, 0};
        for (int n = 0; n < sd::kNetworkCount; ++n) {
            if (usage.device_of[n] != static_cast<int>(slot)) continue;
            weights[n] = usage.weights[n];
            compute[n] = usage.compute[n];
        }
        Napi::Object d = Napi::Object::New(env);
        d.Set("name", memory.device_names[slot]);
        d.Set("weights", per_network(env, weights));
        d.Set("compute", per_network(env, compute));
        d.Set("total", static_cast<double>(usage.device_total[slot]));
        d.Set("peak", static_cast<double>(usage.device_peak[slot]));
        devices.Set(static_cast<uint32_t>(slot), d);
        names += (names.empty() ? "" : " + ") + memory.device_names[slot];
    }
    Napi::Object d = Napi::Object::New(env);
    d.Set("name", names);
    d.Set("weights", per_network(env, usage.weights));
    d.Set("compute", per_network(env, usage.compute));
    d.Set("total", static_cast<double>(usage.total));
    d.Set("peak", static_cast<double>(usage.peak));
    result.Set("device", d);
    result.Set("devices", devices);
    result.Set("offload", memory.offload);
    return result;
}

Napi::Value model_devices(const Napi::CallbackInfo & info, const sd::Model & model) {
    Napi::Env env = info.Env();
    const int threads = sd::model_info(model).threads;
    Napi::Object result = Napi::Object::New(env);
    for (int n = 0; n < sd::kNetworkCount; ++n) {
        const sd::NetworkDevice device = sd::model_device(model, static_cast<sd::Network>(n));
        Napi::Object d = Napi::Object::New(env);
        d.Set("name", device.name);
        d.Set("description", device.description);
        d.Set("backend", device.backend);
        d.Set("threads", threads);
        result.Set(kNetworkNames[n], d);
    }
    return result;
}

// memoryStats({ resetPeak }?) → { rss, peak, peakReset }: the process's host memory.
Napi::Value memory_stats(const Napi::CallbackInfo & info) { return host_memory_object(info.Env(), reset_argument(info)); }

} // namespace sdnode
