#include "tiny_vae_binding.h"

#include <memory>

#include "standalone_network_object.h"

namespace sdnode {

namespace {

Napi::Value info_object(Napi::Env env, const sd::TinyVaeInfo & info) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("path", info.path);
    o.Set("layout", info.layout);
    o.Set("files", string_array(env, info.files));
    o.Set("hasEncoder", info.has_encoder);
    o.Set("hasDecoder", info.has_decoder);
    o.Set("latentChannels", info.latent_channels);
    o.Set("downscaleFactor", info.downscale_factor);
    o.Set("device", info.device);
    return o;
}

NetworkMethod<sd::TinyVae> run(sd::TinyVae::Direction direction) {
    return [direction](const Napi::CallbackInfo & info, const std::shared_ptr<sd::TinyVae> & vae) {
        return run_on_tensor(
            info, vae, direction == sd::TinyVae::Direction::decode ? "latents" : "image",
            [direction](const sd::TinyVae & v, const std::vector<int64_t> & shape) { v.check_input(direction, shape); },
            [direction](sd::TinyVae & v, const sd::TensorView & input) { return v.run(direction, input); });
    };
}

// loadTinyVae(path, { backend, weightType, threads }) → Promise<NativeTinyVae>
Napi::Value LoadTinyVae(const Napi::CallbackInfo & info) {
    return load_standalone_network<sd::TinyVae, sd::TinyVaeLoadOptions>(info, [](Napi::Env env, std::shared_ptr<sd::TinyVae> vae) {
        return standalone_network_object(env, std::move(vae), "tiny VAE", info_object,
                                         {{"decode", run(sd::TinyVae::Direction::decode)}, {"encode", run(sd::TinyVae::Direction::encode)}});
    });
}

} // namespace

void register_tiny_vae_binding(Napi::Env env, Napi::Object exports) {
    exports.Set("loadTinyVae", Napi::Function::New(env, LoadTinyVae, "loadTinyVae"));
}

} // namespace sdnode
