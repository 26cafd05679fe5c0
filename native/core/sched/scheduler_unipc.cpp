// UniPC (Zhao et al. 2023), as diffusers' UniPCMultistepScheduler with its defaults: order 2,
// data prediction (predict_x0), B(h) = e^h − 1 ("bh2"), lower order at the end, final σ = 0.
// The schedule is MultistepScheduler's; α, s, λ and x̂₀ are as in DPM-Solver++.
//
// With h = λ_t − λ_s and hh = −h, φ₁ = e^{hh} − 1, B = e^{hh} − 1:
//   predictor (UniP) from x at level s to level t, newest x̂₀ m₀, previous m₁ at λ₁:
//     x_t = (s_t/s_s)·x − α_t·φ₁·m₀ − α_t·B·ρ_p·(m₁ − m₀)/r,   r = (λ₁ − λ_s)/h,  ρ_p = ½
//     (the last term only at order 2)
//   corrector (UniC), run when the model has been evaluated at the predicted x_t (the next call),
//   refines it with that new x̂₀ m_t:
//     x_t = (s_t/s_s)·x − α_t·φ₁·m₀ − α_t·B·(ρ₀·(m₁ − m₀)/r + ρ_c·(m_t − m₀))
//   where at order 1 ρ_c = ½, and at order 2 (ρ₀, ρ_c) solve [[1, 1], [r, 1]]·ρ = (b₁, b₂) with
//   b_k = k!·ψ_k/B, ψ₁ = φ₁/hh − 1, ψ_{k+1} = ψ_k/hh − 1/(k+1)!.
#include <algorithm>
#include <cmath>
#include <deque>
#include <tuple>
#include <utility>
#include <vector>

#include "sched/scheduling.h"
#include "sdcore/error.h"

namespace sd {

namespace {

// Solves the 2×2 system [[1, 1], [r, 1]]·ρ = b by LU with partial pivoting, in float32 as
// torch.linalg.solve (LAPACK) does.
std::pair<float, float> solve_2x2(float r, float b0, float b1) {
    float a[2][2] = {{1.0f, 1.0f}, {r, 1.0f}};
    float rhs[2] = {b0, b1};
    if (std::fabs(a[1][0]) > std::fabs(a[0][0])) {
        std::swap(a[0][0], a[1][0]);
        std::swap(a[0][1], a[1][1]);
        std::swap(rhs[0], rhs[1]);
    }
    const float l = a[1][0] / a[0][0];
    const float u11 = a[1][1] - l * a[0][1];
    const float y1 = rhs[1] - l * rhs[0];
    const float x1 = y1 / u11;
    const float x0 = (rhs[0] - a[0][1] * x1) / a[0][0];
    return {x0, x1};
}

class UniPcScheduler : public MultistepScheduler {
public:
    explicit UniPcScheduler(const SchedulerConfig & config) : MultistepScheduler("unipc", config, false) {}

    void do_set_timesteps(int steps) override {
        build_multistep_schedule(steps);
        outputs_.clear();
        last_sample_.clear();
        lower_order_nums_ = 0;
        this_order_ = 0;
    }

    void do_step(const float * model_output, double t, const float * sample, float * prev, int64_t count,
                 const NoiseSource &) override {
        require_timesteps();
        if (!step_index_) step_index_ = begin_index_ ? *begin_index_ : multistep_index_for_timestep(t);
        const int index = current_index(t);
        const int n = static_cast<int>(timesteps_.size());

        const NoiseLevel here = level(sigmas_[index]);
        std::vector<float> x0(static_cast<size_t>(count));
        const bool epsilon = config_.prediction_type == PredictionType::epsilon;
        for (int64_t i = 0; i < count; ++i) {
            x0[i] = epsilon ? (sample[i] - here.sigma * model_output[i]) / here.alpha
                            : here.alpha * sample[i] - here.sigma * model_output[i];
        }

        std::vector<float> x(sample, sample + count);
        if (index > 0 && !last_sample_.empty()) corrector(x0, x, index, count);

        outputs_.push_back(std::move(x0));
        if (outputs_.size() > 2) outputs_.pop_front();
        const int order = std::min({2, n - index, lower_order_nums_ + 1});
        this_order_ = order;
        last_sample_ = x;
        predictor(x, prev, index, order, count);
        if (lower_order_nums_ < 2) ++lower_order_nums_;
        step_index_ = index + 1;
    }

private:
    struct Phi {
        float hh, h_phi_1, b_h;
    };
    static Phi phi(float h) {
        Phi p;
        p.hh = -h;
        p.h_phi_1 = std::expm1(p.hh);
        p.b_h = std::expm1(p.hh);
        return p;
    }

