// DDIM (Song et al. 2020), as diffusers' DDIMScheduler (eta from the config, as step(eta=…)).
//
// With ᾱ = alphas_cumprod, t' = t − T/n (ᾱ_{t'} = ᾱ₀ when t' < 0, set_alpha_to_one being false):
//   x̂₀ = (x − √(1−ᾱ_t)·ε) / √ᾱ_t,  ε̂ = ε                   (epsilon)
//   x̂₀ = √ᾱ_t·x − √(1−ᾱ_t)·v,     ε̂ = √ᾱ_t·v + √(1−ᾱ_t)·x  (v-prediction)
//   σ_t = η·√((1−ᾱ_{t'})/(1−ᾱ_t) · (1 − ᾱ_t/ᾱ_{t'}))
//   x'  = √ᾱ_{t'}·x̂₀ + √(1 − ᾱ_{t'} − σ_t²)·ε̂ + σ_t·z
#include <cmath>

#include "sched/scheduling.h"
#include "sdcore/error.h"

namespace sd {

namespace {

class DdimScheduler : public Scheduler {
public:
    explicit DdimScheduler(const SchedulerConfig & config) : Scheduler("ddim", config) {
        if (!config_.timestep_spacing) config_.timestep_spacing = TimestepSpacing::leading;
        stochastic_ = config_.eta > 0;
    }

    void do_set_timesteps(int steps) override { set_spaced_timesteps(steps); }

    void do_step(const float * model_output, double t, const float * sample, float * prev, int64_t count,
                 const NoiseSource & noise) override {
        require_timesteps();
        const int train = config_.num_train_timesteps;
        if (!(t >= 0) || t > train - 1 || std::floor(t) != t) {
            throw RangeError("Expected an integer timestep between 0 and " + std::to_string(train - 1));
        }
        const int timestep = static_cast<int>(t);
        const int prev_timestep = timestep - train / steps_;
        const float alpha_prod = alphas_cumprod_[timestep];
        const float alpha_prod_prev = prev_timestep >= 0 ? alphas_cumprod_[prev_timestep] : final_alpha_cumprod();
        const float beta_prod = 1.0f - alpha_prod;
        const float sqrt_alpha = std::sqrt(alpha_prod);
        const float sqrt_beta = std::sqrt(beta_prod);

        const float beta_prod_prev = 1.0f - alpha_prod_prev;
        const float variance = (beta_prod_prev / beta_prod) * (1.0f - alpha_prod / alpha_prod_prev);
        const float std_dev = static_cast<float>(config_.eta) * std::sqrt(variance);
        const float direction_coeff = std::sqrt(1.0f - alpha_prod_prev - std_dev * std_dev);
        const float sqrt_alpha_prev = std::sqrt(alpha_prod_prev);

        const bool epsilon = config_.prediction_type == PredictionType::epsilon;
        for (int64_t i = 0; i < count; ++i) {
            float x0, eps;
            if (epsilon) {
                x0 = (sample[i] - sqrt_beta * model_output[i]) / sqrt_alpha;
                eps = model_output[i];
            } else {
                x0 = sqrt_alpha * sample[i] - sqrt_beta * model_output[i];
                eps = sqrt_alpha * model_output[i] + sqrt_beta * sample[i];
            }
            prev[i] = sqrt_alpha_prev * x0 + direction_coeff * eps;
        }
        if (config_.eta > 0) {
            if (!noise) throw RangeError("The ddim scheduler with eta > 0 needs noise");
            std::vector<float> z(static_cast<size_t>(count));
            noise(z.data(), count);
            for (int64_t i = 0; i < count; ++i) prev[i] = prev[i] + std_dev * z[i];
        }
    }

private:
    float final_alpha_cumprod() const { return config_.set_alpha_to_one ? 1.0f : alphas_cumprod_[0]; }
};

} // namespace

std::unique_ptr<Scheduler> make_ddim_scheduler(const SchedulerConfig & config) {
    return std::make_unique<DdimScheduler>(config);
}

} // namespace sd
