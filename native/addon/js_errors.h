#pragma once
// Turns engine errors into JS errors: sd::RangeError → RangeError with `code` ERR_OUT_OF_RANGE,
// sd::Error → lib's StableDiffusionError with `code` (and `path` when a file is involved) once
// lib has handed its factory over (setErrorFactory; a plain Error with them before), anything
// else → the same with ERR_INTERNAL.
#include <exception>

#include <napi.h>

namespace sdnode {

Napi::Error to_js_error(Napi::Env env, const std::exception_ptr & error);

// exports.setErrorFactory(fn): fn(code, message, path?) returns the Error to throw.
void register_error_binding(Napi::Env env, Napi::Object exports);

} // namespace sdnode
