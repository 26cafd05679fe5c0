#pragma once
// LoRAs on a NativeModel (model_wrap.h delegates here; the engine's side is sdcore/lora.h):
//   prepareLoras(loras) → Promise<[{ path, format, textEncoderLayers, unetLayers, unmatched }]>
//   loraStatus() → { merged, runtime, backupBytes, adapterBytes, cachedFiles }
// and the `loras` argument the network calls take: [{ path, textEncoderWeight, unetWeight }].
#include <memory>

#include <napi.h>

#include "sdcore.h"

namespace sdnode {

// A LoRA list as the network calls take it; undefined is the empty set. TypeError for another
// type; the engine refuses weights that are not finite (RangeError).
sd::LoraSet lora_set_argument(const Napi::Value & value, const std::string & name);

Napi::Value prepare_loras(const Napi::CallbackInfo & info, const std::shared_ptr<sd::Model> & model);
Napi::Value lora_status(const Napi::CallbackInfo & info, const sd::Model & model);

} // namespace sdnode
