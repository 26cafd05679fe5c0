#pragma once
#include <napi.h>

namespace sdnode {

// torchRandn(shape, seed, kernel) → Promise<tensor> and the TorchGenerator class (successive
// draws from one torch CPU generator), over sd::TorchCpuGenerator (sdcore/rng.h).
void register_rng_binding(Napi::Env env, Napi::Object exports);

} // namespace sdnode
