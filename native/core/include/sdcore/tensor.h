#pragma once
// Host tensors exchanged between the engine and its callers: float32, NCHW, row-major, with the
// shape listed outermost first (as in PyTorch). A TensorView borrows memory; HostTensor owns it.
#include <cstdint>
#include <numeric>
#include <vector>

namespace sd {

inline int64_t element_count(const std::vector<int64_t> & shape) {
    return std::accumulate(shape.begin(), shape.end(), int64_t{1}, [](int64_t a, int64_t b) { return a * b; });
}

struct TensorView {
    std::vector<int64_t> shape;
    const float * data = nullptr;

    int64_t size() const { return element_count(shape); }
};

struct HostTensor {
    std::vector<int64_t> shape;
    std::vector<float> data;

    HostTensor() = default;
    explicit HostTensor(std::vector<int64_t> shape_)
        : shape(std::move(shape_)), data(static_cast<size_t>(element_count(shape))) {}

    TensorView view() const { return TensorView{shape, data.data()}; }
};

} // namespace sd
