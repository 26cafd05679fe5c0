// DDPM (Ho et al. 2020) ancestral sampling, as diffusers' DDPMScheduler built from SD's config
// (variance fixed_small, clip_sample false). With ᾱ = alphas_cumprod, t' the next timestep of the
// schedule (ᾱ_{t'} = 1 after the last), a_t = ᾱ_t/ᾱ_{t'} and b_t = 1 − a_t:
//   x̂₀ as in DDIM (epsilon or v-prediction)
//   μ  = (√ᾱ_{t'}·b_t/(1−ᾱ_t))·x̂₀ + (√a_t·(1−ᾱ_{t'})/(1−ᾱ_t))·x
//   x' = μ + √(max((1−ᾱ_{t'})/(1−ᾱ_t)·b_t, 1e−20))·z      (no noise drawn at t = 0)
#include <algorithm>
#include <cmath>
#include <vector>

#include "sched/scheduling.h"
#include "sdcore/error.h"

namespace sd {

namespace {

class DdpmScheduler : public Scheduler {
public:
    explicit DdpmScheduler(const SchedulerConfig & config) : Scheduler("ddpm", config) {
        if (!config_.timestep_spacing) config_.timestep_spacing = TimestepSpacing::leading;
        stochastic_ = true;
    }

    void do_set_timesteps(int steps) override { set_spaced_timesteps(steps); }

    void do_step(const float * model_output, double t, const float * sample, float * prev, int64_t count,
                 const NoiseSource & noise) override {
        require_timesteps();
        const auto at = std::find(timesteps_.begin(), timesteps_.end(), static_cast<float>(t));
        if (at == timesteps_.end()) throw RangeError("Timestep " + std::to_string(t) + " is not one of the scheduler's timesteps");
        const int timestep = static_cast<int>(t);
        const int prev_timestep = at + 1 == timesteps_.end() ? -1 : static_cast<int>(*(at + 1));

        const float alpha_prod = alphas_cumprod_[timestep];
        const float alpha_prod_prev = prev_timestep >= 0 ? alphas_cumprod_[prev_timestep] : 1.0f;
        const float beta_prod = 1.0f - alpha_prod;
        const float beta_prod_prev = 1.0f - alpha_prod_prev;
        const float current_alpha = alpha_prod / alpha_prod_prev;
        const float current_beta = 1.0f - current_alpha;
        const float sqrt_alpha = std::sqrt(alpha_prod);
        const float sqrt_beta = std::sqrt(beta_prod);
        const float x0_coeff = (std::sqrt(alpha_prod_prev) * current_beta) / beta_prod;
        const float x_coeff = std::sqrt(current_alpha) * beta_prod_prev / beta_prod;

        const bool epsilon = config_.prediction_type == PredictionType::epsilon;
        for (int64_t i = 0; i < count; ++i) {
            const float x0 = epsilon ? (sample[i] - sqrt_beta * model_output[i]) / sqrt_alpha
                                     : sqrt_alpha * sample[i] - sqrt_beta * model_output[i];
            prev[i] = x0_coeff * x0 + x_coeff * sample[i];
        }
        if (timestep > 0) {
            if (!noise) throw RangeError("The ddpm scheduler needs noise");
            // _get_variance recomputes b_t the same way.
            const float beta_t = 1.0f - alpha_prod / alpha_prod_prev;
            const float variance = std::max((1.0f - alpha_prod_prev) / (1.0f - alpha_prod) * beta_t, 1e-20f);
            const float std_dev = std::sqrt(variance);
            std::vector<float> z(static_cast<size_t>(count));
            noise(z.data(), count);
            for (int64_t i = 0; i < count; ++i) prev[i] = prev[i] + std_dev * z[i];
        }
    }
};

} // namespace

std::unique_ptr<Scheduler> make_ddpm_scheduler(const SchedulerConfig & config) {
    return std::make_unique<DdpmScheduler>(config);
}

} // namespace sd
