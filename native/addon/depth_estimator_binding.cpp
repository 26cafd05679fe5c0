#include "depth_estimator_binding.h"

#include <memory>

#include "standalone_network_object.h"

namespace sdnode {

namespace {

Napi::Value info_object(Napi::Env env, const sd::DepthEstimatorInfo & info) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("path", info.path);
    o.Set("layout", info.layout);
    o.Set("files", string_array(env, info.files));
    o.Set("imageSize", info.image_size);
    o.Set("hidden", info.hidden);
    o.Set("layers", info.layers);
    o.Set("heads", info.heads);
    o.Set("fusion", info.fusion);
    o.Set("device", info.device);
    return o;
}

Napi::Value estimate(const Napi::CallbackInfo & info, const std::shared_ptr<sd::DepthEstimator> & estimator) {
    return run_on_tensor(
        info, estimator, "pixels", [](const sd::DepthEstimator & e, const std::vector<int64_t> & shape) { e.check_input(shape); },
        [](sd::DepthEstimator & e, const sd::TensorView & pixels) { return e.estimate(pixels); });
}

// loadDepthEstimator(path, { backend, weightType, threads }) → Promise<NativeDepthEstimator>
Napi::Value LoadDepthEstimator(const Napi::CallbackInfo & info) {
    return load_standalone_network<sd::DepthEstimator, sd::DepthEstimatorLoadOptions>(
        info, [](Napi::Env env, std::shared_ptr<sd::DepthEstimator> estimator) {
            return standalone_network_object(env, std::move(estimator), "depth estimator", info_object, {{"estimate", estimate}});
        });
}

} // namespace

void register_depth_estimator_binding(Napi::Env env, Napi::Object exports) {
    exports.Set("loadDepthEstimator", Napi::Function::New(env, LoadDepthEstimator, "loadDepthEstimator"));
}

} // namespace sdnode
