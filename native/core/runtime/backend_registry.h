#pragma once
// ggml's backends are modules (one per CPU variant, plus Vulkan/CUDA when built) loaded at run
// time from the folder that holds the addon, and from GPU packages installed beside it. This file
// loads them once (load_backends, list_devices: sdcore/system.h) and picks devices for the engine.
#include <cstddef>
#include <string>
#include <vector>

#include "ggml-backend.h"
#include "sdcore/system.h"

namespace sd {

// The folder backends were loaded from; empty before load_backends.
std::string backend_dir();

std::vector<std::string> backend_names();

struct BackendModule {
    std::string backend;  // registry name, e.g. "CPU"
    std::string path;     // the file its code was loaded from (libggml-cpu-zen4.so), if known
};

// Each registry and the module file it lives in.
std::vector<BackendModule> backend_modules();

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
