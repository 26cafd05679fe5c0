#include "safety_checker_binding.h"

#include <memory>
#include <vector>

#include "standalone_network_object.h"

namespace sdnode {

namespace {

Napi::Value info_object(Napi::Env env, const sd::SafetyCheckerInfo & info) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("path", info.path);
    o.Set("files", string_array(env, info.files));
    o.Set("imageSize", info.image_size);
    o.Set("patchSize", info.patch_size);
    o.Set("hidden", info.hidden);
    o.Set("layers", info.layers);
    o.Set("heads", info.heads);
    o.Set("projectionDim", info.projection_dim);
    o.Set("concepts", info.concepts);
    o.Set("specialConcepts", info.special_concepts);
    o.Set("device", info.device);
    return o;
}

// A [batch, values / batch] tensor of `values`.
Napi::Object rows(Napi::Env env, int64_t batch, std::vector<float> && values) {
    sd::HostTensor t({batch, static_cast<int64_t>(values.size()) / batch});
    t.data = std::move(values);
    return make_js_tensor(env, std::move(t));
}

Napi::Value check_result(Napi::Env env, sd::SafetyCheck && r) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("imageEmbeds", rows(env, r.batch, std::move(r.image_embeds)));
    o.Set("conceptCosine", rows(env, r.batch, std::move(r.concept_cosine)));
    o.Set("specialCosine", rows(env, r.batch, std::move(r.special_cosine)));
    o.Set("conceptScores", rows(env, r.batch, std::move(r.concept_scores)));
    o.Set("specialScores", rows(env, r.batch, std::move(r.special_scores)));
    Napi::Array nsfw = Napi::Array::New(env, r.nsfw.size());
    for (size_t i = 0; i < r.nsfw.size(); ++i) nsfw.Set(static_cast<uint32_t>(i), Napi::Boolean::New(env, r.nsfw[i]));
    o.Set("nsfw", nsfw);
    return o;
}

Napi::Value check(const Napi::CallbackInfo & info, const std::shared_ptr<sd::SafetyChecker> & checker) {
    return run_on_tensor(
        info, checker, "pixels", [](const sd::SafetyChecker & c, const std::vector<int64_t> & shape) { c.check_input(shape); },
        [](sd::SafetyChecker & c, const sd::TensorView & pixels) { return c.check(pixels); }, check_result);
}

// loadSafetyChecker(path, { backend, weightType, threads }) → Promise<NativeSafetyChecker>
Napi::Value LoadSafetyChecker(const Napi::CallbackInfo & info) {
    return load_standalone_network<sd::SafetyChecker, sd::SafetyCheckerLoadOptions>(
        info, [](Napi::Env env, std::shared_ptr<sd::SafetyChecker> checker) {
            return standalone_network_object(env, std::move(checker), "safety checker", info_object, {{"check", check}});
        });
}

} // namespace

void register_safety_checker_binding(Napi::Env env, Napi::Object exports) {
    exports.Set("loadSafetyChecker", Napi::Function::New(env, LoadSafetyChecker, "loadSafetyChecker"));
}

} // namespace sdnode
