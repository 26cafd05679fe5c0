// init, probeLibrary, systemInfo, listDevices and the device check.
#include "system_binding.h"

#include <memory>
#include <string>

#include "runtime/backend_registry.h"
#include "runtime/device_check.h"
#include "js_tensor.h"
#include "promise_worker.h"
#include "runtime/system_info.h"

namespace sdnode {

// init(dir, modules, unavailable) → [{ path, backend, error }] for each of `modules`.
// lib/binary decides what to load; this only passes it on.
static Napi::Value Init(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsString() || !info[1].IsArray() || !info[2].IsObject()) {
        throw Napi::TypeError::New(env, "Expected init(dir: string, modules: string[], unavailable: Record<string, string>)");
    }
    sd::BackendLoadRequest request;
    request.dir = info[0].As<Napi::String>().Utf8Value();
    Napi::Array modules = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < modules.Length(); ++i) {
        Napi::Value path = modules.Get(i);
        if (!path.IsString()) throw Napi::TypeError::New(env, "Expected each module path to be a string");
        request.modules.push_back(path.As<Napi::String>().Utf8Value());
    }
    Napi::Object unavailable = info[2].As<Napi::Object>();
    Napi::Array names = unavailable.GetPropertyNames();
    for (uint32_t i = 0; i < names.Length(); ++i) {
        Napi::Value reason = unavailable.Get(names.Get(i));
        if (!reason.IsString()) throw Napi::TypeError::New(env, "Expected each reason to be a string");
        request.unavailable.emplace_back(names.Get(i).ToString().Utf8Value(), reason.As<Napi::String>().Utf8Value());
    }
    std::vector<sd::ModuleLoadResult> results = sd::load_backends(request);
    Napi::Array out = Napi::Array::New(env, results.size());
    for (size_t i = 0; i < results.size(); ++i) {
        Napi::Object r = Napi::Object::New(env);
        r.Set("path", results[i].path);
        r.Set("backend", results[i].backend);
        r.Set("error", results[i].error);
        out.Set(static_cast<uint32_t>(i), r);
    }
    return out;
}

// probeLibrary(name) → '' when the shared library loads, else why not.
static Napi::Value ProbeLibrary(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "Expected a library name string");
    return Napi::String::New(env, sd::library_load_error(info[0].As<Napi::String>().Utf8Value()));
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
    Napi::Array paths = Napi::Array::New(env, system.backend_paths.size());
    for (size_t i = 0; i < system.backend_paths.size(); ++i) paths.Set(static_cast<uint32_t>(i), system.backend_paths[i]);
    result.Set("backendPaths", paths);
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
    exports.Set("probeLibrary", Napi::Function::New(env, ProbeLibrary, "probeLibrary"));
    exports.Set("systemInfo", Napi::Function::New(env, SystemInfo, "systemInfo"));
    exports.Set("listDevices", Napi::Function::New(env, ListDevices, "listDevices"));
    exports.Set("deviceCheck", Napi::Function::New(env, DeviceCheck, "deviceCheck"));
}

} // namespace sdnode
