#pragma once
// loadDepthEstimator(path, { backend, weightType, threads }) → Promise<NativeDepthEstimator>:
// DPT-Hybrid beside a depth model (sdcore/depth_estimator.h). A plain object:
//   info()     → { path, layout, files, imageSize, hidden, layers, heads, fusion, device }
//   estimate(pixels [B,3,S,S], as DPTImageProcessor gives them) → Promise<Tensor [B,S,S]>
//   dispose()  frees it (work in flight keeps its own reference until it ends)
#include <napi.h>

namespace sdnode {

void register_depth_estimator_binding(Napi::Env env, Napi::Object exports);

} // namespace sdnode
