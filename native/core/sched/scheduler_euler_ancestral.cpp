// Euler ancestral (k-diffusion's sample_euler_ancestral, eta 1), as diffusers'
// EulerAncestralDiscreteScheduler. The noise levels are SigmaScheduler's (never Karras's: diffusers'
// class has no such option). One step from σ to σ' splits σ' into a deterministic part σ↓ and
// fresh noise σ↑:
//   σ↑ = √(σ'²·(σ² − σ'²)/σ²),  σ↓ = √(σ'² − σ↑²)
//   x̂₀ as in Euler,  d = (x − x̂₀)/σ,  x' = x + d·(σ↓ − σ) + σ↑·z   (z drawn every step)
#include <cmath>
#include <vector>

#include "sched/scheduling.h"
#include "sdcore/error.h"

namespace sd {

namespace {

class EulerAncestralScheduler : public SigmaScheduler {
public:
    explicit EulerAncestralScheduler(const SchedulerConfig & config) : SigmaScheduler("euler_a", with_plain_sigmas(config)) {
        stochastic_ = true;
    }

    void do_set_timesteps(int steps) override { build_sigma_schedule(steps); }

    void do_step(const float * model_output, double t, const float * sample, float * prev, int64_t count,
                 const NoiseSource & noise) override {
        require_timesteps();
        if (!noise) throw RangeError("The euler_a scheduler needs noise");
        const int index = current_index(t);
        const float sigma = sigmas_[index];
        const float sigma_to = sigmas_[index + 1];
        const float from2 = sigma * sigma;
        const float to2 = sigma_to * sigma_to;
        const float sigma_up = std::sqrt(to2 * (from2 - to2) / from2);
        const float sigma_down = std::sqrt(to2 - sigma_up * sigma_up);
        const float dt = sigma_down - sigma;

        const bool epsilon = config_.prediction_type == PredictionType::epsilon;
        const float s2_plus_1 = from2 + 1.0f;
        const float c_out = -sigma / std::sqrt(s2_plus_1);
        for (int64_t i = 0; i < count; ++i) {
            const float x0 = epsilon ? sample[i] - sigma * model_output[i] : model_output[i] * c_out + sample[i] / s2_plus_1;
            const float derivative = (sample[i] - x0) / sigma;
            prev[i] = sample[i] + derivative * dt;
        }
        std::vector<float> z(static_cast<size_t>(count));
        noise(z.data(), count);
        for (int64_t i = 0; i < count; ++i) prev[i] = prev[i] + z[i] * sigma_up;
        step_index_ = index + 1;
    }

private:
    static SchedulerConfig with_plain_sigmas(SchedulerConfig config) {
        if (config.use_karras_sigmas.value_or(false)) throw RangeError("The euler_a scheduler has no Karras sigmas");
        config.use_karras_sigmas = false;
        return config;
    }
};

} // namespace

std::unique_ptr<Scheduler> make_euler_ancestral_scheduler(const SchedulerConfig & config) {
    return std::make_unique<EulerAncestralScheduler>(config);
}

} // namespace sd
