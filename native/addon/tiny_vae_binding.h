#pragma once
// loadTinyVae(path, { backend, weightType, threads }) → Promise<NativeTinyVae>: TAESD beside a
// model (sdcore/tiny_vae.h). NativeTinyVae is a plain object:
//   info() → { path, layout, files, hasEncoder, hasDecoder, latentChannels, downscaleFactor, device }
//   decode(latents [B,4,h,w]) → Promise<Tensor [B,3,8h,8w]>   (latents as the sampler holds them)
//   encode(image [B,3,H,W] in [-1, 1]) → Promise<Tensor [B,4,H/8,W/8]>
//   dispose()  frees it (work in flight keeps its own reference until it ends)
#include <napi.h>

namespace sdnode {

void register_tiny_vae_binding(Napi::Env env, Napi::Object exports);

} // namespace sdnode
