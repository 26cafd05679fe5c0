#include "sdcore/system.h"

#include "ggml-backend.h"
#include "ggml.h"
#include "runtime/backend_registry.h"

#ifndef SDNODE_VERSION
#define SDNODE_VERSION "0.0.0"
#endif

namespace sd {

SystemInfo system_info() {
    SystemInfo info;
    info.version = SDNODE_VERSION;
    info.ggml_version = ggml_version();
    info.ggml_commit = ggml_commit();
    info.backend_dir = backend_dir();
    for (const BackendModule & module : backend_modules()) {
        info.backends.push_back(module.backend);
        info.backend_paths.push_back(module.path);
    }
    info.default_threads = default_thread_count();

    ggml_backend_reg_t cpu = ggml_backend_reg_by_name("CPU");
    if (cpu != nullptr) {
        auto get_features = reinterpret_cast<ggml_backend_get_features_t>(
            ggml_backend_reg_get_proc_address(cpu, "ggml_backend_get_features"));
        if (get_features != nullptr) {
            for (ggml_backend_feature * f = get_features(cpu); f->name != nullptr; ++f) {
                info.cpu_features.emplace_back(f->name, f->value);
            }
        }
    }
    return info;
}

} // namespace sd
