#include "arguments.h"

#include <cmath>

namespace sdnode::args {

namespace {

// A number that is an integer between lo and hi (RangeError otherwise, NaN included).
double integer(const Napi::Value & value, const std::string & name, double lo, double hi) {
    const double d = number(value, name);
    if (!(d >= lo && d <= hi) || d != std::floor(d)) throw Napi::RangeError::New(value.Env(), "Expected " + name + " to be an integer");
    return d;
}

// The elements of an array, each read with `read` and named name[i].
template <typename T>
std::vector<T> list_of(const Napi::Value & value, const std::string & name, const char * what,
                       T (*read)(const Napi::Value &, const std::string &)) {
    Napi::Array list = array(value, name, what);
    std::vector<T> out;
    out.reserve(list.Length());
    for (uint32_t i = 0; i < list.Length(); ++i) out.push_back(read(list.Get(i), name + "[" + std::to_string(i) + "]"));
    return out;
}

} // namespace

int32_t int32(const Napi::Value & value, const std::string & name) {
    return static_cast<int32_t>(integer(value, name, -2147483648.0, 2147483647.0));
}

int64_t int64(const Napi::Value & value, const std::string & name) {
    return static_cast<int64_t>(integer(value, name, -9007199254740991.0, 9007199254740991.0));
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
    return list_of<std::string>(value, name, "an array of strings", string);
}

std::vector<int32_t> int32_list(const Napi::Value & value, const std::string & name) {
    if (value.IsTypedArray()) {
        if (value.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
            type_error(value.Env(), name, "an Int32Array or an array of integers");
        }
        Napi::Int32Array typed = value.As<Napi::Int32Array>();
        return std::vector<int32_t>(typed.Data(), typed.Data() + typed.ElementLength());
    }
    return list_of<int32_t>(value, name, "an Int32Array or an array of integers", int32);
}

std::vector<double> numbers(const Napi::Value & value, const std::string & name) {
    return list_of<double>(value, name, "an array of numbers", number);
}

std::vector<int64_t> int64_list(const Napi::Value & value, const std::string & name) {
    return list_of<int64_t>(value, name, "an array of integers", int64);
}

} // namespace sdnode::args
