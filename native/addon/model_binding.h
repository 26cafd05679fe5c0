#pragma once
#include <napi.h>

namespace sdnode {

void register_model_binding(Napi::Env env, Napi::Object exports);

} // namespace sdnode
