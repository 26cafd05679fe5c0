// Random draws as torch's CPU generator gives them. lib/rng.ts checks arguments; the checks
// here (arguments.h, the engine's check_draw_shape) only keep bad calls from reaching the engine.
// Draws run on a worker thread (a latent of [2, 4, 128, 128] takes a few milliseconds, larger
// shapes more).
#include "rng_binding.h"

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "arguments.h"
#include "js_tensor.h"
#include "promise_worker.h"
#include "sdcore.h"

namespace sdnode {

namespace {

// shape: integers the engine can draw (check_draw_shape), checked before the work is queued.
std::vector<int64_t> shape_arg(const Napi::CallbackInfo & info, size_t index) {
    std::vector<int64_t> shape = args::int64_list(args::at(info, index), "shape");
    args::guarded(info.Env(), [&] { sd::check_draw_shape(shape); });
    return shape;
}

uint64_t seed_arg(const Napi::CallbackInfo & info, size_t index) { return args::uint64(args::at(info, index), "seed"); }

sd::TorchNormalKernel kernel_arg(const Napi::CallbackInfo & info, size_t index) {
    Napi::Value value = args::at(info, index);
    if (value.IsUndefined()) return sd::TorchNormalKernel::kAvx2;
    std::string name = args::string(value, "kernel");
    return args::guarded(info.Env(), [&] { return sd::torch_normal_kernel_from_name(name); });
}

Napi::Value resolve_tensor(Napi::Env env, sd::HostTensor && tensor) {
    return make_js_tensor(env, std::move(tensor));
}

// torchRandn(shape, seed: bigint, kernel?) → Promise<{ shape, data }>
Napi::Value TorchRandn(const Napi::CallbackInfo & info) {
    std::vector<int64_t> shape = shape_arg(info, 0);
    uint64_t seed = seed_arg(info, 1);
    sd::TorchNormalKernel kernel = kernel_arg(info, 2);
    return PromiseWorker<sd::HostTensor>::Start(
        info.Env(), [shape, seed, kernel] { return sd::torch_randn(shape, seed, kernel); }, resolve_tensor);
}

// A generator shared with the workers drawing from it. JS (lib/rng.ts) queues the draws so
// they run one after another in call order; the mutex only guards against misuse.
struct SharedGenerator {
    std::mutex mutex;
    sd::TorchCpuGenerator generator;

    SharedGenerator(uint64_t seed, sd::TorchNormalKernel kernel) : generator(seed, kernel) {}
};

class TorchGeneratorWrap : public Napi::ObjectWrap<TorchGeneratorWrap> {
public:
    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "TorchGenerator",
                           {
                               InstanceMethod<&TorchGeneratorWrap::Randn>("randn"),
                               InstanceMethod<&TorchGeneratorWrap::ManualSeed>("manualSeed"),
                               InstanceMethod<&TorchGeneratorWrap::InitialSeed>("initialSeed"),
                               InstanceMethod<&TorchGeneratorWrap::Kernel>("kernel"),
                           });
    }

    // new TorchGenerator(seed: bigint, kernel?)
    explicit TorchGeneratorWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<TorchGeneratorWrap>(info) {
        uint64_t seed = seed_arg(info, 0);
        shared_ = std::make_shared<SharedGenerator>(seed, kernel_arg(info, 1));
    }

private:
    // randn(shape) → Promise<{ shape, data }>
    Napi::Value Randn(const Napi::CallbackInfo & info) {
        std::vector<int64_t> shape = shape_arg(info, 0);
        std::shared_ptr<SharedGenerator> shared = shared_;
        return PromiseWorker<sd::HostTensor>::Start(
            info.Env(),
            [shared, shape] {
                std::lock_guard<std::mutex> lock(shared->mutex);
                return shared->generator.randn(shape);
            },
            resolve_tensor);
    }

    // manualSeed(seed: bigint)
    Napi::Value ManualSeed(const Napi::CallbackInfo & info) {
        uint64_t seed = seed_arg(info, 0);
        std::lock_guard<std::mutex> lock(shared_->mutex);
        shared_->generator.manual_seed(seed);
        return info.Env().Undefined();
    }

    // initialSeed() → bigint
    Napi::Value InitialSeed(const Napi::CallbackInfo & info) {
        std::lock_guard<std::mutex> lock(shared_->mutex);
        return Napi::BigInt::New(info.Env(), shared_->generator.initial_seed());
    }

    // kernel() → 'avx2' | 'scalar'
    Napi::Value Kernel(const Napi::CallbackInfo & info) {
        return Napi::String::New(info.Env(), sd::torch_normal_kernel_name(shared_->generator.kernel()));
    }

    std::shared_ptr<SharedGenerator> shared_;
};

} // namespace

void register_rng_binding(Napi::Env env, Napi::Object exports) {
    exports.Set("torchRandn", Napi::Function::New(env, TorchRandn, "torchRandn"));
    exports.Set("TorchGenerator", TorchGeneratorWrap::Define(env));
}

} // namespace sdnode
