#pragma once
// The process and its machine: ggml's backend modules and devices, what was built and loaded,
// host memory, and a small computation that proves a device works.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "sdcore/tensor.h"

namespace sd {

// ---- backends (runtime/backend_registry.cpp) ----
// ggml's backends are modules (one per CPU variant, plus Vulkan/CUDA when built) loaded at run
// time from the folder that holds the addon, and from GPU packages installed beside it.

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

// Empty when the shared library `name` (e.g. "libvulkan.so.1") can be loaded, else why not.
// Loads and unloads it: callers check for a driver before trying a backend module in a child.
std::string library_load_error(const std::string & name);

struct DeviceInfo {
    std::string name;         // ggml's device name, e.g. "CPU", "Vulkan0", "CUDA0"
    std::string description;  // e.g. the CPU model or GPU name
    std::string type;         // "cpu", "gpu", "igpu" or "accel"
    std::string backend;      // the registry that owns it, e.g. "CPU", "Vulkan"
    size_t memory_free = 0;
    size_t memory_total = 0;
};

std::vector<DeviceInfo> list_devices();

// ---- what was built and loaded (runtime/system_info.cpp) ----

struct SystemInfo {
    std::string version;        // this package's version
    std::string ggml_version;
    std::string ggml_commit;
    std::string backend_dir;
    std::vector<std::string> backends;  // registries loaded, e.g. {"CPU", "Vulkan"}
    // The module file each registry was loaded from, in the order of `backends`.
    std::vector<std::string> backend_paths;
    // Features the loaded CPU variant was compiled for and the CPU has (AVX2, AVX512, …).
    std::vector<std::pair<std::string, std::string>> cpu_features;
    int default_threads = 0;
};

SystemInfo system_info();

// ---- host memory (runtime/memory_stats.cpp) ----
// The process's host memory as the OS counts it: resident set now and its peak (Linux
// /proc/self/status VmRSS / VmHWM). The peak can be reset where the kernel allows writing to
// /proc/self/clear_refs, so that one stage of a pipeline can be measured on its own.

struct HostMemory {
    uint64_t rss = 0;    // bytes resident now (0 where unknown)
    uint64_t peak = 0;   // bytes: the largest resident set since start or the last reset
    bool known = false;  // false where the platform does not say
};

HostMemory host_memory();

// Resets the peak to the current resident set. Returns false where that is not possible (then
// `peak` keeps counting from the start of the process).
bool reset_host_peak();

// ---- device check (runtime/device_check.cpp) ----
// A small matrix product run through ggml on a chosen device: proves that a backend loads,
// allocates and computes, and lets tests compare a device's arithmetic with a reference.

// a: [M, K], b: [K, N] → [M, N]. Throws sd::RangeError on shapes that do not fit, sd::Error
// ERR_BACKEND_UNAVAILABLE for an unknown device.
HostTensor matmul_on_device(const std::string & device_name, const TensorView & a, const TensorView & b, int threads);

} // namespace sd
