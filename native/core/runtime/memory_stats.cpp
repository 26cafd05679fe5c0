#include "sdcore/system.h"
#include "runtime/heap_policy.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace sd {

void return_free_memory() {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}

void keep_large_blocks_mapped() {
#if defined(__GLIBC__)
    if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
}

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
