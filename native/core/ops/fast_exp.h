#pragma once
// e^v for v ≤ 0 in plain float arithmetic that compilers vectorize inside SD_VECTOR_CLONES loops
// (glibc's expf call keeps a loop scalar). Relative error ~1e-7; below −87 it returns ~0,
// where float underflows anyway.
#include <cstdint>

namespace sd::nn {

// v = n·ln2 + r with |r| ≤ ln2/2, e^r by its Taylor series to r⁷, 2^n from the exponent bits.
inline float exp_nonpositive(float v) {
    v = v > -87.0f ? v : -87.0f;  // (std::max keeps the loop from vectorizing)
    const int n = static_cast<int>(v * 1.44269504f - 0.5f);  // round to nearest: v·log₂e ≤ 0
    const float r = (v - static_cast<float>(n) * 0.693145751953125f) - static_cast<float>(n) * 1.428606765330187e-6f;
    const float p =
        1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    const int32_t bits = (n + 127) << 23;
    return p * __builtin_bit_cast(float, bits);
}

} // namespace sd::nn
