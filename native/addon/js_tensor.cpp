#include "js_tensor.h"

#include <cmath>
#include <string>

namespace sdnode {

JsTensorInput::JsTensorInput(const Napi::Value & value, const char * name) {
    Napi::Env env = value.Env();
    const std::string arg(name);
    if (!value.IsObject()) throw Napi::TypeError::New(env, "Expected " + arg + " to be a Tensor");
    Napi::Object object = value.As<Napi::Object>();
    Napi::Value shape = object.Get("shape");
    Napi::Value data = object.Get("data");
    if (!shape.IsArray()) throw Napi::TypeError::New(env, "Expected " + arg + ".shape to be an array of integers");
    if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
        throw Napi::TypeError::New(env, "Expected " + arg + ".data to be a Float32Array");
    }
    Napi::Array dims = shape.As<Napi::Array>();
    for (uint32_t i = 0; i < dims.Length(); ++i) {
        Napi::Value dim = dims.Get(i);
        double d = dim.IsNumber() ? dim.As<Napi::Number>().DoubleValue() : -1;
        if (!(d >= 1 && d <= 1e9 && std::floor(d) == d)) {
            throw Napi::RangeError::New(env, "Expected " + arg + ".shape to hold positive integers");
        }
        view_.shape.push_back(static_cast<int64_t>(d));
    }
    Napi::Float32Array array = data.As<Napi::Float32Array>();
    if (static_cast<int64_t>(array.ElementLength()) != view_.size()) {
        throw Napi::RangeError::New(env, "Expected " + arg + ".data to hold " + std::to_string(view_.size()) +
                                             " values for its shape but it holds " +
                                             std::to_string(array.ElementLength()));
    }
    view_.data = array.Data();
    data_ref_ = Napi::Persistent(array);
}

Napi::Object make_js_tensor(Napi::Env env, sd::HostTensor && tensor) {
    auto * owned = new std::vector<float>(std::move(tensor.data));
    Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(
        env, owned->data(), owned->size() * sizeof(float),
        [](Napi::Env, void *, std::vector<float> * storage) { delete storage; }, owned);
    Napi::Array shape = Napi::Array::New(env, tensor.shape.size());
    for (size_t i = 0; i < tensor.shape.size(); ++i) shape.Set(static_cast<uint32_t>(i), static_cast<double>(tensor.shape[i]));
    Napi::Object result = Napi::Object::New(env);
    result.Set("shape", shape);
    result.Set("data", Napi::Float32Array::New(env, owned->size(), buffer, 0));
    return result;
}

} // namespace sdnode
