// Scheduler: sd::Scheduler for JS. Everything here is synchronous: a step is element-wise maths
// over one latent (16 384 floats for 512×512), microseconds to a millisecond, far less than the
// cost of crossing to a worker thread and back.
//
// schedulerCatalog() → the engine's table of names, A1111 names and override ranges (lib/scheduler.ts)
// new Scheduler(name, { timestepSpacing, predictionType, useKarrasSigmas, stepsOffset, eta })
//   .setTimesteps(n), .setBeginIndex(i), .timesteps (number[]), .sigmas (Float32Array | null), .initNoiseSigma,
//   .scaleModelInput(x, t) → tensor, .step(output, t, sample, noise?) → { prevSample } where noise
//   is a tensor or a function (shape) → tensor called when the scheduler draws,
//   .addNoise(original, noise, t | t[]) → tensor, .name, .stochastic
// lib/scheduler.ts checks the arguments first (against the catalog); here arguments are read by
// type (arguments.h) and the engine refuses values it cannot take.
#include "scheduler_binding.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "arguments.h"
#include "js_tensor.h"
#include "sdcore.h"

namespace sdnode {

namespace {

// overrides: { timestepSpacing, predictionType, useKarrasSigmas, stepsOffset, eta }, read by type;
// the engine checks the values against its catalog (sd::RangeError).
sd::SchedulerOverrides overrides_from(const Napi::Value & value) {
    sd::SchedulerOverrides overrides;
    if (value.IsUndefined() || value.IsNull()) return overrides;
    Napi::Object object = args::object(value, "overrides");
    overrides.timestep_spacing = args::optional(object, "timestepSpacing", "", args::string);
    overrides.prediction_type = args::optional(object, "predictionType", "", args::string);
    overrides.use_karras_sigmas = args::optional(object, "useKarrasSigmas", "", args::boolean);
    overrides.steps_offset = args::optional(object, "stepsOffset", "", args::number);
    overrides.eta = args::optional(object, "eta", "", args::number);
    return overrides;
}

const char * kind_name(sd::SchedulerOption::Kind kind) {
    switch (kind) {
        case sd::SchedulerOption::Kind::one_of: return "oneOf";
        case sd::SchedulerOption::Kind::boolean: return "boolean";
        case sd::SchedulerOption::Kind::integer: return "integer";
        case sd::SchedulerOption::Kind::number: return "number";
    }
    return "unknown";
}

// schedulerCatalog() → { schedulers: [{ name, karrasSigmas, beginIndex, order }],
//   a1111: [{ name, scheduler }], overrides: [{ name, type, values? , min?, max? }] }
Napi::Value SchedulerCatalog(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const sd::SchedulerCatalog & catalog = sd::scheduler_catalog();
    Napi::Array schedulers = Napi::Array::New(env, catalog.schedulers.size());
    for (size_t i = 0; i < catalog.schedulers.size(); ++i) {
        const sd::SchedulerInfo & s = catalog.schedulers[i];
        Napi::Object entry = Napi::Object::New(env);
        entry.Set("name", s.name);
        entry.Set("karrasSigmas", s.karras_sigmas);
        entry.Set("beginIndex", s.begin_index);
        entry.Set("order", s.order);
        schedulers.Set(static_cast<uint32_t>(i), entry);
    }
    Napi::Array a1111 = Napi::Array::New(env, catalog.a1111.size());
    for (size_t i = 0; i < catalog.a1111.size(); ++i) {
        Napi::Object entry = Napi::Object::New(env);
        entry.Set("name", catalog.a1111[i].first);
        entry.Set("scheduler", catalog.a1111[i].second);
        a1111.Set(static_cast<uint32_t>(i), entry);
    }
    Napi::Array overrides = Napi::Array::New(env, catalog.overrides.size());
    for (size_t i = 0; i < catalog.overrides.size(); ++i) {
        const sd::SchedulerOption & o = catalog.overrides[i];
        Napi::Object entry = Napi::Object::New(env);
        entry.Set("name", o.name);
        entry.Set("type", kind_name(o.kind));
        if (o.kind == sd::SchedulerOption::Kind::one_of) {
            Napi::Array values = Napi::Array::New(env, o.values.size());
            for (size_t j = 0; j < o.values.size(); ++j) values.Set(static_cast<uint32_t>(j), o.values[j]);
            entry.Set("values", values);
        } else if (o.kind != sd::SchedulerOption::Kind::boolean) {
            entry.Set("min", o.min);
            entry.Set("max", o.max);
        }
        overrides.Set(static_cast<uint32_t>(i), entry);
    }
    Napi::Object result = Napi::Object::New(env);
    result.Set("schedulers", schedulers);
    result.Set("a1111", a1111);
    result.Set("overrides", overrides);
    return result;
}

class SchedulerWrap : public Napi::ObjectWrap<SchedulerWrap> {
public:
    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "Scheduler",
                           {
                               InstanceMethod<&SchedulerWrap::SetTimesteps>("setTimesteps"),
                               InstanceMethod<&SchedulerWrap::SetBeginIndex>("setBeginIndex"),
                               InstanceMethod<&SchedulerWrap::ScaleModelInput>("scaleModelInput"),
                               InstanceMethod<&SchedulerWrap::Step>("step"),
                               InstanceMethod<&SchedulerWrap::AddNoise>("addNoise"),
                               InstanceAccessor<&SchedulerWrap::Timesteps>("timesteps"),
                               InstanceAccessor<&SchedulerWrap::Sigmas>("sigmas"),
                               InstanceAccessor<&SchedulerWrap::InitNoiseSigma>("initNoiseSigma"),
                               InstanceAccessor<&SchedulerWrap::Name>("name"),
                               InstanceAccessor<&SchedulerWrap::Stochastic>("stochastic"),
                           });
    }

