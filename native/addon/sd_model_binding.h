#pragma once
#include <napi.h>

namespace sdnode {

// loadModel → a native model object; convertModel.
void register_sd_model_binding(Napi::Env env, Napi::Object exports);

} // namespace sdnode
