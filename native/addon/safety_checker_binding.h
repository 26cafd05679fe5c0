#pragma once
// loadSafetyChecker(path, { backend, weightType, threads }) → Promise<NativeSafetyChecker>:
// diffusers' safety checker beside a model (sdcore/safety_checker.h). A plain object:
//   info() → { path, files, imageSize, patchSize, hidden, layers, heads, projectionDim, concepts,
//              specialConcepts, device }
//   check(pixels [B,3,S,S], CLIP-normalised) → Promise<{ imageEmbeds [B,P], conceptCosine [B,C],
//              specialCosine [B,K], conceptScores [B,C], specialScores [B,K], nsfw: boolean[] }>
//   dispose()  frees it (work in flight keeps its own reference until it ends)
#include <napi.h>

namespace sdnode {

void register_safety_checker_binding(Napi::Env env, Napi::Object exports);

} // namespace sdnode
