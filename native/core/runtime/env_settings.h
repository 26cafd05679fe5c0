#pragma once
// Sizes and switches that tests and benchmarks may change through the environment.
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace sd {

// The positive integer in environment variable `name`, or `fallback` when it is unset, not a
// number or not positive.
inline int64_t env_positive_int(const char * name, int64_t fallback) {
    const char * env = std::getenv(name);
    const long long value = env != nullptr ? std::atoll(env) : 0;
    return value > 0 ? static_cast<int64_t>(value) : fallback;
}

// Whether environment variable `name` is set to exactly `value`.
inline bool env_equals(const char * name, const char * value) {
    const char * env = std::getenv(name);
    return env != nullptr && std::strcmp(env, value) == 0;
}

} // namespace sd
