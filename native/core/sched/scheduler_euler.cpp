// Euler (Karras et al. 2022, Algorithm 2 without churn), as diffusers' EulerDiscreteScheduler.
// The noise levels are SigmaScheduler's. One step from σ to σ':
//   x̂₀ = x − σ·ε                      (epsilon)
//   x̂₀ = −σ/√(σ²+1)·v + x/(σ²+1)      (v-prediction)
//   d  = (x − x̂₀) / σ,   x' = x + d·(σ' − σ)
#include <cmath>

#include "sched/scheduling.h"
#include "sdcore/error.h"

namespace sd {

namespace {

class EulerScheduler : public SigmaScheduler {
public:
    explicit EulerScheduler(const SchedulerConfig & config) : SigmaScheduler("euler", config) {}

    void do_set_timesteps(int steps) override { build_sigma_schedule(steps); }

    void do_step(const float * model_output, double t, const float * sample, float * prev, int64_t count,
                 const NoiseSource &) override {
        require_timesteps();
        const int index = current_index(t);
        const float sigma = sigmas_[index];
        const float dt = sigmas_[index + 1] - sigma;
        if (config_.prediction_type == PredictionType::epsilon) {
            for (int64_t i = 0; i < count; ++i) {
                const float x0 = sample[i] - sigma * model_output[i];
                const float derivative = (sample[i] - x0) / sigma;
                prev[i] = sample[i] + derivative * dt;
            }
        } else {
            const float s2_plus_1 = sigma * sigma + 1.0f;
            const float c_out = -sigma / std::sqrt(s2_plus_1);
            for (int64_t i = 0; i < count; ++i) {
                const float x0 = model_output[i] * c_out + sample[i] / s2_plus_1;
                const float derivative = (sample[i] - x0) / sigma;
                prev[i] = sample[i] + derivative * dt;
            }
        }
        step_index_ = index + 1;
    }
};

} // namespace

std::unique_ptr<Scheduler> make_euler_scheduler(const SchedulerConfig & config) {
    return std::make_unique<EulerScheduler>(config);
}

} // namespace sd
