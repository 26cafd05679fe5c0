#pragma once
// sdcore: the diffusion engine's public face, the one header its callers include (the N-API
// addon; a C++ test, fuzz target or CLI). Plain C++17, no ggml type in it: ggml, the networks'
// graphs and our CPU kernels stay inside native/core. Errors are thrown as sd::Error (with a
// stable `code`) and sd::RangeError (sdcore/error.h).
//
//   sdcore/error.h         sd::Error, sd::RangeError
//   sdcore/tensor.h        TensorView (borrowed), HostTensor (owned): float32, NCHW
//   sdcore/system.h        backend modules and devices, system info, host memory, device check
//   sdcore/model_config.h  what a model is: family, variant, network shapes; weight types
//   sdcore/model_files.h   files without a model: inspect, read tensors, write GGUF, convert
//   sdcore/model.h         a loaded model (opaque handle): info, weights, memory, devices
//   sdcore/lora.h          LoRA and LyCORIS files applied per call
//   sdcore/networks.h      its networks: text encoder (and prompt encoding), UNet, VAE
//   sdcore/tiny_vae.h      TAESD, the tiny autoencoder loaded beside a model (previews, fast decode)
//   sdcore/upscaler.h      Real-ESRGAN's RRDBNet upscaler, loaded on its own
//   sdcore/safety_checker.h diffusers' safety checker (CLIP vision tower + concept scores), loaded beside a model
//   sdcore/depth_estimator.h DPT-Hybrid (MiDaS 3.0), the depth model's estimator, loaded beside it
//   sdcore/text.h          CLIP tokenizer, A1111 prompt syntax
//   sdcore/scheduler.h     noise schedulers (diffusers' maths) and their catalog
//   sdcore/rng.h           PyTorch's CPU random generator, bit for bit
#include "sdcore/depth_estimator.h"
#include "sdcore/error.h"
#include "sdcore/lora.h"
#include "sdcore/model.h"
#include "sdcore/model_config.h"
#include "sdcore/model_files.h"
#include "sdcore/networks.h"
#include "sdcore/rng.h"
#include "sdcore/safety_checker.h"
#include "sdcore/scheduler.h"
#include "sdcore/system.h"
#include "sdcore/tensor.h"
#include "sdcore/text.h"
#include "sdcore/tiny_vae.h"
#include "sdcore/upscaler.h"
