// LMS (k-diffusion's linear multistep sampler, order 4), as diffusers' LMSDiscreteScheduler.
// The noise levels are SigmaScheduler's (Karras's with useKarrasSigmas).
//
// The ODE dx/dσ = d(x, σ) with d = (x − x̂₀)/σ (x̂₀ as in Euler) is stepped with the last k ≤ 4
// derivatives d₀ (newest), d₁, …: x' = x + Σⱼ cⱼ·dⱼ, where cⱼ integrates, from σ_i to σ_{i+1}, the
// Lagrange basis polynomial of node σ_{i−j} over the nodes σ_i, σ_{i−1}, …, σ_{i−k+1}. The
// polynomials have degree ≤ 3, so a 4-point Gauss–Legendre rule integrates them exactly (diffusers
// calls scipy's adaptive quadrature, which agrees to float32 precision).
#include <algorithm>
#include <cmath>
#include <deque>
#include <vector>

#include "sched/scheduling.h"
#include "sdcore/error.h"

namespace sd {

namespace {

constexpr int kOrder = 4;

class LmsScheduler : public SigmaScheduler {
public:
    explicit LmsScheduler(const SchedulerConfig & config) : SigmaScheduler("lms", config) {}

    void do_set_timesteps(int steps) override {
        build_sigma_schedule(steps);
        derivatives_.clear();
    }

    void do_step(const float * model_output, double t, const float * sample, float * prev, int64_t count,
                 const NoiseSource &) override {
        require_timesteps();
        const int index = current_index(t);
        const float sigma = sigmas_[index];
        const bool epsilon = config_.prediction_type == PredictionType::epsilon;
        const float s2_plus_1 = sigma * sigma + 1.0f;
        const float c_out = -sigma / std::sqrt(s2_plus_1);
        std::vector<float> derivative(static_cast<size_t>(count));
        for (int64_t i = 0; i < count; ++i) {
            const float x0 = epsilon ? sample[i] - sigma * model_output[i] : model_output[i] * c_out + sample[i] / s2_plus_1;
            derivative[i] = (sample[i] - x0) / sigma;
        }
        derivatives_.push_back(std::move(derivative));
        if (derivatives_.size() > kOrder) derivatives_.pop_front();

        const int order = std::min(index + 1, kOrder);
        std::vector<float> coeffs(static_cast<size_t>(order));
        for (int j = 0; j < order; ++j) coeffs[j] = static_cast<float>(lms_coefficient(order, index, j));

        // sample + (((0 + c₀·d₀) + c₁·d₁) + …), newest derivative first, as Python's sum() adds.
        // After setBeginIndex there are fewer derivatives than the order: diffusers' zip() then
        // uses only the first coefficients (still those of the full order).
        const size_t newest = derivatives_.size() - 1;
        const int terms = std::min(order, static_cast<int>(derivatives_.size()));
        for (int64_t i = 0; i < count; ++i) {
            float sum = 0.0f;
            for (int j = 0; j < terms; ++j) sum = sum + coeffs[j] * derivatives_[newest - j][i];
            prev[i] = sample[i] + sum;
        }
        step_index_ = index + 1;
    }

private:
    // ∫_{σ_i}^{σ_{i+1}} Π_{k≠j} (τ − σ_{i−k}) / (σ_{i−j} − σ_{i−k}) dτ
    double lms_coefficient(int order, int i, int j) const {
        static const double nodes[4] = {-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526};
        static const double weights[4] = {0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538};
        const double a = sigmas_[i];
        const double b = sigmas_[i + 1];
        double total = 0.0;
        for (int q = 0; q < 4; ++q) {
            const double tau = 0.5 * (b - a) * nodes[q] + 0.5 * (a + b);
            double prod = 1.0;
            for (int k = 0; k < order; ++k) {
                if (k == j) continue;
                prod *= (tau - sigmas_[i - k]) / (static_cast<double>(sigmas_[i - j]) - sigmas_[i - k]);
            }
            total += weights[q] * prod;
        }
        return 0.5 * (b - a) * total;
    }

    std::deque<std::vector<float>> derivatives_;
};

} // namespace

std::unique_ptr<Scheduler> make_lms_scheduler(const SchedulerConfig & config) {
    return std::make_unique<LmsScheduler>(config);
}

} // namespace sd