    explicit SchedulerWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<SchedulerWrap>(info) {
        Napi::Env env = info.Env();
        std::string name = args::string(args::at(info, 0), "the scheduler name");
        sd::SchedulerOverrides overrides = overrides_from(args::at(info, 1));
        args::guarded(env, [&] { scheduler_ = sd::make_scheduler(name, sd::scheduler_config(overrides)); });
    }

private:
    // The engine refuses step counts and indices it cannot take (sd::RangeError).
    Napi::Value SetTimesteps(const Napi::CallbackInfo & info) {
        const int steps = args::int32(args::at(info, 0), "steps");
        return args::guarded(info.Env(), [&] {
            scheduler_->set_timesteps(steps);
            return info.Env().Undefined();
        });
    }

    Napi::Value SetBeginIndex(const Napi::CallbackInfo & info) {
        const int index = args::int32(args::at(info, 0), "index");
        return args::guarded(info.Env(), [&] {
            scheduler_->set_begin_index(index);
            return info.Env().Undefined();
        });
    }

    Napi::Value Timesteps(const Napi::CallbackInfo & info) {
        const std::vector<float> & ts = scheduler_->timesteps();
        Napi::Array array = Napi::Array::New(info.Env(), ts.size());
        for (size_t i = 0; i < ts.size(); ++i) array.Set(static_cast<uint32_t>(i), static_cast<double>(ts[i]));
        return array;
    }

    Napi::Value Sigmas(const Napi::CallbackInfo & info) {
        if (!scheduler_->has_sigmas()) return info.Env().Null();
        const std::vector<float> & s = scheduler_->sigmas();
        Napi::Float32Array array = Napi::Float32Array::New(info.Env(), s.size());
        std::memcpy(array.Data(), s.data(), s.size() * sizeof(float));
        return array;
    }

    Napi::Value InitNoiseSigma(const Napi::CallbackInfo & info) {
        return args::guarded(info.Env(), [&]() -> Napi::Value {
            return Napi::Number::New(info.Env(), static_cast<double>(scheduler_->init_noise_sigma()));
        });
    }

    Napi::Value Name(const Napi::CallbackInfo & info) { return Napi::String::New(info.Env(), scheduler_->name()); }

    Napi::Value Stochastic(const Napi::CallbackInfo & info) { return Napi::Boolean::New(info.Env(), scheduler_->stochastic()); }

    Napi::Value ScaleModelInput(const Napi::CallbackInfo & info) {
        JsTensorInput sample(info[0], "sample");
        double t = args::number(args::at(info, 1), "timestep");
        return args::guarded(info.Env(), [&]() -> Napi::Value {
            sd::HostTensor out(sample.view().shape);
            scheduler_->scale_model_input(sample.view().data, out.data.data(), sample.view().size(), t);
            return make_js_tensor(info.Env(), std::move(out));
        });
    }

