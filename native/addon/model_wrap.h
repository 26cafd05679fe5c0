#pragma once
// NativeModel: a loaded model as a JS object (the native half of StableDiffusion). It holds the
// model and its networks and hands each method to the binding of its concern:
// model_info_binding.h (info, weights, memory, devices), network_binding.h (VAE, UNet) and
// text_encoder_binding.h (encodeText, encodePrompt). dispose() drops them; work in flight holds
// its own references, so the memory is freed when that work finishes.
#include <memory>

#include <napi.h>

#include "sdcore.h"

namespace sdnode {

// The NativeModel class. Only loadModel makes instances: new_model_object wraps a loaded model.
Napi::Function define_model_class(Napi::Env env);
Napi::Value new_model_object(Napi::Env env, std::shared_ptr<sd::Model> model);

} // namespace sdnode