    // From outputs_ = [.., m₁, m₀] and x at level index to level index + 1.
    void predictor(const std::vector<float> & x, float * prev, int index, int order, int64_t count) const {
        const NoiseLevel s0 = level(sigmas_[index]);
        const NoiseLevel to = level(sigmas_[index + 1]);
        const float h = to.lambda - s0.lambda;
        const Phi p = phi(h);
        const float ratio = to.sigma / s0.sigma;
        const float c_m0 = to.alpha * p.h_phi_1;
        const float c_res = to.alpha * p.b_h;
        const std::vector<float> & m0 = outputs_.back();
        if (order == 1) {
            for (int64_t i = 0; i < count; ++i) prev[i] = (ratio * x[i] - c_m0 * m0[i]) - c_res * 0.0f;
            return;
        }
        const std::vector<float> & m1 = outputs_[outputs_.size() - 2];
        const NoiseLevel s1 = level(sigmas_[index - 1]);
        const float rk = (s1.lambda - s0.lambda) / h;
        for (int64_t i = 0; i < count; ++i) {
            const float d1 = (m1[i] - m0[i]) / rk;
            const float res = 0.5f * d1;
            prev[i] = (ratio * x[i] - c_m0 * m0[i]) - c_res * res;
        }
    }

    // Refines x (the predicted sample at level index) with m_t, its new x̂₀; outputs_ not yet shifted.
    void corrector(const std::vector<float> & model_t, std::vector<float> & x, int index, int64_t count) const {
        const int order = this_order_;
        const NoiseLevel lt = level(sigmas_[index]);
        const NoiseLevel s0 = level(sigmas_[index - 1]);
        const float h = lt.lambda - s0.lambda;
        const Phi p = phi(h);
        const float ratio = lt.sigma / s0.sigma;
        const float c_m0 = lt.alpha * p.h_phi_1;
        const float c_res = lt.alpha * p.b_h;
        const std::vector<float> & m0 = outputs_.back();
        const std::vector<float> & last = last_sample_;

        float rho_prev = 0.0f, rho_c = 0.5f, rk = 1.0f;
        if (order == 2) {
            const NoiseLevel s1 = level(sigmas_[index - 2]);
            rk = (s1.lambda - s0.lambda) / h;
            // b₁ = 1!·ψ₁/B, b₂ = 2!·ψ₂/B
            float psi = p.h_phi_1 / p.hh - 1.0f;
            const float b1 = psi * 1.0f / p.b_h;
            psi = psi / p.hh - 0.5f;
            const float b2 = psi * 2.0f / p.b_h;
            std::tie(rho_prev, rho_c) = solve_2x2(rk, b1, b2);
        }
        for (int64_t i = 0; i < count; ++i) {
            const float base = ratio * last[i] - c_m0 * m0[i];
            const float d1_t = model_t[i] - m0[i];
            float corr = rho_c * d1_t;
            if (order == 2) {
                const std::vector<float> & m1 = outputs_[outputs_.size() - 2];
                const float d1 = (m1[i] - m0[i]) / rk;
                corr = rho_prev * d1 + corr;
            }
            x[i] = base - c_res * corr;
        }
    }

    std::deque<std::vector<float>> outputs_;  // converted model outputs (x̂₀), newest last
    std::vector<float> last_sample_;
    int lower_order_nums_ = 0;
    int this_order_ = 0;
};

} // namespace

std::unique_ptr<Scheduler> make_unipc_scheduler(const SchedulerConfig & config) {
    return std::make_unique<UniPcScheduler>(config);
}

} // namespace sd
