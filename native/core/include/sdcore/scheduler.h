#pragma once
// Noise schedulers, computing what diffusers' schedulers compute when they are built from
// Stable Diffusion's scheduler config (SD 1.5: 1000 training steps, scaled_linear betas from
// 0.00085 to 0.012, steps_offset 1, set_alpha_to_one false, PNDM with skip_prk_steps).
//
// Precision follows diffusers: timesteps and sigmas are built in float64 (numpy) and then cast to
// float32 where diffusers casts them; the per-element maths of scale_model_input, step and
// add_noise is float32, as torch does it on float32 tensors.
//
// A scheduler is stateful in the same way as diffusers' (multistep history, step index): call
// set_timesteps(n), then step() once per entry of timesteps(), in order.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sdcore/model_config.h"  // PredictionType

namespace sd {

enum class TimestepSpacing { leading, linspace, trailing };

// Unset optionals take the scheduler's own default, as diffusers' from_config does for keys that
// the config does not name (timestep_spacing: "leading" for DDIM/PNDM/DDPM, "linspace" for the
// others; LCM ignores spacing and steps_offset; use_karras_sigmas applies to euler, lms, heun,
// dpmpp_2m and unipc, and dpmpp_2m_karras defaults it to true).
struct SchedulerConfig {
    int num_train_timesteps = 1000;
    double beta_start = 0.00085;
    double beta_end = 0.012;
    bool scaled_linear = true;                 // false: linear betas
    int steps_offset = 1;
    bool set_alpha_to_one = false;
    PredictionType prediction_type = PredictionType::epsilon;
    std::optional<TimestepSpacing> timestep_spacing;
    std::optional<bool> use_karras_sigmas;
    double eta = 0.0;                          // DDIM's step(eta=…)
};

// Fills `count` floats with standard normal noise (the caller's generator).
using NoiseSource = std::function<void(float * out, int64_t count)>;

class Scheduler {
public:
    virtual ~Scheduler() = default;

    // Canonical name ("euler", "dpmpp_2m_karras", …).
    const std::string & name() const { return name_; }
    const SchedulerConfig & config() const { return config_; }

    // Prepares `steps` inference steps and clears all history (multistep outputs, step and begin
    // index). Throws sd::RangeError for a step count the scheduler cannot do.
    void set_timesteps(int steps);

    // The timesteps to visit, in order (as float32 values; integer ones for DDIM, PNDM, …).
    const std::vector<float> & timesteps() const { return timesteps_; }
    // The noise levels (float32), one more than the timesteps for sigma schedulers; empty for
    // schedulers that have none.
    const std::vector<float> & sigmas() const { return sigmas_; }
    bool has_sigmas() const { return !sigmas_.empty(); }
    virtual float init_noise_sigma() const { return 1.0f; }
    bool stochastic() const { return stochastic_; }
    int steps() const { return steps_; }

    // Where the loop starts (diffusers' set_begin_index, which its img2img and inpaint pipelines
    // call after set_timesteps): the first step then uses this index instead of looking its
    // timestep up, and add_noise uses it too. Only the schedulers that track a step index have
    // it (all but ddim, pndm and ddpm); set_timesteps clears it.
    bool has_begin_index() const { return tracks_step_index_; }
    void set_begin_index(int index);

    // out = the model input for timestep t (may equal `sample`).
    virtual void scale_model_input(const float * sample, float * out, int64_t count, double t);
    // prev = one step back from `sample` given the model's output at t. `noise` is called only by
    // stochastic schedulers (and must then be set). Every step after set_timesteps must have the
    // same element count (the history is kept per element).
    void step(const float * model_output, double t, const float * sample, float * prev, int64_t count,
              const NoiseSource & noise);
    // out = `original` noised to timestep t[b] for batch item b (`count` elements, `batch` items).
    virtual void add_noise(const float * original, const float * noise, float * out, int64_t count,
                           const std::vector<double> & t) const;

protected:
    Scheduler(std::string name, const SchedulerConfig & config);

