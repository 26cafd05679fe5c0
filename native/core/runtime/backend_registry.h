#pragma once
// ggml's backends are modules (one per CPU variant, plus Vulkan/CUDA when built) loaded at run
// time from the folder that holds the addon, and from GPU packages installed beside it. This file
// loads them once and describes devices.
#include <cstddef>
#include <string>
#include <vector>

#include "ggml-backend.h"

namespace sd {

struct DeviceInfo {
    std::string name;         // ggml's device name, e.g. "CPU", "Vulkan0", "CUDA0"
    std::string description;  // e.g. the CPU model or GPU name
    std::string type;         // "cpu", "gpu", "igpu" or "accel"
    std::string backend;      // the registry that owns it, e.g. "CPU", "Vulkan"
    size_t memory_free = 0;
    size_t memory_total = 0;
};

struct BackendLoadRequest {
    // The main folder: every backend module found there is loaded (the best CPU variant for this
    // CPU; the GPU modules of a source build).
    std::string dir;
    // Further module files, e.g. the libggml-vulkan.so of a GPU package, loaded in this order.
    std::vector<std::string> modules;
    // Backends left out on purpose, lowercase name → why (e.g. {"cuda", "no CUDA driver found"}):
    // ERR_BACKEND_UNAVAILABLE says it when that backend is asked for.
    std::vector<std::pair<std::string, std::string>> unavailable;
};

struct ModuleLoadResult {
    std::string path;
    std::string backend;  // the registry it added ("Vulkan"); empty when it failed
    std::string error;    // why it failed (ggml's own message, e.g. a missing library)
};

// Loads the backends of `request`. Safe to call more than once and from any thread; only the
// first call loads, later ones return the first call's results.
std::vector<ModuleLoadResult> load_backends(const BackendLoadRequest & request);

// The folder backends were loaded from; empty before load_backends.
std::string backend_dir();

std::vector<std::string> backend_names();

struct BackendModule {
    std::string backend;  // registry name, e.g. "CPU"
    std::string path;     // the file its code was loaded from (libggml-cpu-zen4.so), if known
};

// Each registry and the module file it lives in.
std::vector<BackendModule> backend_modules();

// Empty when the shared library `name` (e.g. "libvulkan.so.1") can be loaded, else why not.
// Loads and unloads it: callers check for a driver before trying a backend module in a child.
std::string library_load_error(const std::string & name);
std::vector<DeviceInfo> list_devices();

// The device named `name` (case-insensitive), or throws sd::Error ERR_BACKEND_UNAVAILABLE that
// lists the devices present.
ggml_backend_dev_t find_device(const std::string & name);

// The device for a `backend` option: "cpu", "vulkan", "cuda", or "auto" (CUDA, then Vulkan, then
// the CPU, among what is built and present). Throws ERR_BACKEND_UNAVAILABLE listing what is.
ggml_backend_dev_t select_device(const std::string & backend);

// A backend as select_device takes it, or a device's name as list_devices gives it ("Vulkan1"):
// what a network's placement option may say. Throws ERR_BACKEND_UNAVAILABLE listing what is present.
ggml_backend_dev_t select_backend_or_device(const std::string & wanted);

// Initialises a backend on `device`; for CPU backends sets the thread count (0 = default).
ggml_backend_t init_backend(ggml_backend_dev_t device, int threads);

int default_thread_count();

} // namespace sd
