#include "sdcore/system.h"

#include <cstdio>
#include <cstring>

namespace sd {

#ifdef __linux__

HostMemory host_memory() {
    HostMemory m;
    FILE * f = std::fopen("/proc/self/status", "r");
    if (f == nullptr) return m;
    char line[256];
    unsigned long long kb = 0;
    bool rss = false, hwm = false;
    while (std::fgets(line, sizeof(line), f) != nullptr) {
        if (std::sscanf(line, "VmRSS: %llu kB", &kb) == 1) {
            m.rss = kb * 1024;
            rss = true;
        } else if (std::sscanf(line, "VmHWM: %llu kB", &kb) == 1) {
            m.peak = kb * 1024;
            hwm = true;
        }
    }
    std::fclose(f);
    m.known = rss && hwm;
    return m;
}

bool reset_host_peak() {
    // "5" resets the peak RSS (VmHWM) to the current RSS (Linux ≥ 4.0, proc(5)).
    FILE * f = std::fopen("/proc/self/clear_refs", "w");
    if (f == nullptr) return false;
    bool ok = std::fputs("5", f) >= 0;
    ok = std::fclose(f) == 0 && ok;
    return ok;
}

#else

// Other platforms report nothing rather than a guess.
HostMemory host_memory() { return HostMemory(); }
bool reset_host_peak() { return false; }

#endif

} // namespace sd
