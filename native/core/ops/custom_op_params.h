#pragma once
// Parameters of our own ggml custom ops, kept in the op's tensor so that a graph needs no
// storage of its own for them.
#include <cstddef>
#include <cstring>

#include "ggml.h"

namespace sd::nn {

// ggml_custom_4d keeps its own parameters (function, task count, user data) at the start of
// op_params; ours go after them.
constexpr size_t kOwnParamsOffset = 32;
static_assert(3 * sizeof(void *) <= kOwnParamsOffset, "ggml's custom-op parameters must fit before ours");

template <typename P> void set_op_params(ggml_tensor * t, const P & p) {
    static_assert(kOwnParamsOffset + sizeof(P) <= GGML_MAX_OP_PARAMS, "op_params too small");
    std::memcpy(reinterpret_cast<char *>(t->op_params) + kOwnParamsOffset, &p, sizeof(P));
}

template <typename P> P get_op_params(const ggml_tensor * t) {
    P p;
    std::memcpy(&p, reinterpret_cast<const char *>(t->op_params) + kOwnParamsOffset, sizeof(P));
    return p;
}

} // namespace sd::nn
