#include "model_wrap.h"

#include "addon_data.h"

#include "lora_binding.h"
#include "model_info_binding.h"
#include "network_binding.h"
#include "text_encoder_binding.h"

namespace sdnode {

namespace {

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
public:
    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "NativeModel",
                           {InstanceMethod<&ModelWrap::Info>("info"), InstanceMethod<&ModelWrap::Weights>("weights"),
                            InstanceMethod<&ModelWrap::ReadWeight>("readWeight"),
                            InstanceMethod<&ModelWrap::Memory>("memory"),
                            InstanceMethod<&ModelWrap::MemoryUsage>("memoryUsage"),
                            InstanceMethod<&ModelWrap::Devices>("devices"),
                            InstanceMethod<&ModelWrap::VaeDecode>("vaeDecode"),
                            InstanceMethod<&ModelWrap::VaeEncode>("vaeEncode"),
                            InstanceMethod<&ModelWrap::UnetPredict>("unetPredict"),
                            InstanceMethod<&ModelWrap::EncodeText>("encodeText"),
                            InstanceMethod<&ModelWrap::EncodePrompt>("encodePrompt"),
                            InstanceMethod<&ModelWrap::PrepareLoras>("prepareLoras"),
                            InstanceMethod<&ModelWrap::LoraStatus>("loraStatus"),
                            InstanceMethod<&ModelWrap::Dispose>("dispose")});
    }

    // Only new_model_object creates these: it passes the loaded model as an External.
    explicit ModelWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<ModelWrap>(info) {
        if (info.Length() != 1 || !info[0].IsExternal()) {
            throw Napi::TypeError::New(info.Env(), "Models are created by StableDiffusion.load()");
        }
        auto * loaded = info[0].As<Napi::External<std::shared_ptr<sd::Model>>>().Data();
        networks_ = std::make_unique<ModelNetworks>(std::move(*loaded));
    }

private:
    ModelNetworks & networks(Napi::Env env) {
        if (!networks_) {
            Napi::Error error = Napi::Error::New(env, "The model has been disposed");
            error.Set("code", "ERR_DISPOSED");
            throw error;
        }
        return *networks_;
    }
    const sd::Model & model(Napi::Env env) { return *networks(env).model(); }

    Napi::Value Info(const Napi::CallbackInfo & info) { return model_info(info, model(info.Env())); }
    Napi::Value Weights(const Napi::CallbackInfo & info) { return model_weights(info, model(info.Env())); }
    Napi::Value ReadWeight(const Napi::CallbackInfo & info) { return read_model_weight(info, networks(info.Env()).model()); }
    Napi::Value Memory(const Napi::CallbackInfo & info) { return model_memory(info, model(info.Env())); }
    Napi::Value MemoryUsage(const Napi::CallbackInfo & info) { return model_memory_usage(info, model(info.Env())); }
    Napi::Value Devices(const Napi::CallbackInfo & info) { return model_devices(info, model(info.Env())); }

    Napi::Value VaeDecode(const Napi::CallbackInfo & info) { return run_vae(info, networks(info.Env()), sd::Vae::Direction::decode); }
    Napi::Value VaeEncode(const Napi::CallbackInfo & info) { return run_vae(info, networks(info.Env()), sd::Vae::Direction::encode); }
    Napi::Value UnetPredict(const Napi::CallbackInfo & info) { return unet_predict(info, networks(info.Env())); }
    Napi::Value EncodeText(const Napi::CallbackInfo & info) { return encode_text(info, networks(info.Env()).text_encoder()); }
    Napi::Value EncodePrompt(const Napi::CallbackInfo & info) { return encode_prompt(info, networks(info.Env()).text_encoder()); }

    Napi::Value PrepareLoras(const Napi::CallbackInfo & info) { return prepare_loras(info, networks(info.Env()).model()); }
    Napi::Value LoraStatus(const Napi::CallbackInfo & info) { return lora_status(info, model(info.Env())); }

    Napi::Value Dispose(const Napi::CallbackInfo & info) {
        networks_.reset();
        return info.Env().Undefined();
    }

    std::unique_ptr<ModelNetworks> networks_;  // null once disposed
};

} // namespace

Napi::Function define_model_class(Napi::Env env) { return ModelWrap::Define(env); }

Napi::Value new_model_object(Napi::Env env, std::shared_ptr<sd::Model> model) {
    auto external = Napi::External<std::shared_ptr<sd::Model>>::New(env, &model);
    return addon_data(env).model_class.New({external});
}

} // namespace sdnode
