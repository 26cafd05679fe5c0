// Entry point of sd_node.node. Each binding file registers its own functions.
#include <napi.h>

#include "addon_data.h"
#include "js_errors.h"
#include "model_binding.h"
#include "model_file_binding.h"
#include "rng_binding.h"
#include "depth_estimator_binding.h"
#include "safety_checker_binding.h"
#include "scheduler_binding.h"
#include "sd_model_binding.h"
#include "system_binding.h"
#include "tiny_vae_binding.h"
#include "tokenizer_binding.h"
#include "upscaler_binding.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    env.SetInstanceData(new sdnode::AddonData());
    sdnode::register_error_binding(env, exports);
    sdnode::register_system_binding(env, exports);
    sdnode::register_model_file_binding(env, exports);
    sdnode::register_model_binding(env, exports);
    sdnode::register_sd_model_binding(env, exports);
    sdnode::register_tiny_vae_binding(env, exports);
    sdnode::register_safety_checker_binding(env, exports);
    sdnode::register_depth_estimator_binding(env, exports);
    sdnode::register_tokenizer_binding(env, exports);
    sdnode::register_upscaler_binding(env, exports);
    sdnode::register_rng_binding(env, exports);
    sdnode::register_scheduler_binding(env, exports);
    return exports;
}

NODE_API_MODULE(sd_node, Init)
