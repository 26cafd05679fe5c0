#pragma once
// The addon's per-environment data (N-API instance data, one per Node environment or worker
// thread): JS values bindings must reach long after registration.
#include <napi.h>

namespace sdnode {

struct AddonData {
    Napi::FunctionReference model_class;    // what loadModel constructs
    Napi::FunctionReference error_factory;  // lib's (code, message, path) → StableDiffusionError, once set
};

// Created by the module's Init before any binding registers.
inline AddonData & addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

} // namespace sdnode
