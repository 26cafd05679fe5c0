#pragma once
#include <napi.h>

namespace sdnode {

// loadModel → a NativeModel (model_wrap.h); convertModel; memoryStats.
void register_sd_model_binding(Napi::Env env, Napi::Object exports);

} // namespace sdnode
