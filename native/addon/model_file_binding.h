#pragma once
#include <napi.h>

namespace sdnode {

void register_model_file_binding(Napi::Env env, Napi::Object exports);

} // namespace sdnode
