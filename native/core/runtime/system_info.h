#pragma once
#include <string>
#include <utility>
#include <vector>

namespace sd {

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

} // namespace sd
