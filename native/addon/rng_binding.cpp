// Random draws as torch's CPU generator gives them. lib/rng.ts checks arguments; the checks
// here only keep bad calls from reaching the engine. Draws run on a worker thread (a latent of
// [2, 4, 128, 128] takes a few milliseconds, larger shapes more).
#include "rng_binding.h"

#include <cmath>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "js_tensor.h"
#include "promise_worker.h"
#include "sched/rng_torch.h"

namespace sdnode {

namespace {

// The most values one draw may produce (4 GiB of float32).
constexpr double kMaxElements = 1073741824.0;

std::vector<int64_t> shape_arg(const Napi::CallbackInfo & info, size_t index) {
    Napi::Env env = info.Env();
    if (info.Length() <= index || !info[index].IsArray()) {
        throw Napi::TypeError::New(env, "Expected shape to be an array of integers");
    }
    Napi::Array dims = info[index].As<Napi::Array>();
    std::vector<int64_t> shape;
    double count = 1;
    for (uint32_t i = 0; i < dims.Length(); ++i) {
        Napi::Value dim = dims.Get(i);
        double d = dim.IsNumber() ? dim.As<Napi::Number>().DoubleValue() : -1;
        if (!(d >= 1 && d <= kMaxElements && std::floor(d) == d)) {
            throw Napi::RangeError::New(env, "Expected shape to hold positive integers");
        }
        count *= d;
        shape.push_back(static_cast<int64_t>(d));
    }
    if (count > kMaxElements) {
        throw Napi::RangeError::New(env, "Expected at most 1073741824 values in a draw");
    }
    return shape;
}

uint64_t seed_arg(const Napi::CallbackInfo & info, size_t index) {
    Napi::Env env = info.Env();
    if (info.Length() <= index || !info[index].IsBigInt()) throw Napi::TypeError::New(env, "Expected seed to be a bigint");
    bool lossless = false;
    uint64_t seed = info[index].As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(env, "Expected seed between 0 and 18446744073709551615");
    return seed;
}

sd::TorchNormalKernel kernel_arg(const Napi::CallbackInfo & info, size_t index) {
    if (info.Length() <= index || info[index].IsUndefined()) return sd::TorchNormalKernel::kAvx2;
    std::string name = info[index].IsString() ? info[index].As<Napi::String>().Utf8Value() : "";
    if (name == "avx2") return sd::TorchNormalKernel::kAvx2;
    if (name == "scalar") return sd::TorchNormalKernel::kScalar;
    throw Napi::RangeError::New(info.Env(), "Expected kernel to be one of avx2, scalar");
}

const char * kernel_name(sd::TorchNormalKernel kernel) {
    return kernel == sd::TorchNormalKernel::kAvx2 ? "avx2" : "scalar";
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
        return Napi::String::New(info.Env(), kernel_name(shared_->generator.kernel()));
    }

    std::shared_ptr<SharedGenerator> shared_;
};

} // namespace

void register_rng_binding(Napi::Env env, Napi::Object exports) {
    exports.Set("torchRandn", Napi::Function::New(env, TorchRandn, "torchRandn"));
    exports.Set("TorchGenerator", TorchGeneratorWrap::Define(env));
}

} // namespace sdnode
