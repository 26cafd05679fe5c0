#pragma once
// A small matrix product run through ggml on a chosen device: proves that a backend loads,
// allocates and computes, and lets tests compare a device's arithmetic with a reference.
#include <string>

#include "sdcore/tensor.h"

namespace sd {

// a: [M, K], b: [K, N] → [M, N]. Throws sd::RangeError on shapes that do not fit.
HostTensor matmul_on_device(const std::string & device_name, const TensorView & a, const TensorView & b, int threads);

} // namespace sd
