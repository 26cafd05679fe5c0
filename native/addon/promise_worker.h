#pragma once
// Runs `work` on a libuv worker thread and settles a Promise on the JS thread: `resolve` turns
// the work's result into a JS value; any exception becomes a rejection (see js_errors.h).
#include <exception>
#include <functional>
#include <optional>

#include <napi.h>

#include "js_errors.h"

namespace sdnode {

template <typename Result>
class PromiseWorker : public Napi::AsyncWorker {
public:
    using Work = std::function<Result()>;
    using Resolve = std::function<Napi::Value(Napi::Env, Result &&)>;

    // Queues the work and returns its promise. Whatever JS values the work reads (input tensors)
    // must be captured by `work`: it is destroyed on the JS thread after the promise settles.
    static Napi::Promise Start(Napi::Env env, Work work, Resolve resolve) {
        auto * worker = new PromiseWorker(env, std::move(work), std::move(resolve));
        Napi::Promise promise = worker->deferred_.Promise();
        worker->Queue();
        return promise;
    }

protected:
    void Execute() override {
        try {
            result_.emplace(work_());
        } catch (...) {
            error_ = std::current_exception();
        }
    }

    void OnOK() override {
        Napi::Env env = Env();
        Napi::HandleScope scope(env);
        if (error_) {
            deferred_.Reject(to_js_error(env, error_).Value());
            return;
        }
        try {
            deferred_.Resolve(resolve_(env, std::move(*result_)));
        } catch (const Napi::Error & e) {
            deferred_.Reject(e.Value());
        } catch (...) {
            deferred_.Reject(to_js_error(env, std::current_exception()).Value());
        }
    }

    void OnError(const Napi::Error & e) override { deferred_.Reject(e.Value()); }

private:
    PromiseWorker(Napi::Env env, Work work, Resolve resolve)
        : Napi::AsyncWorker(env, "sdnode"), deferred_(Napi::Promise::Deferred::New(env)),
          work_(std::move(work)), resolve_(std::move(resolve)) {}

    Napi::Promise::Deferred deferred_;
    Work work_;
    Resolve resolve_;
    std::optional<Result> result_;
    std::exception_ptr error_;
};

} // namespace sdnode
