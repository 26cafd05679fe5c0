// Heun (Karras et al. 2022, Algorithm 1 without churn), as diffusers' HeunDiscreteScheduler.
// The noise levels are SigmaScheduler's, with every level but the first and the final 0 visited
// twice: σ = [σ₀, σ₁, σ₁, σ₂, σ₂, …, 0], timesteps likewise (2n − 1 model calls for n steps).
// A step from σ to σ' is an Euler step (the first visit), then a correction at σ' (the second):
//   d = (x − x̂₀(x, σ))/σ,  x̃ = x + d·(σ' − σ)
//   d' = (x̃ − x̂₀(x̃, σ'))/σ',  x' = x + ½(d + d')·(σ' − σ)
// where x̂₀ is x − σ·ε (epsilon) or −σ/√(σ²+1)·v + x/(σ²+1) (v-prediction).
#include <cmath>
#include <optional>
#include <vector>

#include "sched/scheduling.h"
#include "sdcore/error.h"

namespace sd {

namespace {

class HeunScheduler : public SigmaScheduler {
public:
    explicit HeunScheduler(const SchedulerConfig & config) : SigmaScheduler("heun", config) {}

    void do_set_timesteps(int steps) override {
        build_sigma_schedule(steps);
        const std::vector<float> sigmas = sigmas_;
        const std::vector<float> timesteps = timesteps_;
        sigmas_.assign(1, sigmas.front());
        for (size_t i = 1; i + 1 < sigmas.size(); ++i) sigmas_.insert(sigmas_.end(), 2, sigmas[i]);
        sigmas_.push_back(sigmas.back());
        timesteps_.assign(1, timesteps.front());
        for (size_t i = 1; i < timesteps.size(); ++i) timesteps_.insert(timesteps_.end(), 2, timesteps[i]);
        dt_.reset();
        prev_derivative_.clear();
        first_sample_.clear();
    }

    void do_step(const float * model_output, double t, const float * sample, float * prev, int64_t count,
                 const NoiseSource &) override {
        require_timesteps();
        const int index = current_index(t);
        const bool first_order = !dt_;
        const float sigma = first_order ? sigmas_[index] : sigmas_[index - 1];
        const float sigma_next = first_order ? sigmas_[index + 1] : sigmas_[index];
        const float sigma_input = first_order ? sigma : sigma_next;
        const bool epsilon = config_.prediction_type == PredictionType::epsilon;
        const float s2_plus_1 = sigma_input * sigma_input + 1.0f;
        const float c_out = -sigma_input / std::sqrt(s2_plus_1);

        if (first_order) {
            const float dt = sigma_next - sigma;
            prev_derivative_.resize(static_cast<size_t>(count));
            for (int64_t i = 0; i < count; ++i) {
                const float x0 = epsilon ? sample[i] - sigma_input * model_output[i] : model_output[i] * c_out + sample[i] / s2_plus_1;
                prev_derivative_[i] = (sample[i] - x0) / sigma;
                prev[i] = sample[i] + prev_derivative_[i] * dt;
            }
            first_sample_.assign(sample, sample + count);
            dt_ = dt;
        } else {
            const float dt = *dt_;
            for (int64_t i = 0; i < count; ++i) {
                const float x0 = epsilon ? sample[i] - sigma_input * model_output[i] : model_output[i] * c_out + sample[i] / s2_plus_1;
                const float derivative = (sample[i] - x0) / sigma_next;
                const float mean = (prev_derivative_[i] + derivative) / 2.0f;
                prev[i] = first_sample_[i] + mean * dt;
            }
            dt_.reset();
            prev_derivative_.clear();
            first_sample_.clear();
        }
        step_index_ = index + 1;
    }

private:
    std::optional<float> dt_;               // set between the two halves of a step
    std::vector<float> prev_derivative_;
    std::vector<float> first_sample_;
};

} // namespace

std::unique_ptr<Scheduler> make_heun_scheduler(const SchedulerConfig & config) {
    return std::make_unique<HeunScheduler>(config);
}

} // namespace sd
