// LCM (Luo et al. 2023, latent consistency models' multistep sampling), as diffusers'
// LCMScheduler built from SD's config (original_inference_steps 50, timestep_scaling 10).
//
// Timesteps: of the 50 "origin" timesteps 20k − 1 (k = 1 … 50), descending, the ones at
// floor(i·50/n) for i = 0 … n−1 (so n ≤ 50; timestep spacing and steps_offset play no part).
// A step at t (t' the next timestep, or t itself at the end), with s = 10·t:
//   x̂₀ as in DDIM;  c_skip = ¼/(s² + ¼),  c_out = s/√(s² + ¼)
//   x̄  = c_out·x̂₀ + c_skip·x
//   x' = √ᾱ_{t'}·x̄ + √(1−ᾱ_{t'})·z   (the last step returns x̄ and draws nothing)
#include <cmath>
#include <vector>

#include "sched/scheduling.h"
#include "sdcore/error.h"

namespace sd {

namespace {

constexpr int kOriginalSteps = 50;
constexpr double kTimestepScaling = 10.0;

class LcmScheduler : public Scheduler {
public:
    explicit LcmScheduler(const SchedulerConfig & config) : Scheduler("lcm", config) {
        if (!config_.timestep_spacing) config_.timestep_spacing = TimestepSpacing::leading;
        stochastic_ = true;
        tracks_step_index_ = true;
    }

    void do_set_timesteps(int steps) override {
        const int train = config_.num_train_timesteps;
        const int k = train / kOriginalSteps;
        if (steps < 1 || steps > kOriginalSteps) {
            throw RangeError("Expected integer steps between 1 and " + std::to_string(kOriginalSteps) + " for the lcm scheduler");
        }
        std::vector<int64_t> origin;
        for (int i = kOriginalSteps; i >= 1; --i) origin.push_back(static_cast<int64_t>(i) * k - 1);
        // numpy.linspace(0, 50, n, endpoint=False), floored
        const double step = static_cast<double>(origin.size()) / steps;
        timesteps_.clear();
        for (int i = 0; i < steps; ++i) {
            const size_t index = static_cast<size_t>(std::floor(i * step));
            timesteps_.push_back(static_cast<float>(origin[index]));
        }
        steps_ = steps;
        step_index_.reset();
        begin_index_.reset();
    }

    void do_step(const float * model_output, double t, const float * sample, float * prev, int64_t count,
                 const NoiseSource & noise) override {
        require_timesteps();
        const int index = current_index(t);
        const int timestep = static_cast<int>(timesteps_[index]);
        const bool last = index == steps_ - 1;
        const int prev_timestep = index + 1 < static_cast<int>(timesteps_.size()) ? static_cast<int>(timesteps_[index + 1]) : timestep;

        const float alpha_prod = alphas_cumprod_[timestep];
        const float alpha_prod_prev = alphas_cumprod_[prev_timestep];
        const float sqrt_alpha = std::sqrt(alpha_prod);
        const float sqrt_beta = std::sqrt(1.0f - alpha_prod);

        const float scaled = static_cast<float>(timestep) * static_cast<float>(kTimestepScaling);
        const float s2 = scaled * scaled;
        const float c_skip = 0.25f / (s2 + 0.25f);
        const float c_out = scaled / std::sqrt(s2 + 0.25f);

        const bool epsilon = config_.prediction_type == PredictionType::epsilon;
        for (int64_t i = 0; i < count; ++i) {
            const float x0 = epsilon ? (sample[i] - sqrt_beta * model_output[i]) / sqrt_alpha
                                     : sqrt_alpha * sample[i] - sqrt_beta * model_output[i];
            prev[i] = c_out * x0 + c_skip * sample[i];
        }
        if (!last) {
            if (!noise) throw RangeError("The lcm scheduler needs noise");
            std::vector<float> z(static_cast<size_t>(count));
            noise(z.data(), count);
            const float a = std::sqrt(alpha_prod_prev);
            const float b = std::sqrt(1.0f - alpha_prod_prev);
            for (int64_t i = 0; i < count; ++i) prev[i] = a * prev[i] + b * z[i];
        }
        step_index_ = index + 1;
    }
};

} // namespace

std::unique_ptr<Scheduler> make_lcm_scheduler(const SchedulerConfig & config) {
    return std::make_unique<LcmScheduler>(config);
}

} // namespace sd
