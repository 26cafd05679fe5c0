#include "js_errors.h"

#include <new>

#include "sdcore.h"

namespace sdnode {

Napi::Error to_js_error(Napi::Env env, const std::exception_ptr & error) {
    try {
        std::rethrow_exception(error);
    } catch (const sd::RangeError & e) {
        Napi::Error js = Napi::RangeError::New(env, e.what());
        js.Set("code", e.code());
        return js;
    } catch (const sd::Error & e) {
        Napi::Error js = Napi::Error::New(env, e.what());
        js.Set("code", e.code());
        if (!e.path().empty()) js.Set("path", e.path());
        return js;
    } catch (const std::bad_alloc &) {
        Napi::Error js = Napi::Error::New(env, "Out of memory");
        js.Set("code", "ERR_OUT_OF_MEMORY");
        return js;
    } catch (const std::exception & e) {
        Napi::Error js = Napi::Error::New(env, e.what());
        js.Set("code", "ERR_INTERNAL");
        return js;
    } catch (...) {
        Napi::Error js = Napi::Error::New(env, "Unknown native error");
        js.Set("code", "ERR_INTERNAL");
        return js;
    }
}

} // namespace sdnode
