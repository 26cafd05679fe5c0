#pragma once
// Tensors cross the boundary as { shape: number[], data: Float32Array }. Inputs are borrowed:
// the worker reads the Float32Array's memory in place while a reference keeps it alive. Outputs
// hand the engine's buffer to an ArrayBuffer without copying it.
#include <memory>
#include <vector>

#include <napi.h>

#include "sdcore.h"

namespace sdnode {

// A JS tensor held for the duration of an async call.
class JsTensorInput {
public:
    // Throws a JS TypeError/RangeError if `value` is not a well-formed tensor.
    JsTensorInput(const Napi::Value & value, const char * argument_name);

    const sd::TensorView & view() const { return view_; }

private:
    Napi::Reference<Napi::Float32Array> data_ref_;
    sd::TensorView view_;
};

Napi::Object make_js_tensor(Napi::Env env, sd::HostTensor && tensor);

// Numbers as a JS array (shapes, per-level sizes).
template <typename T>
Napi::Array number_array(Napi::Env env, const std::vector<T> & values) {
    Napi::Array array = Napi::Array::New(env, values.size());
    for (size_t i = 0; i < values.size(); ++i) array.Set(static_cast<uint32_t>(i), static_cast<double>(values[i]));
    return array;
}

// A tensor listing as [{ name, type, shape }].
Napi::Array tensor_info_array(Napi::Env env, const std::vector<sd::TensorInfo> & tensors);

} // namespace sdnode
