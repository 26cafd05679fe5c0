#pragma once
// Reading JS arguments, for every binding: the "Expected …" checks live here and nowhere else.
//
// lib/ validates what the public API accepts (types, ranges, enumerations) and says so in its own
// words; these helpers only assert that a value has the type the native side reads it as, so that
// a call that bypasses lib/ gets a TypeError instead of undefined behaviour. Values of the right
// type that the engine cannot take are refused by the engine itself (sd::RangeError and friends,
// thrown before any graph is built); `guarded` and PromiseWorker turn those into JS errors.
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include <napi.h>

#include "js_errors.h"

namespace sdnode::args {

// info[index], or undefined when fewer arguments were passed.
inline Napi::Value at(const Napi::CallbackInfo & info, size_t index) {
    return index < info.Length() ? info[index] : info.Env().Undefined();
}

[[noreturn]] inline void type_error(Napi::Env env, const std::string & name, const char * what) {
    throw Napi::TypeError::New(env, "Expected " + name + " to be " + what);
}

inline std::string string(const Napi::Value & value, const std::string & name) {
    if (!value.IsString()) type_error(value.Env(), name, "a string");
    return value.As<Napi::String>().Utf8Value();
}

inline bool boolean(const Napi::Value & value, const std::string & name) {
    if (!value.IsBoolean()) type_error(value.Env(), name, "a boolean");
    return value.As<Napi::Boolean>().Value();
}

// A number; NaN and ±Infinity are numbers too (the engine refuses what it cannot take).
inline double number(const Napi::Value & value, const std::string & name) {
    if (!value.IsNumber()) type_error(value.Env(), name, "a number");
    return value.As<Napi::Number>().DoubleValue();
}

// A number that is an integer in int32's range (RangeError for a fraction, NaN or a value
// outside it): what the native side stores in an int.
int32_t int32(const Napi::Value & value, const std::string & name);

// A number that is an integer JS represents exactly (|x| ≤ 2^53 - 1), as int64.
int64_t int64(const Napi::Value & value, const std::string & name);

// A bigint between 0 and 2^64 - 1.
uint64_t uint64(const Napi::Value & value, const std::string & name);

inline Napi::Object object(const Napi::Value & value, const std::string & name) {
    if (!value.IsObject()) type_error(value.Env(), name, "an object");
    return value.As<Napi::Object>();
}

inline Napi::Array array(const Napi::Value & value, const std::string & name, const char * what = "an array") {
    if (!value.IsArray()) type_error(value.Env(), name, what);
    return value.As<Napi::Array>();
}

// An options object: undefined gives an empty one.
inline Napi::Object options(const Napi::Value & value, const std::string & name = "options") {
    return value.IsUndefined() ? Napi::Object::New(value.Env()) : object(value, name);
}

// object[key] read with `read` (one of the functions above), or nullopt when it is undefined.
template <typename Read>
auto optional(const Napi::Object & object, const char * key, const std::string & prefix, Read read)
    -> std::optional<decltype(read(object.Get(key), prefix + key))> {
    Napi::Value value = object.Get(key);
    if (value.IsUndefined()) return std::nullopt;
    return read(value, prefix + key);
}

// A file path: a non-empty string without NUL bytes (the C APIs would stop at a NUL and open a
// different file).
std::string path(const Napi::Value & value, const std::string & name = "path");

// An array of strings.
std::vector<std::string> strings(const Napi::Value & value, const std::string & name);

// An Int32Array, or an array of numbers that are int32 integers.
std::vector<int32_t> int32_list(const Napi::Value & value, const std::string & name);

// An array of numbers.
std::vector<double> numbers(const Napi::Value & value, const std::string & name);

// An array of numbers that are exact integers (int64 above).
std::vector<int64_t> int64_list(const Napi::Value & value, const std::string & name);

// Runs a synchronous call into the engine: its exceptions become the JS errors js_errors.h
// describes (sd::RangeError → RangeError, sd::Error → Error with `code`), thrown on this thread.
template <typename Body>
auto guarded(Napi::Env env, Body && body) -> decltype(body()) {
    try {
        return body();
    } catch (const Napi::Error &) {
        throw;
    } catch (...) {
        throw to_js_error(env, std::current_exception());
    }
}

} // namespace sdnode::args
