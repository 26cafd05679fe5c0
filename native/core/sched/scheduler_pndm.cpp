// PLMS (Liu et al. 2022, pseudo linear multistep), as diffusers' PNDMScheduler with
// skip_prk_steps, Stable Diffusion's default.
//
// The timesteps are the spaced ones with the second repeated: [t₁, t₂, t₂, t₃, …]. The first two
// steps form a second-order start (an Euler step to t₂, then the average of both outputs from
// t₁ again); after that the noise estimate is the Adams–Bashforth combination of the last 2, 3 or
// 4 model outputs e:  (3e₀ − e₁)/2,  (23e₀ − 16e₁ + 5e₂)/12,  (55e₀ − 59e₁ + 37e₂ − 9e₃)/24.
// The transfer from t to t' (formula 9 of the paper), with ᾱ = alphas_cumprod:
//   x' = √(ᾱ_{t'}/ᾱ_t)·x − (ᾱ_{t'} − ᾱ_t)·e / (ᾱ_t·√(1−ᾱ_{t'}) + √(ᾱ_t·(1−ᾱ_t)·ᾱ_{t'}))
// (v-prediction output is first turned into ε: √ᾱ_t·v + √(1−ᾱ_t)·x).
#include <algorithm>
#include <cmath>
#include <deque>

#include "sched/scheduling.h"
#include "sdcore/error.h"

namespace sd {

namespace {

class PndmScheduler : public Scheduler {
public:
    explicit PndmScheduler(const SchedulerConfig & config) : Scheduler("pndm", config) {
        if (!config_.timestep_spacing) config_.timestep_spacing = TimestepSpacing::leading;
    }

    void do_set_timesteps(int steps) override {
        const int train = config_.num_train_timesteps;
        // Ascending spaced timesteps, then diffusers' PLMS order: all but the last, the
        // second-to-last again, the last; reversed.
        std::vector<int64_t> ts = scheduling::integer_timesteps(*config_.timestep_spacing, steps, train, config_.steps_offset);
        std::reverse(ts.begin(), ts.end());
        std::vector<int64_t> plms(ts.begin(), ts.end() - 1);
        if (ts.size() >= 2) plms.push_back(ts[ts.size() - 2]);
        plms.push_back(ts.back());
        std::reverse(plms.begin(), plms.end());
        timesteps_.assign(plms.begin(), plms.end());
        steps_ = steps;
        ets_.clear();
        counter_ = 0;
        cur_sample_.clear();
    }

    void do_step(const float * model_output, double t, const float * sample, float * prev, int64_t count,
                 const NoiseSource &) override {
        require_timesteps();
        const int train = config_.num_train_timesteps;
        if (!(t >= 0) || t > train - 1 || std::floor(t) != t) {
            throw RangeError("Expected an integer timestep between 0 and " + std::to_string(train - 1));
        }
        const int stride = train / steps_;
        int timestep = static_cast<int>(t);
        int prev_timestep = timestep - stride;

        if (counter_ != 1) {
            while (ets_.size() > 3) ets_.pop_front();
            ets_.emplace_back(model_output, model_output + count);
        } else {
            prev_timestep = timestep;
            timestep = timestep + stride;
        }

        std::vector<float> e(static_cast<size_t>(count));
        const float * x = sample;
        const size_t n = ets_.size();
        if (n == 1 && counter_ == 0) {
            std::copy(model_output, model_output + count, e.begin());
            cur_sample_.assign(sample, sample + count);
        } else if (n == 1 && counter_ == 1) {
            const std::vector<float> & e0 = ets_[0];
            for (int64_t i = 0; i < count; ++i) e[i] = (model_output[i] + e0[i]) / 2.0f;
            x = cur_sample_.data();
        } else if (n == 2) {
            const std::vector<float> & e0 = ets_[1];
            const std::vector<float> & e1 = ets_[0];
            for (int64_t i = 0; i < count; ++i) e[i] = (3.0f * e0[i] - e1[i]) / 2.0f;
        } else if (n == 3) {
            const std::vector<float> & e0 = ets_[2];
            const std::vector<float> & e1 = ets_[1];
            const std::vector<float> & e2 = ets_[0];
            for (int64_t i = 0; i < count; ++i) e[i] = (23.0f * e0[i] - 16.0f * e1[i] + 5.0f * e2[i]) / 12.0f;
        } else {
            const std::vector<float> & e0 = ets_[3];
            const std::vector<float> & e1 = ets_[2];
            const std::vector<float> & e2 = ets_[1];
            const std::vector<float> & e3 = ets_[0];
            const float one_24th = static_cast<float>(1.0 / 24.0);
            for (int64_t i = 0; i < count; ++i) {
                e[i] = one_24th * (55.0f * e0[i] - 59.0f * e1[i] + 37.0f * e2[i] - 9.0f * e3[i]);
            }
        }

        transfer(x, timestep, prev_timestep, e.data(), prev, count);
        if (counter_ == 1) cur_sample_.clear();
        ++counter_;
    }

private:
    float alpha_at(int timestep) const {
        if (timestep >= static_cast<int>(alphas_cumprod_.size())) {
            throw RangeError("Timestep " + std::to_string(timestep) + " is past the training schedule (PLMS steps out of order?)");
        }
        return timestep >= 0 ? alphas_cumprod_[timestep] : (config_.set_alpha_to_one ? 1.0f : alphas_cumprod_[0]);
    }

    void transfer(const float * sample, int timestep, int prev_timestep, float * e, float * prev, int64_t count) const {
        const float alpha_prod = alpha_at(timestep);
        const float alpha_prod_prev = alpha_at(prev_timestep);
        const float beta_prod = 1.0f - alpha_prod;
        const float beta_prod_prev = 1.0f - alpha_prod_prev;
        if (config_.prediction_type == PredictionType::v_prediction) {
            const float sqrt_alpha = std::sqrt(alpha_prod);
            const float sqrt_beta = std::sqrt(beta_prod);
            for (int64_t i = 0; i < count; ++i) e[i] = sqrt_alpha * e[i] + sqrt_beta * sample[i];
        }
        const float sample_coeff = std::sqrt(alpha_prod_prev / alpha_prod);
        const float denom = alpha_prod * std::sqrt(beta_prod_prev) + std::sqrt(alpha_prod * beta_prod * alpha_prod_prev);
        const float diff = alpha_prod_prev - alpha_prod;
        for (int64_t i = 0; i < count; ++i) prev[i] = sample_coeff * sample[i] - diff * e[i] / denom;
    }

    std::deque<std::vector<float>> ets_;
    std::vector<float> cur_sample_;
    int counter_ = 0;
};

} // namespace

std::unique_ptr<Scheduler> make_pndm_scheduler(const SchedulerConfig & config) {
    return std::make_unique<PndmScheduler>(config);
}

} // namespace sd
