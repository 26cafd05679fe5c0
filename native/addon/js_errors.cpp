#include "js_errors.h"

#include <new>

#include "addon_data.h"
#include "sdcore.h"

namespace sdnode {

namespace {

Napi::Error coded_error(Napi::Env env, const std::string & code, const std::string & message, const std::string & path) {
    Napi::FunctionReference & factory = addon_data(env).error_factory;
    if (!factory.IsEmpty() && !env.IsExceptionPending()) {
        Napi::Value made = factory.Call({Napi::String::New(env, code), Napi::String::New(env, message),
                                         path.empty() ? env.Undefined() : Napi::String::New(env, path)});
        if (!env.IsExceptionPending() && made.IsObject()) return Napi::Error(env, made);
        if (env.IsExceptionPending()) env.GetAndClearPendingException();
    }
    Napi::Error js = Napi::Error::New(env, message);
    js.Set("code", code);
    if (!path.empty()) js.Set("path", path);
    return js;
}

Napi::Value SetErrorFactory(const Napi::CallbackInfo & info) {
    if (info.Length() != 1 || !info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "Expected a function");
    addon_data(info.Env()).error_factory = Napi::Persistent(info[0].As<Napi::Function>());
    return info.Env().Undefined();
}

} // namespace

Napi::Error to_js_error(Napi::Env env, const std::exception_ptr & error) {
    try {
        std::rethrow_exception(error);
    } catch (const sd::RangeError & e) {
        Napi::Error js = Napi::RangeError::New(env, e.what());
        js.Set("code", e.code());
        return js;
    } catch (const sd::Error & e) {
        return coded_error(env, e.code(), e.what(), e.path());
    } catch (const std::bad_alloc &) {
        return coded_error(env, "ERR_OUT_OF_MEMORY", "Out of memory", "");
    } catch (const std::exception & e) {
        return coded_error(env, "ERR_INTERNAL", e.what(), "");
    } catch (...) {
        return coded_error(env, "ERR_INTERNAL", "Unknown native error", "");
    }
}

void register_error_binding(Napi::Env env, Napi::Object exports) {
    exports.Set("setErrorFactory", Napi::Function::New(env, SetErrorFactory, "setErrorFactory"));
}

} // namespace sdnode
