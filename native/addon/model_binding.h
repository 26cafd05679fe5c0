#pragma once
#include <string>

#include <napi.h>

#include "model/detection.h"

namespace sdnode {

void register_model_binding(Napi::Env env, Napi::Object exports);

// A path argument: a non-empty string without NUL bytes (TypeError / RangeError otherwise).
std::string path_argument(const Napi::Value & value);

// What detection concluded, as the JS `ModelDetails` object (family, variant, predictionType, …).
Napi::Object config_object(Napi::Env env, const sd::ModelConfig & config);

} // namespace sdnode
