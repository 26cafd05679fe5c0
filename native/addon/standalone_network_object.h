#pragma once
// The JS side of the networks that load from a file of their own (TAESD, the upscaler, the safety
// checker, the depth estimator): loadX(path, { backend, weightType, threads }) resolves to an
// object { info(), dispose(), …the network's methods }. What differs between them is each one's
// info object and methods; this holds the rest: the load options, the holder that dispose()
// empties, and ERR_DISPOSED for any call after it.
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <napi.h>

#include "arguments.h"
#include "js_tensor.h"
#include "promise_worker.h"
#include "sdcore.h"

namespace sdnode {

// A method of the object: called with the network (never a disposed one).
template <class Network>
using NetworkMethod = std::function<Napi::Value(const Napi::CallbackInfo &, const std::shared_ptr<Network> &)>;

// { info(), dispose(), …methods } over `network`; a call after dispose() throws ERR_DISPOSED
// ("The <what> has been disposed"). A worker that runs holds its own reference, so a network
// disposed during a call is freed when the call ends.
template <class Network, class InfoObject>
Napi::Object standalone_network_object(Napi::Env env, std::shared_ptr<Network> network, const std::string & what,
                                       InfoObject info_object, std::vector<std::pair<const char *, NetworkMethod<Network>>> methods) {
    auto holder = std::make_shared<std::shared_ptr<Network>>(std::move(network));
    auto held = [holder, what](Napi::Env env) {
        if (!*holder) {
            Napi::Error error = Napi::Error::New(env, "The " + what + " has been disposed");
            error.Set("code", "ERR_DISPOSED");
            throw error;
        }
        return *holder;
    };
    Napi::Object o = Napi::Object::New(env);
    o.Set("info", Napi::Function::New(env, [held, info_object](const Napi::CallbackInfo & info) -> Napi::Value {
              return info_object(info.Env(), held(info.Env())->info());
          }, "info"));
    for (auto & [name, method] : methods) {
        o.Set(name, Napi::Function::New(env, [held, method = std::move(method)](const Napi::CallbackInfo & info) {
                  return method(info, held(info.Env()));
              }, name));
    }
    o.Set("dispose", Napi::Function::New(env, [holder](const Napi::CallbackInfo & info) {
              holder->reset();
              return info.Env().Undefined();
          }, "dispose"));
    return o;
}

// Runs the call's first argument, a tensor named `argument` in errors, through the network:
// `check(network, shape)` on the JS thread (a bad shape throws at once), then `run(network, view)`
// on a worker; the promise resolves to `to_js(env, result)`.
template <class Network, class Check, class Run, class ToJs>
Napi::Value run_on_tensor(const Napi::CallbackInfo & info, const std::shared_ptr<Network> & network, const char * argument,
                          Check check, Run run, ToJs to_js) {
    Napi::Env env = info.Env();
    auto input = std::make_shared<JsTensorInput>(args::at(info, 0), argument);
    args::guarded(env, [&] { check(*network, input->view().shape); });
    using Result = decltype(run(*network, input->view()));
    return PromiseWorker<Result>::Start(
        env, [network, input, run] { return run(*network, input->view()); },
        [to_js](Napi::Env env, Result && result) -> Napi::Value { return to_js(env, std::move(result)); });
}

// The same with a tensor result.
template <class Network, class Check, class Run>
Napi::Value run_on_tensor(const Napi::CallbackInfo & info, const std::shared_ptr<Network> & network, const char * argument,
                          Check check, Run run) {
    return run_on_tensor(info, network, argument, check, run,
                         [](Napi::Env env, sd::HostTensor && result) { return make_js_tensor(env, std::move(result)); });
}

// loadX(path, { backend, weightType, threads }) → Promise<object>: `Network::load` on a worker,
// then `make_object(env, network)` on the JS thread.
template <class Network, class LoadOptions, class MakeObject>
Napi::Value load_standalone_network(const Napi::CallbackInfo & info, MakeObject make_object) {
    Napi::Env env = info.Env();
    std::string path = args::path(args::at(info, 0));
    Napi::Object options = args::options(args::at(info, 1));
    LoadOptions load;
    load.backend = args::optional(options, "backend", "options.", args::string).value_or("auto");
    std::string weight_type = args::optional(options, "weightType", "options.", args::string).value_or("");
    if (!weight_type.empty()) load.weight_type = args::guarded(env, [&] { return sd::parse_weight_type(weight_type); });
    load.threads = args::optional(options, "threads", "options.", args::int32).value_or(0);
    return PromiseWorker<std::shared_ptr<Network>>::Start(
        env, [path, load] { return Network::load(path, load); },
        [make_object](Napi::Env env, std::shared_ptr<Network> && network) -> Napi::Value {
            return make_object(env, std::move(network));
        });
}

// A JS array of strings (an info object's file list).
inline Napi::Array string_array(Napi::Env env, const std::vector<std::string> & values) {
    Napi::Array array = Napi::Array::New(env, values.size());
    for (size_t i = 0; i < values.size(); ++i) array.Set(static_cast<uint32_t>(i), values[i]);
    return array;
}

} // namespace sdnode
