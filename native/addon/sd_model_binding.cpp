// loadModel, convertModel and memoryStats. Loading and conversion read whole models: both run on
// worker threads. The loaded model becomes a NativeModel (model_wrap.h).
#include "sd_model_binding.h"

#include "addon_data.h"

#include <memory>
#include <optional>
#include <string>

#include "arguments.h"
#include "model_binding.h"
#include "model_info_binding.h"
#include "model_wrap.h"
#include "promise_worker.h"
#include "sdcore.h"

namespace sdnode {

namespace {

std::string string_option(const Napi::Object & options, const char * key) {
    return args::optional(options, key, "options.", args::string).value_or("");
}

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

std::string vae_option(const Napi::Object & options) {
    return string_option(options, "vae").empty() ? "" : args::path(options.Get("vae"), "options.vae");
}

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
    load.vae_path = vae_option(options);
    load.threads = args::optional(options, "threads", "options.", args::int32).value_or(0);
    load.offload = args::optional(options, "offload", "options.", args::boolean).value_or(false);
    return PromiseWorker<std::shared_ptr<sd::Model>>::Start(
        env, [path, load] { return sd::load_model(path, load); },
        [](Napi::Env env, std::shared_ptr<sd::Model> && model) -> Napi::Value { return new_model_object(env, std::move(model)); });
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
    convert.vae_path = vae_option(options);
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
    addon_data(env).model_class = Napi::Persistent(define_model_class(env));
    exports.Set("loadModel", Napi::Function::New(env, LoadModel, "loadModel"));
    exports.Set("convertModel", Napi::Function::New(env, ConvertModel, "convertModel"));
    exports.Set("memoryStats", Napi::Function::New(env, memory_stats, "memoryStats"));
}

} // namespace sdnode
