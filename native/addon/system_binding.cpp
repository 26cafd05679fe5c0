// init, systemInfo, listDevices and the device check.
#include "system_binding.h"

#include <memory>
#include <string>

#include "backend_registry.h"
#include "device_check.h"
#include "js_tensor.h"
#include "promise_worker.h"
#include "system_info.h"

namespace sdnode {

static Napi::Value Init(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "Expected the backend folder as a string");
    sd::load_backends(info[0].As<Napi::String>().Utf8Value());
    return env.Undefined();
}

static Napi::Value SystemInfo(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    sd::SystemInfo system = sd::system_info();
    Napi::Object result = Napi::Object::New(env);
    result.Set("version", system.version);
    result.Set("ggmlVersion", system.ggml_version);
    result.Set("ggmlCommit", system.ggml_commit);
    result.Set("backendDir", system.backend_dir);
    Napi::Array backends = Napi::Array::New(env, system.backends.size());
    for (size_t i = 0; i < system.backends.size(); ++i) backends.Set(static_cast<uint32_t>(i), system.backends[i]);
    result.Set("backends", backends);
    Napi::Object features = Napi::Object::New(env);
    for (const auto & [name, value] : system.cpu_features) features.Set(name, value);
    result.Set("cpuFeatures", features);
    result.Set("defaultThreads", system.default_threads);
    return result;
}

static Napi::Value ListDevices(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::vector<sd::DeviceInfo> devices = sd::list_devices();
    Napi::Array result = Napi::Array::New(env, devices.size());
    for (size_t i = 0; i < devices.size(); ++i) {
        Napi::Object device = Napi::Object::New(env);
        device.Set("name", devices[i].name);
        device.Set("description", devices[i].description);
        device.Set("type", devices[i].type);
        device.Set("backend", devices[i].backend);
        device.Set("memoryFree", static_cast<double>(devices[i].memory_free));
        device.Set("memoryTotal", static_cast<double>(devices[i].memory_total));
        result.Set(static_cast<uint32_t>(i), device);
    }
    return result;
}

// deviceCheck(deviceName, a, b, threads) → Promise<Tensor>
static Napi::Value DeviceCheck(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "Expected a device name string");
    if (!info[3].IsNumber()) throw Napi::TypeError::New(env, "Expected a thread count");
    std::string device = info[0].As<Napi::String>().Utf8Value();
    auto a = std::make_shared<JsTensorInput>(info[1], "a");
    auto b = std::make_shared<JsTensorInput>(info[2], "b");
    int threads = info[3].As<Napi::Number>().Int32Value();
    return PromiseWorker<sd::HostTensor>::Start(
        env,
        [device, a, b, threads] { return sd::matmul_on_device(device, a->view(), b->view(), threads); },
        [](Napi::Env env, sd::HostTensor && result) -> Napi::Value { return make_js_tensor(env, std::move(result)); });
}

void register_system_binding(Napi::Env env, Napi::Object exports) {
    exports.Set("init", Napi::Function::New(env, Init, "init"));
    exports.Set("systemInfo", Napi::Function::New(env, SystemInfo, "systemInfo"));
    exports.Set("listDevices", Napi::Function::New(env, ListDevices, "listDevices"));
    exports.Set("deviceCheck", Napi::Function::New(env, DeviceCheck, "deviceCheck"));
}

} // namespace sdnode
