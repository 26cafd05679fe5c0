#pragma once
// Tensors cross the boundary as { shape: number[], data: Float32Array }. Inputs are borrowed:
// the worker reads the Float32Array's memory in place while a reference keeps it alive. Outputs
// hand the engine's buffer to an ArrayBuffer without copying it.
#include <memory>

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

} // namespace sdnode
