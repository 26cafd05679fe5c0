#include "tiny_vae_binding.h"

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
struct TinyVaeHolder {
    std::shared_ptr<sd::TinyVae> vae;
};

std::shared_ptr<sd::TinyVae> held(Napi::Env env, const TinyVaeHolder & holder) {
    if (!holder.vae) {
        Napi::Error error = Napi::Error::New(env, "The tiny VAE has been disposed");
        error.Set("code", "ERR_DISPOSED");
        throw error;
    }
    return holder.vae;
}

Napi::Value info_object(Napi::Env env, const sd::TinyVaeInfo & info) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("path", info.path);
    o.Set("layout", info.layout);
    Napi::Array files = Napi::Array::New(env, info.files.size());
    for (size_t i = 0; i < info.files.size(); ++i) files.Set(static_cast<uint32_t>(i), info.files[i]);
    o.Set("files", files);
    o.Set("hasEncoder", info.has_encoder);
    o.Set("hasDecoder", info.has_decoder);
    o.Set("latentChannels", info.latent_channels);
    o.Set("downscaleFactor", info.downscale_factor);
    o.Set("device", info.device);
    return o;
}

Napi::Value run(const Napi::CallbackInfo & info, const TinyVaeHolder & holder, sd::TinyVae::Direction direction) {
    Napi::Env env = info.Env();
    std::shared_ptr<sd::TinyVae> vae = held(env, holder);
    auto input = std::make_shared<JsTensorInput>(args::at(info, 0), direction == sd::TinyVae::Direction::decode ? "latents" : "image");
    args::guarded(env, [&] { vae->check_input(direction, input->view().shape); });
    return PromiseWorker<sd::HostTensor>::Start(
        env, [vae, input, direction] { return vae->run(direction, input->view()); },
        [](Napi::Env env, sd::HostTensor && result) -> Napi::Value { return make_js_tensor(env, std::move(result)); });
}

Napi::Object tiny_vae_object(Napi::Env env, std::shared_ptr<sd::TinyVae> vae) {
    auto holder = std::make_shared<TinyVaeHolder>(TinyVaeHolder{std::move(vae)});
    Napi::Object o = Napi::Object::New(env);
    o.Set("info", Napi::Function::New(env, [holder](const Napi::CallbackInfo & info) {
              return info_object(info.Env(), held(info.Env(), *holder)->info());
          }, "info"));
    o.Set("decode", Napi::Function::New(env, [holder](const Napi::CallbackInfo & info) {
              return run(info, *holder, sd::TinyVae::Direction::decode);
          }, "decode"));
    o.Set("encode", Napi::Function::New(env, [holder](const Napi::CallbackInfo & info) {
              return run(info, *holder, sd::TinyVae::Direction::encode);
          }, "encode"));
    o.Set("dispose", Napi::Function::New(env, [holder](const Napi::CallbackInfo & info) {
              holder->vae.reset();
              return info.Env().Undefined();
          }, "dispose"));
    return o;
}

// loadTinyVae(path, { backend, weightType, threads }) → Promise<NativeTinyVae>
Napi::Value LoadTinyVae(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string path = args::path(args::at(info, 0));
    Napi::Object options = args::options(args::at(info, 1));
    sd::TinyVaeLoadOptions load;
    load.backend = args::optional(options, "backend", "options.", args::string).value_or("auto");
    std::string weight_type = args::optional(options, "weightType", "options.", args::string).value_or("");
    if (!weight_type.empty()) load.weight_type = args::guarded(env, [&] { return sd::parse_weight_type(weight_type); });
    load.threads = args::optional(options, "threads", "options.", args::int32).value_or(0);
    return PromiseWorker<std::shared_ptr<sd::TinyVae>>::Start(
        env, [path, load] { return sd::TinyVae::load(path, load); },
        [](Napi::Env env, std::shared_ptr<sd::TinyVae> && vae) -> Napi::Value { return tiny_vae_object(env, std::move(vae)); });
}

} // namespace

void register_tiny_vae_binding(Napi::Env env, Napi::Object exports) {
    exports.Set("loadTinyVae", Napi::Function::New(env, LoadTinyVae, "loadTinyVae"));
}

} // namespace sdnode
