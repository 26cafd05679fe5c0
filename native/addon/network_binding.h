#pragma once
// A NativeModel's networks (model_wrap.h delegates here):
//   vaeDecode(latents [B,4,h,w]) → Promise<Tensor [B,3,8h,8w]>
//   vaeEncode(image [B,3,H,W]) → Promise<Tensor moments [B,8,H/8,W/8]> (mean then log-variance)
//   unetPredict(sample [B,C,h,w], timestep: number | number[], context [B,n,dim], { flashAttention, loras }?)
//     → Promise<Tensor [B,4,h,w]>
// and the text encoder's encodeText / encodePrompt (text_encoder_binding.h). Inputs are checked
// here, before the work is queued (TypeError, or the engine's RangeError), and again by the engine.
#include <memory>

#include <napi.h>

#include "sdcore.h"
#include "text_encoder_binding.h"

namespace sdnode {

// The networks of one model, each made on first use (each keeps its graph memory between calls).
// Workers hold their own references, so a network dropped while one runs is freed afterwards.
class ModelNetworks {
public:
    explicit ModelNetworks(std::shared_ptr<sd::Model> model) : model_(std::move(model)) {}

    const std::shared_ptr<sd::Model> & model() const { return model_; }
    const std::shared_ptr<sd::Vae> & vae();
    const std::shared_ptr<sd::UNet> & unet(bool flash_attention);
    const std::shared_ptr<TextEncoderHandle> & text_encoder();

private:
    std::shared_ptr<sd::Model> model_;
    std::shared_ptr<TextEncoderHandle> text_encoder_;
    std::shared_ptr<sd::UNet> unet_, unet_flash_;  // hold the UNet's graph allocator
    std::shared_ptr<sd::Vae> vae_;                 // holds the VAE's graph allocator
};

Napi::Value run_vae(const Napi::CallbackInfo & info, ModelNetworks & networks, sd::Vae::Direction direction);
Napi::Value unet_predict(const Napi::CallbackInfo & info, ModelNetworks & networks);

} // namespace sdnode
