// The scheduler catalog (sdcore/scheduler.h): the one table of our scheduler names, A1111's names
// for them, what each supports, and the overrides a caller may give with their allowed values.
// make_scheduler, canonical_scheduler_name and scheduler_config read it; lib/scheduler.ts gets it
// through the addon (schedulerCatalog()) and test/scheduler-catalog.test.ts checks that its TypeScript
// literal lists say the same.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "sched/scheduling.h"
#include "sdcore/error.h"

namespace sd {

namespace {

const SchedulerCatalog & build_catalog() {
    static const SchedulerCatalog catalog = [] {
        SchedulerCatalog c;
        //              name                   Karras σ  begin index  order
        c.schedulers = {{"pndm", false, false, 1},
                        {"ddim", false, false, 1},
                        {"lms", true, true, 1},
                        {"euler", true, true, 1},
                        {"euler_a", false, true, 1},
                        {"heun", true, true, 2},
                        {"dpmpp_2m", true, true, 1},
                        {"dpmpp_2m_karras", true, true, 1},
                        {"dpmpp_2m_sde", true, true, 1},
                        {"dpmpp_2m_sde_karras", true, true, 1},
                        {"unipc", true, true, 1},
                        {"ddpm", false, false, 1},
                        {"lcm", false, true, 1}};
        // AUTOMATIC1111's names, in its own order. "DPM++ 2M SDE" is diffusers' sde-dpmsolver++ (noise
        // from the pipeline's generator), not k-diffusion's Brownian tree.
        c.a1111 = {{"Euler a", "euler_a"},
                   {"DPM++ 2M Karras", "dpmpp_2m_karras"},
                   {"DDIM", "ddim"},
                   {"PLMS", "pndm"},
                   {"LMS", "lms"},
                   {"Heun", "heun"},
                   {"Euler", "euler"},
                   {"DPM++ 2M", "dpmpp_2m"},
                   {"DPM++ 2M SDE", "dpmpp_2m_sde"},
                   {"DPM++ 2M SDE Karras", "dpmpp_2m_sde_karras"},
                   {"UniPC", "unipc"},
                   {"LCM", "lcm"}};
        c.overrides = {{"timestepSpacing", SchedulerOption::Kind::one_of, {"leading", "linspace", "trailing"}, 0, 0},
                       {"useKarrasSigmas", SchedulerOption::Kind::boolean, {}, 0, 0},
                       {"predictionType", SchedulerOption::Kind::one_of, {"epsilon", "v_prediction"}, 0, 0},
                       {"stepsOffset", SchedulerOption::Kind::integer, {}, 0, 999},
                       {"eta", SchedulerOption::Kind::number, {}, 0, 1}};
        return c;
    }();
    return catalog;
}

std::string lower(std::string s) {
    for (char & c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string joined(const std::vector<std::string> & list) {
    std::string text;
    for (const std::string & item : list) text += (text.empty() ? "" : ", ") + item;
    return text;
}

const SchedulerOption & option(const char * name) {
    for (const SchedulerOption & o : scheduler_catalog().overrides) {
        if (o.name == name) return o;
    }
    throw Error("ERR_INTERNAL", std::string("The scheduler catalog has no override ") + name);
}

// The position of `value` among a one_of override's values, or sd::RangeError.
size_t choice(const char * name, const std::string & value) {
    const SchedulerOption & o = option(name);
    auto it = std::find(o.values.begin(), o.values.end(), value);
    if (it == o.values.end()) throw RangeError("Expected " + o.name + " to be one of " + joined(o.values));
    return static_cast<size_t>(it - o.values.begin());
}

double in_range(const char * name, double value) {
    const SchedulerOption & o = option(name);
    const bool integer = o.kind == SchedulerOption::Kind::integer;
    if (!(value >= o.min && value <= o.max) || (integer && std::floor(value) != value)) {
        char bound[64];
        std::snprintf(bound, sizeof(bound), "%g and %g", o.min, o.max);
        throw RangeError("Expected " + std::string(integer ? "integer " : "number ") + o.name + " between " + bound);
    }
    return value;
}

} // namespace

const SchedulerCatalog & scheduler_catalog() { return build_catalog(); }

const SchedulerInfo * find_scheduler(const std::string & name) {
    const SchedulerCatalog & c = scheduler_catalog();
    const std::string key = lower(name);
    for (const SchedulerInfo & s : c.schedulers) {
        if (key == s.name) return &s;
    }
    for (const auto & [a1111, ours] : c.a1111) {
        if (key == lower(a1111)) return find_scheduler(ours);
    }
    return nullptr;
}

std::vector<std::string> scheduler_names() {
    std::vector<std::string> names;
    for (const SchedulerInfo & s : scheduler_catalog().schedulers) names.push_back(s.name);
    return names;
}

std::string canonical_scheduler_name(const std::string & name) {
    const SchedulerInfo * info = find_scheduler(name);
    return info ? info->name : "";
}

SchedulerConfig scheduler_config(const SchedulerOverrides & overrides) {
    SchedulerConfig config;
    if (overrides.timestep_spacing) {
        static const TimestepSpacing spacings[] = {TimestepSpacing::leading, TimestepSpacing::linspace, TimestepSpacing::trailing};
        config.timestep_spacing = spacings[choice("timestepSpacing", *overrides.timestep_spacing)];
    }
    if (overrides.prediction_type) {
        static const PredictionType types[] = {PredictionType::epsilon, PredictionType::v_prediction};
        config.prediction_type = types[choice("predictionType", *overrides.prediction_type)];
    }
    if (overrides.use_karras_sigmas) config.use_karras_sigmas = *overrides.use_karras_sigmas;
    if (overrides.steps_offset) config.steps_offset = static_cast<int>(in_range("stepsOffset", *overrides.steps_offset));
    if (overrides.eta) config.eta = in_range("eta", *overrides.eta);
    return config;
}

std::unique_ptr<Scheduler> make_scheduler(const std::string & name, const SchedulerConfig & config) {
    const SchedulerInfo * info = find_scheduler(name);
    if (info == nullptr) throw RangeError("Unknown scheduler \"" + name + "\"; expected one of " + joined(scheduler_names()));
    const std::string & canonical = info->name;
    if (!info->karras_sigmas && config.use_karras_sigmas.value_or(false)) {
        std::vector<std::string> karras;  // not the *_karras names: they are these with the option on
        for (const SchedulerInfo & s : scheduler_catalog().schedulers) {
            const bool karras_name = s.name.size() > 7 && s.name.compare(s.name.size() - 7, 7, "_karras") == 0;
            if (s.karras_sigmas && !karras_name) karras.push_back(s.name);
        }
        throw RangeError("The " + canonical + " scheduler has no Karras sigmas (useKarrasSigmas applies to " + joined(karras) + ")");
    }
    std::unique_ptr<Scheduler> scheduler;
    if (canonical == "euler") scheduler = make_euler_scheduler(config);
    else if (canonical == "ddim") scheduler = make_ddim_scheduler(config);
    else if (canonical == "pndm") scheduler = make_pndm_scheduler(config);
    else if (canonical == "euler_a") scheduler = make_euler_ancestral_scheduler(config);
    else if (canonical == "lms") scheduler = make_lms_scheduler(config);
    else if (canonical == "heun") scheduler = make_heun_scheduler(config);
    else if (canonical == "unipc") scheduler = make_unipc_scheduler(config);
    else if (canonical == "ddpm") scheduler = make_ddpm_scheduler(config);
    else if (canonical == "lcm") scheduler = make_lcm_scheduler(config);
    else if (canonical == "dpmpp_2m") scheduler = make_dpmpp_2m_scheduler(config, false, false);
    else if (canonical == "dpmpp_2m_karras") scheduler = make_dpmpp_2m_scheduler(config, true, false);
    else if (canonical == "dpmpp_2m_sde") scheduler = make_dpmpp_2m_scheduler(config, false, true);
    else if (canonical == "dpmpp_2m_sde_karras") scheduler = make_dpmpp_2m_scheduler(config, true, true);
    else throw Error("ERR_NOT_IMPLEMENTED", "The " + canonical + " scheduler is not implemented yet");
    // The table says what each scheduler does; the implementation must agree.
    if (scheduler->has_begin_index() != info->begin_index) {
        throw Error("ERR_INTERNAL", "The scheduler catalog and the " + canonical + " scheduler disagree about the begin index");
    }
    return scheduler;
}

} // namespace sd
