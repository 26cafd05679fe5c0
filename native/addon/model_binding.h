#pragma once
#include <napi.h>

#include "sdcore.h"

namespace sdnode {

void register_model_binding(Napi::Env env, Napi::Object exports);

// The JS names of a model's networks, indexed by sd::Network: textEncoder, unet, vae.
extern const char * const kNetworkNames[sd::kNetworkCount];

// What detection concluded, as the JS `ModelDetails` object (family, variant, predictionType, …).
Napi::Object config_object(Napi::Env env, const sd::ModelConfig & config);

} // namespace sdnode
