#include "arguments.h"

#include <cmath>

namespace sdnode::args {

int32_t int32(const Napi::Value & value, const std::string & name) {
    const double d = number(value, name);
    if (!std::isfinite(d) || d != std::floor(d) || d < -2147483648.0 || d > 2147483647.0) {
        throw Napi::RangeError::New(value.Env(), "Expected " + name + " to be an integer");
    }
    return static_cast<int32_t>(d);
}

int64_t int64(const Napi::Value & value, const std::string & name) {
    const double d = number(value, name);
    if (!(std::fabs(d) <= 9007199254740991.0) || d != std::floor(d)) {
        throw Napi::RangeError::New(value.Env(), "Expected " + name + " to be an integer");
    }
    return static_cast<int64_t>(d);
}

uint64_t uint64(const Napi::Value & value, const std::string & name) {
    if (!value.IsBigInt()) type_error(value.Env(), name, "a bigint");
    bool lossless = false;
    const uint64_t result = value.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(value.Env(), "Expected " + name + " between 0 and 18446744073709551615");
    return result;
}

std::string path(const Napi::Value & value, const std::string & name) {
    std::string text = string(value, name);
    if (text.empty()) throw Napi::RangeError::New(value.Env(), "Expected " + name + " to be a non-empty string");
    if (text.find('\0') != std::string::npos) throw Napi::TypeError::New(value.Env(), "Expected " + name + " without NUL bytes");
    return text;
}

std::vector<std::string> strings(const Napi::Value & value, const std::string & name) {
    Napi::Array list = array(value, name, "an array of strings");
    std::vector<std::string> out;
    out.reserve(list.Length());
    for (uint32_t i = 0; i < list.Length(); ++i) out.push_back(string(list.Get(i), name + "[" + std::to_string(i) + "]"));
    return out;
}

std::vector<int32_t> int32_list(const Napi::Value & value, const std::string & name) {
    if (value.IsTypedArray()) {
        if (value.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
            type_error(value.Env(), name, "an Int32Array or an array of integers");
        }
        Napi::Int32Array typed = value.As<Napi::Int32Array>();
        return std::vector<int32_t>(typed.Data(), typed.Data() + typed.ElementLength());
    }
    Napi::Array list = array(value, name, "an Int32Array or an array of integers");
    std::vector<int32_t> out;
    out.reserve(list.Length());
    for (uint32_t i = 0; i < list.Length(); ++i) out.push_back(int32(list.Get(i), name + "[" + std::to_string(i) + "]"));
    return out;
}

std::vector<double> numbers(const Napi::Value & value, const std::string & name) {
    Napi::Array list = array(value, name, "an array of numbers");
    std::vector<double> out;
    out.reserve(list.Length());
    for (uint32_t i = 0; i < list.Length(); ++i) out.push_back(number(list.Get(i), name + "[" + std::to_string(i) + "]"));
    return out;
}

std::vector<int64_t> int64_list(const Napi::Value & value, const std::string & name) {
    Napi::Array list = array(value, name, "an array of integers");
    std::vector<int64_t> out;
    out.reserve(list.Length());
    for (uint32_t i = 0; i < list.Length(); ++i) out.push_back(int64(list.Get(i), name + "[" + std::to_string(i) + "]"));
    return out;
}

} // namespace sdnode::args
