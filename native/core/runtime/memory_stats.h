#pragma once
// The process's host memory as the OS counts it: resident set now and its peak (Linux
// /proc/self/status VmRSS / VmHWM). The peak can be reset where the kernel allows writing to
// /proc/self/clear_refs, so that one stage of a pipeline can be measured on its own.
#include <cstdint>

namespace sd {

struct HostMemory {
    uint64_t rss = 0;    // bytes resident now (0 where unknown)
    uint64_t peak = 0;   // bytes: the largest resident set since start or the last reset
    bool known = false;  // false where the platform does not say
};

HostMemory host_memory();

// Resets the peak to the current resident set. Returns false where that is not possible (then
// `peak` keeps counting from the start of the process).
bool reset_host_peak();

} // namespace sd
