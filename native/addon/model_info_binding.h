#pragma once
// What a NativeModel says about itself (model_wrap.h delegates here):
//   info() → ModelDetails (config, layout, format, path)
//   weights() → [{ name, type, shape }]; readWeight(name, loras?) → Promise<Tensor> (float32)
//   memory() → weight bytes per network; memoryUsage(resetPeak?) → host and device memory
//   devices() → { textEncoder, unet, vae }: { name, description, backend, threads }
// and memoryStats({ resetPeak }?) → the process's host memory, which needs no model.
#include <memory>

#include <napi.h>

#include "sdcore.h"

namespace sdnode {

Napi::Value model_info(const Napi::CallbackInfo & info, const sd::Model & model);
Napi::Value model_weights(const Napi::CallbackInfo & info, const sd::Model & model);
Napi::Value read_model_weight(const Napi::CallbackInfo & info, const std::shared_ptr<sd::Model> & model);
Napi::Value model_memory(const Napi::CallbackInfo & info, const sd::Model & model);
Napi::Value model_memory_usage(const Napi::CallbackInfo & info, const sd::Model & model);
Napi::Value model_devices(const Napi::CallbackInfo & info, const sd::Model & model);

Napi::Value memory_stats(const Napi::CallbackInfo & info);

} // namespace sdnode
