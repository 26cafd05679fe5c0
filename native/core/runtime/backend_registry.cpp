#include "runtime/backend_registry.h"

#include <algorithm>
#include <cctype>
#include <mutex>
#include <thread>

#if defined(_WIN32)
#include <windows.h>
#else
#include <dlfcn.h>
#endif

#include "runtime/heap_policy.h"
#include "runtime/log.h"
#include "sdcore/error.h"

namespace sd {

static std::once_flag g_load_once;
static std::string g_backend_dir;
static std::vector<ModuleLoadResult> g_module_results;
static std::vector<std::pair<std::string, std::string>> g_unavailable;

static std::string lowercase(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
    return text;
}

static bool registry_loaded(const std::string & lowercase_name) {
    for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
        if (lowercase(ggml_backend_reg_name(ggml_backend_reg_get(i))) == lowercase_name) return true;
    }
    return false;
}

static ModuleLoadResult load_module(const std::string & path) {
    ModuleLoadResult result;
    result.path = path;
    const size_t before = ggml_backend_reg_count();
    std::string said;
    ggml_backend_reg_t reg = nullptr;
    {
        QuietGgmlLog quiet(&said);
        reg = ggml_backend_load(path.c_str());
    }
    if (reg == nullptr) {
        while (!said.empty() && (said.back() == '\n' || said.back() == ' ')) said.pop_back();
        result.error = said.empty() ? "ggml could not load it" : said;
    } else if (ggml_backend_reg_count() == before) {
        result.error = std::string("a ") + ggml_backend_reg_name(reg) + " backend was already loaded";
    } else {
        result.backend = ggml_backend_reg_name(reg);
    }
    return result;
}

std::vector<ModuleLoadResult> load_backends(const BackendLoadRequest & request) {
    std::call_once(g_load_once, [&request] {
        log_init_from_env();
        keep_large_blocks_mapped();
        g_backend_dir = request.dir;
        g_unavailable = request.unavailable;
        for (auto & entry : g_unavailable) entry.first = lowercase(entry.first);
        {
            // What a GPU backend says while it looks for devices is not an error of ours: CUDA's
            // "failed to initialize CUDA" on a machine without a driver, for one. It shows with
            // SDNODE_LOG=debug; asking for the backend says it has no device (select_backend).
            QuietGgmlLog quiet;
            ggml_backend_load_all_from_path(request.dir.empty() ? nullptr : request.dir.c_str());
        }
        for (const std::string & path : request.modules) {
            g_module_results.push_back(load_module(path));
            const ModuleLoadResult & r = g_module_results.back();
            if (!r.error.empty()) log(LogLevel::debug, "backend module %s not loaded: %s", path.c_str(), r.error.c_str());
        }
        if (ggml_backend_dev_count() == 0) {
            log(LogLevel::error, "no ggml backend could be loaded from %s", request.dir.c_str());
        }
    });
    return g_module_results;
}

std::string backend_dir() { return g_backend_dir; }

// The file that holds `address`: a registry's name string lives in its module's image.
static std::string module_file_of(const void * address) {
#if defined(_WIN32)
    HMODULE module = nullptr;
    if (!GetModuleHandleExA(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                            static_cast<LPCSTR>(address), &module)) {
        return "";
    }
    char path[MAX_PATH];
    DWORD n = GetModuleFileNameA(module, path, MAX_PATH);
    return n == 0 ? "" : std::string(path, n);
#else
    Dl_info info;
    if (dladdr(address, &info) == 0 || info.dli_fname == nullptr) return "";
    return info.dli_fname;
#endif
}

std::vector<BackendModule> backend_modules() {
    std::vector<BackendModule> modules;
    for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
        const char * name = ggml_backend_reg_name(ggml_backend_reg_get(i));
        modules.push_back({name, module_file_of(name)});
    }
    return modules;
}

std::string library_load_error(const std::string & name) {
#if defined(_WIN32)
    HMODULE module = LoadLibraryA(name.c_str());
    if (module == nullptr) return "cannot load " + name + " (error " + std::to_string(GetLastError()) + ")";
    FreeLibrary(module);
    return "";
#else
    void * handle = dlopen(name.c_str(), RTLD_LAZY | RTLD_LOCAL);
    if (handle == nullptr) {
        const char * why = dlerror();
        return why != nullptr ? why : "cannot load " + name;
    }
    dlclose(handle);
    return "";
#endif
}

std::vector<std::string> backend_names() {
    std::vector<std::string> names;
    for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
        names.emplace_back(ggml_backend_reg_name(ggml_backend_reg_get(i)));
    }
    return names;
}

