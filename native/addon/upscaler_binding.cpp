#include "upscaler_binding.h"

#include <memory>

#include "standalone_network_object.h"

namespace sdnode {

namespace {

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

Napi::Value run(const Napi::CallbackInfo & info, const std::shared_ptr<sd::Upscaler> & upscaler) {
    return run_on_tensor(
        info, upscaler, "image", [](const sd::Upscaler & u, const std::vector<int64_t> & shape) { u.check_input(shape); },
        [](sd::Upscaler & u, const sd::TensorView & image) { return u.run(image); });
}

// loadUpscaler(path, { backend, weightType, threads }) → Promise<NativeUpscaler>
Napi::Value LoadUpscaler(const Napi::CallbackInfo & info) {
    return load_standalone_network<sd::Upscaler, sd::UpscalerLoadOptions>(info, [](Napi::Env env, std::shared_ptr<sd::Upscaler> upscaler) {
        return standalone_network_object(env, std::move(upscaler), "upscaler", info_object, {{"run", run}});
    });
}

} // namespace

void register_upscaler_binding(Napi::Env env, Napi::Object exports) {
    exports.Set("loadUpscaler", Napi::Function::New(env, LoadUpscaler, "loadUpscaler"));
}

} // namespace sdnode
