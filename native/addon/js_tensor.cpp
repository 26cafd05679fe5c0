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
    Napi::Object result = Napi::Object::New(env);
    result.Set("shape", number_array(env, tensor.shape));
    result.Set("data", Napi::Float32Array::New(env, owned->size(), buffer, 0));
    return result;
}

Napi::Array tensor_info_array(Napi::Env env, const std::vector<sd::TensorInfo> & tensors) {
    Napi::Array list = Napi::Array::New(env, tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
        Napi::Object tensor = Napi::Object::New(env);
        tensor.Set("name", tensors[i].name);
        tensor.Set("type", tensors[i].type);
        tensor.Set("shape", number_array(env, tensors[i].shape));
        list.Set(static_cast<uint32_t>(i), tensor);
    }
    return list;
}

} // namespace sdnode
