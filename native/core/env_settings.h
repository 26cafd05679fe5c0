#pragma once
// Sizes that tests and benchmarks may change through the environment at start-up.
#include <cstdint>
#include <cstdlib>

namespace sd {

// The positive integer in environment variable `name`, or `fallback` when it is unset, not a
// number or not positive.
inline int64_t env_positive_int(const char * name, int64_t fallback) {
    const char * env = std::getenv(name);
    const long long value = env != nullptr ? std::atoll(env) : 0;
    return value > 0 ? static_cast<int64_t>(value) : fallback;
}

} // namespace sd
