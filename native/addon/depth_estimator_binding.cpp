#include "depth_estimator_binding.h"

#include <memory>
#include <string>

#include "arguments.h"
#include "js_tensor.h"
#include "promise_worker.h"
#include "sdcore.h"

namespace sdnode {

namespace {

// What the object's methods share; dispose() empties it.
struct DepthEstimatorHolder {
    std::shared_ptr<sd::DepthEstimator> estimator;
};

std::shared_ptr<sd::DepthEstimator> held(Napi::Env env, const DepthEstimatorHolder & holder) {
    if (!holder.estimator) {
        Napi::Error error = Napi::Error::New(env, "The depth estimator has been disposed");
        error.Set("code", "ERR_DISPOSED");
        throw error;
    }
    return holder.estimator;
}

Napi::Value info_object(Napi::Env env, const sd::DepthEstimatorInfo & info) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("path", info.path);
    o.Set("layout", info.layout);
    Napi::Array files = Napi::Array::New(env, info.files.size());
    for (size_t i = 0; i < info.files.size(); ++i) files.Set(static_cast<uint32_t>(i), info.files[i]);
    o.Set("files", files);
    o.Set("imageSize", info.image_size);
    o.Set("hidden", info.hidden);
    o.Set("layers", info.layers);
    o.Set("heads", info.heads);
    o.Set("fusion", info.fusion);
    o.Set("device", info.device);
    return o;
}

Napi::Object depth_estimator_object(Napi::Env env, std::shared_ptr<sd::DepthEstimator> estimator) {
    auto holder = std::make_shared<DepthEstimatorHolder>(DepthEstimatorHolder{std::move(estimator)});
    Napi::Object o = Napi::Object::New(env);
    o.Set("info", Napi::Function::New(env, [holder](const Napi::CallbackInfo & info) {
              return info_object(info.Env(), held(info.Env(), *holder)->info());
          }, "info"));
    o.Set("estimate", Napi::Function::New(env, [holder](const Napi::CallbackInfo & info) {
              Napi::Env env = info.Env();
              std::shared_ptr<sd::DepthEstimator> estimator = held(env, *holder);
              auto input = std::make_shared<JsTensorInput>(args::at(info, 0), "pixels");
              args::guarded(env, [&] { estimator->check_input(input->view().shape); });
              return PromiseWorker<sd::HostTensor>::Start(
                  env, [estimator, input] { return estimator->estimate(input->view()); },
                  [](Napi::Env env, sd::HostTensor && result) -> Napi::Value { return make_js_tensor(env, std::move(result)); });
          }, "estimate"));
    o.Set("dispose", Napi::Function::New(env, [holder](const Napi::CallbackInfo & info) {
              holder->estimator.reset();
              return info.Env().Undefined();
          }, "dispose"));
    return o;
}

// loadDepthEstimator(path, { backend, weightType, threads }) → Promise<NativeDepthEstimator>
Napi::Value LoadDepthEstimator(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string path = args::path(args::at(info, 0));
    Napi::Object options = args::options(args::at(info, 1));
    sd::DepthEstimatorLoadOptions load;
    load.backend = args::optional(options, "backend", "options.", args::string).value_or("auto");
    std::string weight_type = args::optional(options, "weightType", "options.", args::string).value_or("");
    if (!weight_type.empty()) load.weight_type = args::guarded(env, [&] { return sd::parse_weight_type(weight_type); });
    load.threads = args::optional(options, "threads", "options.", args::int32).value_or(0);
    return PromiseWorker<std::shared_ptr<sd::DepthEstimator>>::Start(
        env, [path, load] { return sd::DepthEstimator::load(path, load); },
        [](Napi::Env env, std::shared_ptr<sd::DepthEstimator> && estimator) -> Napi::Value {
            return depth_estimator_object(env, std::move(estimator));
        });
}

} // namespace

void register_depth_estimator_binding(Napi::Env env, Napi::Object exports) {
    exports.Set("loadDepthEstimator", Napi::Function::New(env, LoadDepthEstimator, "loadDepthEstimator"));
}

} // namespace sdnode
