#include "network_binding.h"

#include <vector>

#include "arguments.h"
#include "js_tensor.h"
#include "lora_binding.h"
#include "promise_worker.h"

namespace sdnode {

const std::shared_ptr<sd::Vae> & ModelNetworks::vae() {
    if (!vae_) vae_ = std::make_shared<sd::Vae>(model_);
    return vae_;
}

const std::shared_ptr<sd::UNet> & ModelNetworks::unet(bool flash_attention) {
    std::shared_ptr<sd::UNet> & slot = flash_attention ? unet_flash_ : unet_;
    if (!slot) slot = std::make_shared<sd::UNet>(model_, sd::UNetOptions{flash_attention});
    return slot;
}

const std::shared_ptr<TextEncoderHandle> & ModelNetworks::text_encoder() {
    if (!text_encoder_) text_encoder_ = std::make_shared<TextEncoderHandle>(model_);
    return text_encoder_;
}

namespace {

Napi::Value resolve_tensor(Napi::Env env, sd::HostTensor && result) { return make_js_tensor(env, std::move(result)); }

} // namespace

Napi::Value run_vae(const Napi::CallbackInfo & info, ModelNetworks & networks, sd::Vae::Direction direction) {
    Napi::Env env = info.Env();
    const char * argument = direction == sd::Vae::Direction::decode ? "latents" : "image";
    auto input = std::make_shared<JsTensorInput>(args::at(info, 0), argument);
    std::shared_ptr<sd::Vae> vae = networks.vae();
    args::guarded(env, [&] { vae->check_input(direction, input->view().shape); });
    return PromiseWorker<sd::HostTensor>::Start(
        env, [vae, input, direction] { return vae->run(direction, input->view()); }, resolve_tensor);
}

Napi::Value unet_predict(const Napi::CallbackInfo & info, ModelNetworks & networks) {
    Napi::Env env = info.Env();
    auto sample = std::make_shared<JsTensorInput>(args::at(info, 0), "sample");
    Napi::Value t = args::at(info, 1);
    std::vector<float> timesteps;
    if (t.IsNumber()) timesteps.push_back(t.As<Napi::Number>().FloatValue());
    else for (double v : args::numbers(t, "timestep")) timesteps.push_back(static_cast<float>(v));
    auto context = std::make_shared<JsTensorInput>(args::at(info, 2), "context");
    // Optional 4th argument { flashAttention: boolean (K/V in F16), loras: the LoRAs to run with }.
    Napi::Object options = args::options(args::at(info, 3));
    const bool flash = args::optional(options, "flashAttention", "options.", args::boolean).value_or(false);
    sd::LoraSet loras = lora_set_argument(options.Get("loras"), "options.loras");
    std::shared_ptr<sd::UNet> unet = networks.unet(flash);
    args::guarded(env, [&] { unet->validate(sample->view(), timesteps, context->view()); });
    return PromiseWorker<sd::HostTensor>::Start(
        env,
        [unet, sample, timesteps, context, loras = std::move(loras)] {
            return unet->predict(sample->view(), timesteps, context->view(), loras);
        },
        resolve_tensor);
}

} // namespace sdnode