static const char * type_name(enum ggml_backend_dev_type type) {
    switch (type) {
        case GGML_BACKEND_DEVICE_TYPE_CPU:   return "cpu";
        case GGML_BACKEND_DEVICE_TYPE_GPU:   return "gpu";
        case GGML_BACKEND_DEVICE_TYPE_IGPU:  return "igpu";
        case GGML_BACKEND_DEVICE_TYPE_ACCEL: return "accel";
        default:                             return "unknown";
    }
}

std::vector<DeviceInfo> list_devices() {
    std::vector<DeviceInfo> devices;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        DeviceInfo info;
        info.name = ggml_backend_dev_name(dev);
        info.description = ggml_backend_dev_description(dev);
        info.type = type_name(ggml_backend_dev_type(dev));
        info.backend = ggml_backend_reg_name(ggml_backend_dev_backend_reg(dev));
        ggml_backend_dev_memory(dev, &info.memory_free, &info.memory_total);
        devices.push_back(std::move(info));
    }
    return devices;
}

ggml_backend_dev_t find_device(const std::string & name) {
    std::string present;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        if (lowercase(ggml_backend_dev_name(dev)) == lowercase(name)) return dev;
        present += (present.empty() ? "" : ", ") + std::string(ggml_backend_dev_name(dev));
    }
    throw Error("ERR_BACKEND_UNAVAILABLE",
                "Device \"" + name + "\" is not available; present: " + (present.empty() ? "none" : present));
}

static ggml_backend_dev_t first_device_of(const char * registry) {
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        if (lowercase(ggml_backend_reg_name(ggml_backend_dev_backend_reg(dev))) == registry) return dev;
    }
    return nullptr;
}

ggml_backend_dev_t select_device(const std::string & backend) {
    const std::string wanted = lowercase(backend);
    if (wanted == "auto") {
        for (const char * registry : {"cuda", "vulkan", "cpu"}) {
            if (ggml_backend_dev_t dev = first_device_of(registry)) return dev;
        }
    } else if (wanted == "cpu" || wanted == "cuda" || wanted == "vulkan") {
        if (ggml_backend_dev_t dev = first_device_of(wanted.c_str())) return dev;
    } else {
        throw RangeError("Expected backend to be one of auto, cpu, vulkan, cuda but received \"" + backend + "\"");
    }
    // Say which of the two it is: a binary without the backend needs a rebuild, a built backend
    // without a device needs a driver (or, for CPU-type Vulkan devices such as Mesa's lavapipe,
    // GGML_VK_VISIBLE_DEVICES, since ggml skips those unless named).
    const bool built = registry_loaded(wanted);
    std::string left_out;
    for (const auto & [name, reason] : g_unavailable) {
        if (name == wanted) left_out = reason;
    }
    std::string present;
    for (const DeviceInfo & d : list_devices()) present += (present.empty() ? "" : ", ") + d.name + " (" + d.backend + ")";
    std::string why = wanted == "auto"      ? "is not usable: no device is present"
                      : built               ? "is loaded but no " + backend + " device is present (SDNODE_LOG=debug shows what the backend found)"
                      : !left_out.empty()   ? "is not available: " + left_out
                                            : "is not built into this binary (build with --" + wanted + ")";
    throw Error("ERR_BACKEND_UNAVAILABLE",
                "The " + backend + " backend " + why + "; available: " + (present.empty() ? "none" : present));
}

ggml_backend_dev_t select_backend_or_device(const std::string & wanted) {
    const std::string kind = lowercase(wanted);
    if (kind == "auto" || kind == "cpu" || kind == "cuda" || kind == "vulkan") return select_device(wanted);
    return find_device(wanted);
}

int default_thread_count() {
    unsigned int n = std::thread::hardware_concurrency();
    return n == 0 ? 4 : static_cast<int>(n);
}

ggml_backend_t init_backend(ggml_backend_dev_t device, int threads) {
    ggml_backend_t backend = ggml_backend_dev_init(device, nullptr);
    if (backend == nullptr) {
        throw Error("ERR_BACKEND_INIT", std::string("Could not initialise device ") + ggml_backend_dev_name(device));
    }
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(device);
    auto set_threads = reinterpret_cast<ggml_backend_set_n_threads_t>(
        ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads"));
    if (set_threads != nullptr) {
        set_threads(backend, threads > 0 ? threads : default_thread_count());
    }
    return backend;
}

} // namespace sd