    Napi::Value Step(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        JsTensorInput output(info[0], "modelOutput");
        double t = args::number(args::at(info, 1), "timestep");
        JsTensorInput sample(args::at(info, 2), "sample");
        if (output.view().shape != sample.view().shape) {
            throw Napi::RangeError::New(env, "Expected modelOutput and sample to have the same shape");
        }
        const int64_t count = sample.view().size();
        // noise: a tensor (used for the one draw a step makes) or a function returning one,
        // called only when the scheduler draws (DDPM, for one, draws nothing at t = 0).
        std::unique_ptr<JsTensorInput> noise;
        Napi::Function noise_fn;
        Napi::Value noise_arg = args::at(info, 3);
        if (noise_arg.IsFunction()) {
            noise_fn = noise_arg.As<Napi::Function>();
        } else if (!noise_arg.IsUndefined() && !noise_arg.IsNull()) {
            noise = std::make_unique<JsTensorInput>(noise_arg, "noise");
            if (noise->view().size() != count) throw Napi::RangeError::New(env, "Expected noise to have the shape of sample");
        }
        Napi::Array shape = Napi::Array::New(env, sample.view().shape.size());
        for (size_t i = 0; i < sample.view().shape.size(); ++i) shape.Set(static_cast<uint32_t>(i), static_cast<double>(sample.view().shape[i]));
        return args::guarded(env, [&]() -> Napi::Value {
            int draws = 0;
            sd::NoiseSource source;
            if (noise) {
                source = [&](float * out, int64_t n) {
                    if (draws++ > 0 || n != count) throw sd::RangeError("The scheduler asked for more noise than was given");
                    std::memcpy(out, noise->view().data, static_cast<size_t>(n) * sizeof(float));
                };
            } else if (!noise_fn.IsEmpty()) {
                source = [&](float * out, int64_t n) {
                    Napi::Value drawn = noise_fn.Call({shape});
                    Napi::Value data = drawn.IsObject() && !drawn.IsTypedArray() ? drawn.As<Napi::Object>().Get("data") : drawn;
                    if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
                        static_cast<int64_t>(data.As<Napi::Float32Array>().ElementLength()) != n) {
                        throw Napi::TypeError::New(env, "Expected the noise function to return a Tensor or Float32Array of " +
                                                            std::to_string(n) + " values");
                    }
                    std::memcpy(out, data.As<Napi::Float32Array>().Data(), static_cast<size_t>(n) * sizeof(float));
                };
            } else if (scheduler_->stochastic()) {
                throw sd::RangeError("The " + scheduler_->name() + " scheduler is stochastic: pass noise to step()");
            }
            sd::HostTensor prev(sample.view().shape);
            scheduler_->step(output.view().data, t, sample.view().data, prev.data.data(), count, source);
            Napi::Object result = Napi::Object::New(env);
            result.Set("prevSample", make_js_tensor(env, std::move(prev)));
            return result;
        });
    }

    Napi::Value AddNoise(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        JsTensorInput original(info[0], "original");
        JsTensorInput noise(args::at(info, 1), "noise");
        if (original.view().shape != noise.view().shape) throw Napi::RangeError::New(env, "Expected noise to have the shape of original");
        std::vector<double> ts;
        Napi::Value t = args::at(info, 2);
        if (t.IsNumber()) ts.push_back(t.As<Napi::Number>().DoubleValue());
        else ts = args::numbers(t, "timesteps");
        const int64_t batch = original.view().shape.empty() ? 1 : original.view().shape[0];
        if (ts.size() == 1 && batch > 1) ts.assign(static_cast<size_t>(batch), ts[0]);
        if (static_cast<int64_t>(ts.size()) != batch) throw Napi::RangeError::New(env, "Expected one timestep per batch item");
        return args::guarded(env, [&]() -> Napi::Value {
            sd::HostTensor out(original.view().shape);
            scheduler_->add_noise(original.view().data, noise.view().data, out.data.data(), original.view().size(), ts);
            return make_js_tensor(env, std::move(out));
        });
    }

    std::unique_ptr<sd::Scheduler> scheduler_;
};

} // namespace

void register_scheduler_binding(Napi::Env env, Napi::Object exports) {
    exports.Set("Scheduler", SchedulerWrap::Define(env));
    exports.Set("schedulerCatalog", Napi::Function::New(env, SchedulerCatalog, "schedulerCatalog"));
}

} // namespace sdnode
