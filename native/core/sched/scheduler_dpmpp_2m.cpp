// DPM-Solver++(2M) (Lu et al. 2022), as diffusers' DPMSolverMultistepScheduler with its defaults
// (algorithm dpmsolver++, solver order 2, midpoint, lower_order_final, final σ = 0), and with
// Karras σ for dpmpp_2m_karras. dpmpp_2m_sde(_karras) is its stochastic form (algorithm
// sde-dpmsolver++), which draws fresh noise z on every step. The schedule is MultistepScheduler's.
//
// Each noise level σ gives α = 1/√(σ²+1), s = σ·α and λ = log α − log s. The model output is
// turned into a data prediction x̂₀ = (x − s·ε)/α (epsilon) or α·x − s·v (v-prediction). From
// level i to i+1 with h = λ_{i+1} − λ_i:
//   first order (the first and the last step):  x' = (s_{i+1}/s_i)·x − α_{i+1}(e^{−h} − 1)·x̂₀
//   second order (the others), with r = (λ_i − λ_{i−1})/h, D = (x̂₀ − x̂₀_prev)/r:
//     x' = (s_{i+1}/s_i)·x − α_{i+1}(e^{−h} − 1)·x̂₀ − ½·α_{i+1}(e^{−h} − 1)·D
// SDE form: x' = (s_{i+1}/s_i)·e^{−h}·x + α_{i+1}(1 − e^{−2h})·(x̂₀ [+ ½·D]) + s_{i+1}·√(1 − e^{−2h})·z
// The final σ is 0, so λ = +∞ there and the last step returns x̂₀ (the SDE form still draws z).
#include <cmath>
#include <vector>

#include "sched/scheduling.h"
#include "sdcore/error.h"

namespace sd {

namespace {

class DpmppTwoMScheduler : public MultistepScheduler {
public:
    DpmppTwoMScheduler(const SchedulerConfig & config, bool karras, bool sde)
        : MultistepScheduler(name_for(karras, sde), config, karras), sde_(sde) {
        stochastic_ = sde;
    }

    void do_set_timesteps(int steps) override {
        build_multistep_schedule(steps);
        previous_x0_.clear();
        lower_order_nums_ = 0;
    }

    void do_step(const float * model_output, double t, const float * sample, float * prev, int64_t count,
                 const NoiseSource & noise) override {
        require_timesteps();
        if (!step_index_) step_index_ = begin_index_ ? *begin_index_ : multistep_index_for_timestep(t);
        const int index = current_index(t);
        const int n = static_cast<int>(timesteps_.size());
        const bool last = index == n - 1;  // final σ is 0: always first order there

        const NoiseLevel s0 = level(sigmas_[index]);
        const NoiseLevel to = level(sigmas_[index + 1]);
        std::vector<float> x0(static_cast<size_t>(count));
        const bool epsilon = config_.prediction_type == PredictionType::epsilon;
        for (int64_t i = 0; i < count; ++i) {
            x0[i] = epsilon ? (sample[i] - s0.sigma * model_output[i]) / s0.alpha
                            : s0.alpha * sample[i] - s0.sigma * model_output[i];
        }

        const float h = to.lambda - s0.lambda;
        const bool first_order = lower_order_nums_ < 1 || last;
        std::vector<float> d1;
        if (!first_order) {
            const NoiseLevel s1 = level(sigmas_[index - 1]);
            const float h0 = s0.lambda - s1.lambda;
            const float inv_r0 = 1.0f / (h0 / h);
            d1.resize(static_cast<size_t>(count));
            for (int64_t i = 0; i < count; ++i) d1[i] = inv_r0 * (x0[i] - previous_x0_[i]);
        }
        if (sde_) {
            if (!noise) throw RangeError("The " + name() + " scheduler needs noise");
            std::vector<float> z(static_cast<size_t>(count));
            noise(z.data(), count);
            const float decay = to.sigma / s0.sigma * std::exp(-h);
            const float c0 = to.alpha * (1.0f - std::exp(-2.0f * h));
            const float c1 = 0.5f * c0;
            const float cz = to.sigma * std::sqrt(1.0f - std::exp(-2.0f * h));
            for (int64_t i = 0; i < count; ++i) {
                const float data = first_order ? c0 * x0[i] : c0 * x0[i] + c1 * d1[i];
                prev[i] = decay * sample[i] + data + cz * z[i];
            }
        } else {
            const float ratio = to.sigma / s0.sigma;
            const float c0 = to.alpha * (std::exp(-h) - 1.0f);
            const float c1 = 0.5f * c0;
            for (int64_t i = 0; i < count; ++i) {
                prev[i] = first_order ? ratio * sample[i] - c0 * x0[i] : ratio * sample[i] - c0 * x0[i] - c1 * d1[i];
            }
        }
        previous_x0_ = std::move(x0);
        if (lower_order_nums_ < 2) ++lower_order_nums_;
        step_index_ = index + 1;
    }

private:
    static const char * name_for(bool karras, bool sde) {
        if (sde) return karras ? "dpmpp_2m_sde_karras" : "dpmpp_2m_sde";
        return karras ? "dpmpp_2m_karras" : "dpmpp_2m";
    }

    bool sde_;
    std::vector<float> previous_x0_;
    int lower_order_nums_ = 0;
};

} // namespace

std::unique_ptr<Scheduler> make_dpmpp_2m_scheduler(const SchedulerConfig & config, bool karras, bool sde) {
    return std::make_unique<DpmppTwoMScheduler>(config, karras, sde);
}

} // namespace sd
