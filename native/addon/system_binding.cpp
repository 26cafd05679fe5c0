// init, probeLibrary, systemInfo, listDevices and the device check.
#include "system_binding.h"

#include <memory>
#include <string>

#include "arguments.h"
#include "js_tensor.h"
#include "promise_worker.h"
#include "sdcore.h"

namespace sdnode {

// init(dir, modules, unavailable) → [{ path, backend, error }] for each of `modules`.
// lib/binary decides what to load; this only passes it on.
static Napi::Value Init(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    sd::BackendLoadRequest request;
    request.dir = args::string(args::at(info, 0), "dir");
    request.modules = args::strings(args::at(info, 1), "modules");
    Napi::Object unavailable = args::object(args::at(info, 2), "unavailable");
    Napi::Array names = unavailable.GetPropertyNames();
    for (uint32_t i = 0; i < names.Length(); ++i) {
        const std::string name = names.Get(i).ToString().Utf8Value();
        request.unavailable.emplace_back(name, args::string(unavailable.Get(name), "unavailable." + name));
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
    return Napi::String::New(env, sd::library_load_error(args::string(args::at(info, 0), "the library name")));
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
    std::string device = args::string(args::at(info, 0), "the device name");
    auto a = std::make_shared<JsTensorInput>(args::at(info, 1), "a");
    auto b = std::make_shared<JsTensorInput>(args::at(info, 2), "b");
    int threads = args::int32(args::at(info, 3), "threads");
    return PromiseWorker<sd::HostTensor>::Start(
        env,
        [device, a, b, threads] { return sd::matmul_on_device(device, a->view(), b->view(), threads); },
        [](Napi::Env env, sd::HostTensor && result) -> Napi::Value { return make_js_tensor(env, std::move(result)); });
}

// returnFreeMemory(): hands heap memory freed by the worker threads back to the OS (a no-op but
// on glibc); lib calls it after each generation.
static Napi::Value ReturnFreeMemory(const Napi::CallbackInfo & info) {
    sd::return_free_memory();
    return info.Env().Undefined();
}

void register_system_binding(Napi::Env env, Napi::Object exports) {
    exports.Set("returnFreeMemory", Napi::Function::New(env, ReturnFreeMemory, "returnFreeMemory"));
    exports.Set("init", Napi::Function::New(env, Init, "init"));
    exports.Set("probeLibrary", Napi::Function::New(env, ProbeLibrary, "probeLibrary"));
    exports.Set("systemInfo", Napi::Function::New(env, SystemInfo, "systemInfo"));
    exports.Set("listDevices", Napi::Function::New(env, ListDevices, "listDevices"));
    exports.Set("deviceCheck", Napi::Function::New(env, DeviceCheck, "deviceCheck"));
}

} // namespace sdnode
