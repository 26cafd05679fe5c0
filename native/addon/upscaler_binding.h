#pragma once
// loadUpscaler(path, { backend, weightType, threads }) → Promise<NativeUpscaler>: Real-ESRGAN's
// RRDBNet on its own (sdcore/upscaler.h). NativeUpscaler is a plain object:
//   info() → { path, format, architecture, stateDict, scale, features, growth, blocks,
//              inputMultiple, device }
//   run(image [B,3,H,W] in [0, 1]) → Promise<Tensor [B,3,s·H,s·W]>   (one tile; lib/ tiles)
//   dispose()  frees it (work in flight keeps its own reference until it ends)
#include <napi.h>

namespace sdnode {

void register_upscaler_binding(Napi::Env env, Napi::Object exports);

} // namespace sdnode
