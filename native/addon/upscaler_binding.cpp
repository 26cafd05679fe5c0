#include "upscaler_binding.h"

#include <memory>
#include <optional>
#include <string>

#include "arguments.h"
#include "js_tensor.h"
#include "promise_worker.h"
#include "sdcore.h"

namespace sdnode {

namespace {

// What the object's methods share; dispose() empties it.
struct UpscalerHolder {
    std::shared_ptr<sd::Upscaler> upscaler;
};

std::shared_ptr<sd::Upscaler> held(Napi::Env env, const UpscalerHolder & holder) {
    if (!holder.upscaler) {
        Napi::Error error = Napi::Error::New(env, "The upscaler has been disposed");
        error.Set("code", "ERR_DISPOSED");
        throw error;
    }
    return holder.upscaler;
}

Napi::Value info_object(Napi::Env env, const sd::UpscalerInfo & info) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("path", info.path);
    o.Set("format", info.format);
    o.Set("architecture", info.architecture);
    o.Set("stateDict", info.state_dict);
    o.Set("scale", info.scale);
    o.Set("features", info.features);
    o.Set("growth", info.growth);
    o.Set("blocks", info.blocks);
    o.Set("inputMultiple", info.input_multiple);
    o.Set("device", info.device);
    return o;
}

Napi::Value run(const Napi::CallbackInfo & info, const UpscalerHolder & holder) {
    Napi::Env env = info.Env();
    std::shared_ptr<sd::Upscaler> upscaler = held(env, holder);
    auto input = std::make_shared<JsTensorInput>(args::at(info, 0), "image");
    args::guarded(env, [&] { upscaler->check_input(input->view().shape); });
    return PromiseWorker<sd::HostTensor>::Start(
        env, [upscaler, input] { return upscaler->run(input->view()); },
        [](Napi::Env env, sd::HostTensor && result) -> Napi::Value { return make_js_tensor(env, std::move(result)); });
}

Napi::Object upscaler_object(Napi::Env env, std::shared_ptr<sd::Upscaler> upscaler) {
    auto holder = std::make_shared<UpscalerHolder>(UpscalerHolder{std::move(upscaler)});
    Napi::Object o = Napi::Object::New(env);
    o.Set("info", Napi::Function::New(env, [holder](const Napi::CallbackInfo & info) {
              return info_object(info.Env(), held(info.Env(), *holder)->info());
          }, "info"));
    o.Set("run", Napi::Function::New(env, [holder](const Napi::CallbackInfo & info) { return run(info, *holder); }, "run"));
    o.Set("dispose", Napi::Function::New(env, [holder](const Napi::CallbackInfo & info) {
              holder->upscaler.reset();
              return info.Env().Undefined();
          }, "dispose"));
    return o;
}

// loadUpscaler(path, { backend, weightType, threads }) → Promise<NativeUpscaler>
Napi::Value LoadUpscaler(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string path = args::path(args::at(info, 0));
    Napi::Object options = args::options(args::at(info, 1));
    sd::UpscalerLoadOptions load;
    load.backend = args::optional(options, "backend", "options.", args::string).value_or("auto");
    std::string weight_type = args::optional(options, "weightType", "options.", args::string).value_or("");
    if (!weight_type.empty()) load.weight_type = args::guarded(env, [&] { return sd::parse_weight_type(weight_type); });
    load.threads = args::optional(options, "threads", "options.", args::int32).value_or(0);
    return PromiseWorker<std::shared_ptr<sd::Upscaler>>::Start(
        env, [path, load] { return sd::Upscaler::load(path, load); },
        [](Napi::Env env, std::shared_ptr<sd::Upscaler> && upscaler) -> Napi::Value { return upscaler_object(env, std::move(upscaler)); });
}

} // namespace

void register_upscaler_binding(Napi::Env env, Napi::Object exports) {
    exports.Set("loadUpscaler", Napi::Function::New(env, LoadUpscaler, "loadUpscaler"));
}

} // namespace sdnode
