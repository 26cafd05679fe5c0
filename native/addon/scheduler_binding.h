#pragma once
#include <napi.h>

namespace sdnode {

// Scheduler (a class over sd::Scheduler): noise schedulers for the denoising loop.
void register_scheduler_binding(Napi::Env env, Napi::Object exports);

} // namespace sdnode
