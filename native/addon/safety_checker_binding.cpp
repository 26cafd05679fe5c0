#include "safety_checker_binding.h"

#include <memory>
#include <string>

#include "arguments.h"
#include "js_tensor.h"
#include "promise_worker.h"
#include "sdcore.h"

namespace sdnode {

namespace {

// What the object's methods share; dispose() empties it.
struct SafetyCheckerHolder {
    std::shared_ptr<sd::SafetyChecker> checker;
};

std::shared_ptr<sd::SafetyChecker> held(Napi::Env env, const SafetyCheckerHolder & holder) {
    if (!holder.checker) {
        Napi::Error error = Napi::Error::New(env, "The safety checker has been disposed");
        error.Set("code", "ERR_DISPOSED");
        throw error;
    }
    return holder.checker;
}

Napi::Value info_object(Napi::Env env, const sd::SafetyCheckerInfo & info) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("path", info.path);
    Napi::Array files = Napi::Array::New(env, info.files.size());
    for (size_t i = 0; i < info.files.size(); ++i) files.Set(static_cast<uint32_t>(i), info.files[i]);
    o.Set("files", files);
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

Napi::Object safety_checker_object(Napi::Env env, std::shared_ptr<sd::SafetyChecker> checker) {
    auto holder = std::make_shared<SafetyCheckerHolder>(SafetyCheckerHolder{std::move(checker)});
    Napi::Object o = Napi::Object::New(env);
    o.Set("info", Napi::Function::New(env, [holder](const Napi::CallbackInfo & info) {
              return info_object(info.Env(), held(info.Env(), *holder)->info());
          }, "info"));
    o.Set("check", Napi::Function::New(env, [holder](const Napi::CallbackInfo & info) {
              Napi::Env env = info.Env();
              std::shared_ptr<sd::SafetyChecker> checker = held(env, *holder);
              auto input = std::make_shared<JsTensorInput>(args::at(info, 0), "pixels");
              args::guarded(env, [&] { checker->check_input(input->view().shape); });
              return PromiseWorker<sd::SafetyCheck>::Start(
                  env, [checker, input] { return checker->check(input->view()); },
                  [](Napi::Env env, sd::SafetyCheck && result) { return check_result(env, std::move(result)); });
          }, "check"));
    o.Set("dispose", Napi::Function::New(env, [holder](const Napi::CallbackInfo & info) {
              holder->checker.reset();
              return info.Env().Undefined();
          }, "dispose"));
    return o;
}

// loadSafetyChecker(path, { backend, weightType, threads }) → Promise<NativeSafetyChecker>
Napi::Value LoadSafetyChecker(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string path = args::path(args::at(info, 0));
    Napi::Object options = args::options(args::at(info, 1));
    sd::SafetyCheckerLoadOptions load;
    load.backend = args::optional(options, "backend", "options.", args::string).value_or("auto");
    std::string weight_type = args::optional(options, "weightType", "options.", args::string).value_or("");
    if (!weight_type.empty()) load.weight_type = args::guarded(env, [&] { return sd::parse_weight_type(weight_type); });
    load.threads = args::optional(options, "threads", "options.", args::int32).value_or(0);
    return PromiseWorker<std::shared_ptr<sd::SafetyChecker>>::Start(
        env, [path, load] { return sd::SafetyChecker::load(path, load); },
        [](Napi::Env env, std::shared_ptr<sd::SafetyChecker> && checker) -> Napi::Value {
            return safety_checker_object(env, std::move(checker));
        });
}

} // namespace

void register_safety_checker_binding(Napi::Env env, Napi::Object exports) {
    exports.Set("loadSafetyChecker", Napi::Function::New(env, LoadSafetyChecker, "loadSafetyChecker"));
}

} // namespace sdnode
