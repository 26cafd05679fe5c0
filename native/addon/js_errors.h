#pragma once
// Turns engine errors into JS errors: sd::RangeError → RangeError, sd::Error → Error with
// `code` (and `path` when a file is involved), anything else → Error ERR_INTERNAL.
#include <exception>

#include <napi.h>

namespace sdnode {

Napi::Error to_js_error(Napi::Env env, const std::exception_ptr & error);

} // namespace sdnode