    virtual void do_set_timesteps(int steps) = 0;
    virtual void do_step(const float * model_output, double t, const float * sample, float * prev, int64_t count,
                         const NoiseSource & noise) = 0;

    // Throws sd::RangeError unless set_timesteps ran.
    void require_timesteps() const;
    // The plain integer timesteps of the configured spacing (DDIM, DDPM): sets timesteps_ and
    // steps_ (set_timesteps has checked `steps`).
    void set_spaced_timesteps(int steps);
    // diffusers' index_for_timestep: the position of t in timesteps() (the second one if t occurs
    // twice, as after a restart), throwing if t is not one of them.
    int index_for_timestep(double t) const;
    // The step index (step_index in diffusers), set from the begin index or else the first t seen
    // after set_timesteps.
    int current_index(double t);
    // The index add_noise uses for timestep t: diffusers looks t up unless a begin index is set.
    int noise_index(double t) const;

    std::string name_;
    SchedulerConfig config_;
    std::vector<float> betas_;
    std::vector<float> alphas_cumprod_;
    std::vector<float> timesteps_;
    std::vector<float> sigmas_;
    bool stochastic_ = false;
    int steps_ = 0;
    std::optional<int> step_index_;
    std::optional<int> begin_index_;
    bool tracks_step_index_ = false;

private:
    int64_t step_count_ = 0;  // the element count of this run's steps (0 before the first)
};

// ---- the catalog (sched/scheduler_catalog.cpp) ----
// The one table of scheduler names, A1111's names, what each scheduler supports and the overrides
// a caller may give. lib/ reads it through the addon; make_scheduler and scheduler_config check
// against it.

struct SchedulerInfo {
    std::string name;    // canonical: "euler", "dpmpp_2m_karras", …
    bool karras_sigmas;  // takes use_karras_sigmas (the *_karras names have it on by default)
    bool begin_index;    // has set_begin_index (diffusers' step index; not ddim, pndm, ddpm)
    int order;           // model calls per step (heun 2, whose timesteps repeat; others 1)
};

// An override of SD's scheduler config, by lib/'s camelCase name (diffusers' config key).
struct SchedulerOption {
    enum class Kind { one_of, boolean, integer, number };
    std::string name;                 // "timestepSpacing", "useKarrasSigmas", …
    Kind kind;
    std::vector<std::string> values;  // one_of: the names it takes
    double min, max;                  // integer, number: the range, inclusive
};

struct SchedulerCatalog {
    std::vector<SchedulerInfo> schedulers;                    // in our listing order
    std::vector<std::pair<std::string, std::string>> a1111;   // A1111's name → ours, in A1111's order
    std::vector<SchedulerOption> overrides;
};

const SchedulerCatalog & scheduler_catalog();

// A scheduler by our name or A1111's (case-insensitive), or nullptr.
const SchedulerInfo * find_scheduler(const std::string & name);
// The canonical name for `name`, or "" if it is none.
std::string canonical_scheduler_name(const std::string & name);
// The canonical names, in the catalog's order.
std::vector<std::string> scheduler_names();

// Overrides as a caller gives them, unchecked; scheduler_config checks each against the catalog
// (sd::RangeError naming it and what it takes) and applies it to SD's config.
struct SchedulerOverrides {
    std::optional<std::string> timestep_spacing;
    std::optional<std::string> prediction_type;
    std::optional<bool> use_karras_sigmas;
    std::optional<double> steps_offset;
    std::optional<double> eta;
};

SchedulerConfig scheduler_config(const SchedulerOverrides & overrides);

// A scheduler by any name find_scheduler knows; sd::RangeError for others (listing ours) and for
// use_karras_sigmas on a scheduler without Karras sigmas.
std::unique_ptr<Scheduler> make_scheduler(const std::string & name, const SchedulerConfig & config);

} // namespace sd
