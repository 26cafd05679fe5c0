// What every scheduler shares: betas and alphas_cumprod, timestep spacing, sigma helpers, the
// step index, add_noise over alphas_cumprod. The names are scheduler_catalog.cpp's.
#include "sched/scheduling.h"

#include <algorithm>
#include <cmath>

#include "sdcore/error.h"

namespace sd {

namespace scheduling {

std::vector<float> torch_linspace_f32(double start_d, double end_d, int n) {
    // torch's CPU kernel: float start, end and step; the first half counts up from start, the
    // second half down from end, each value rounded once (a fused multiply-add).
    std::vector<float> out(static_cast<size_t>(std::max(n, 0)));
    if (n <= 0) return out;
    const float start = static_cast<float>(start_d);
    const float end = static_cast<float>(end_d);
    if (n == 1) {
        out[0] = start;
        return out;
    }
    const float step = (end - start) / static_cast<float>(n - 1);
    const int halfway = n / 2;
    for (int i = 0; i < n; ++i) {
        out[i] = i < halfway ? std::fma(step, static_cast<float>(i), start)
                             : std::fma(-step, static_cast<float>(n - 1 - i), end);
    }
    return out;
}

void make_betas(const SchedulerConfig & config, std::vector<float> & betas, std::vector<float> & alphas_cumprod) {
    const int n = config.num_train_timesteps;
    if (config.scaled_linear) {
        betas = torch_linspace_f32(std::sqrt(config.beta_start), std::sqrt(config.beta_end), n);
        for (float & b : betas) b = b * b;
    } else {
        betas = torch_linspace_f32(config.beta_start, config.beta_end, n);
    }
    // torch.cumprod on CPU accumulates float32 inputs in double.
    alphas_cumprod.resize(betas.size());
    double product = 1.0;
    for (size_t i = 0; i < betas.size(); ++i) {
        product *= static_cast<double>(1.0f - betas[i]);
        alphas_cumprod[i] = static_cast<float>(product);
    }
}

std::vector<double> np_linspace(double start, double end, int n) {
    std::vector<double> out(static_cast<size_t>(std::max(n, 0)));
    if (n <= 0) return out;
    const double step = n > 1 ? (end - start) / (n - 1) : 0.0;
    for (int i = 0; i < n; ++i) out[i] = i * step + start;
    if (n > 1) out[n - 1] = end;
    return out;
}

double np_round(double x) { return std::nearbyint(x); }

// numpy.arange(start, stop, step) for floats: ceil((stop - start) / step) values, start + i * delta
// where delta is (start + step) - start.
static std::vector<double> np_arange(double start, double stop, double step) {
    const double length = std::ceil((stop - start) / step);
    std::vector<double> out;
    if (!(length > 0)) return out;
    out.resize(static_cast<size_t>(length));
    const double delta = (start + step) - start;
    for (size_t i = 0; i < out.size(); ++i) out[i] = i == 0 ? start : start + static_cast<double>(i) * delta;
    return out;
}

void training_sigmas(const std::vector<float> & alphas_cumprod, std::vector<float> & sigmas, std::vector<float> & log_sigmas) {
    // ((1 − ᾱ)/ᾱ)^½ in float32 tensors; numpy's log of the float32 array.
    sigmas.resize(alphas_cumprod.size());
    log_sigmas.resize(alphas_cumprod.size());
    for (size_t i = 0; i < alphas_cumprod.size(); ++i) {
        const float a = alphas_cumprod[i];
        sigmas[i] = std::sqrt((1.0f - a) / a);
        log_sigmas[i] = static_cast<float>(std::log(static_cast<double>(sigmas[i])));
    }
}

std::vector<int64_t> integer_timesteps(TimestepSpacing spacing, int steps, int train_steps, int steps_offset) {
    std::vector<int64_t> out;
    switch (spacing) {
    case TimestepSpacing::linspace: {
        for (double v : np_linspace(0.0, train_steps - 1.0, steps)) out.push_back(static_cast<int64_t>(np_round(v)));
        std::reverse(out.begin(), out.end());
        break;
    }
    case TimestepSpacing::leading: {
        const int64_t ratio = train_steps / steps;
        for (int i = steps - 1; i >= 0; --i) out.push_back(i * ratio + steps_offset);
        break;
    }
    case TimestepSpacing::trailing: {
        // numpy's float arange can give one value more than `steps` (e.g. 1000 / 61); diffusers
        // keeps it, and so do we.
        const double ratio = static_cast<double>(train_steps) / steps;
        for (double v : np_arange(train_steps, 0.0, -ratio)) out.push_back(static_cast<int64_t>(np_round(v)) - 1);
        break;
    }
    }
    return out;
}

double np_interp(double x, const std::vector<double> & fp) {
    const size_t n = fp.size();
    if (x <= 0.0) return fp[0];
    if (x >= static_cast<double>(n - 1)) return fp[n - 1];
    const size_t j = static_cast<size_t>(std::floor(x));
    if (x == static_cast<double>(j)) return fp[j];
    const double slope = (fp[j + 1] - fp[j]) / 1.0;
    return slope * (x - static_cast<double>(j)) + fp[j];
}

std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int steps) {
    const double rho = 7.0;
    const double min_inv_rho = std::pow(sigma_min, 1.0 / rho);
    const double max_inv_rho = std::pow(sigma_max, 1.0 / rho);
    std::vector<double> ramp = np_linspace(0.0, 1.0, steps);
    std::vector<double> out(ramp.size());
    for (size_t i = 0; i < ramp.size(); ++i) out[i] = std::pow(max_inv_rho + ramp[i] * (min_inv_rho - max_inv_rho), rho);
    return out;
}

double sigma_to_t(double sigma, const std::vector<float> & log_sigmas) {
    const double log_sigma = std::log(std::max(sigma, 1e-10));
    // low: the last index whose log-sigma is ≤ log_sigma (0 if none), at most size - 2.
    const int last = static_cast<int>(log_sigmas.size()) - 1;
    int low = 0;
    for (int i = 0; i <= last; ++i) {
        if (log_sigma - static_cast<double>(log_sigmas[i]) >= 0) low = i;
    }
    low = std::min(low, last - 1);
    const int high = low + 1;
    const double lo = log_sigmas[low];
    const double hi = log_sigmas[high];
    double w = (lo - log_sigma) / (lo - hi);
    w = std::clamp(w, 0.0, 1.0);
    return (1.0 - w) * low + w * high;
}

} // namespace scheduling

Scheduler::Scheduler(std::string name, const SchedulerConfig & config) : name_(std::move(name)), config_(config) {
    if (config_.num_train_timesteps < 2 || config_.num_train_timesteps > 100000) {
        throw RangeError("Expected num_train_timesteps between 2 and 100000");
    }
    scheduling::make_betas(config_, betas_, alphas_cumprod_);
}

void Scheduler::set_timesteps(int steps) {
    const int train = config_.num_train_timesteps;
    if (steps < 1 || steps > train) throw RangeError("Expected integer steps between 1 and " + std::to_string(train));
    do_set_timesteps(steps);
    step_index_.reset();
    begin_index_.reset();
    step_count_ = 0;
}

void Scheduler::step(const float * model_output, double t, const float * sample, float * prev, int64_t count,
                     const NoiseSource & noise) {
    require_timesteps();
    if (count < 1) throw RangeError("Expected a non-empty sample");
    if (step_count_ != 0 && count != step_count_) {
        throw RangeError("Expected a sample of " + std::to_string(step_count_) +
                         " values, as in this run's earlier steps; call setTimesteps to start a new run");
    }
    if (!std::isfinite(t)) throw RangeError("Expected a finite timestep");
    do_step(model_output, t, sample, prev, count, noise);
    step_count_ = count;
}

void Scheduler::require_timesteps() const {
    if (steps_ == 0) throw RangeError("Call setTimesteps(steps) before using the " + name_ + " scheduler");
}

void Scheduler::set_spaced_timesteps(int steps) {
    const int train = config_.num_train_timesteps;
    timesteps_.clear();
    for (int64_t v : scheduling::integer_timesteps(*config_.timestep_spacing, steps, train, config_.steps_offset)) {
        timesteps_.push_back(static_cast<float>(v));
    }
    steps_ = steps;
}

int Scheduler::index_for_timestep(double t) const {
    require_timesteps();
    std::vector<int> found;
    for (size_t i = 0; i < timesteps_.size(); ++i) {
        if (static_cast<double>(timesteps_[i]) == static_cast<double>(static_cast<float>(t))) found.push_back(static_cast<int>(i));
    }
    if (found.empty()) throw RangeError("Timestep " + std::to_string(t) + " is not one of the scheduler's timesteps");
    return found.size() > 1 ? found[1] : found[0];
}

void Scheduler::set_begin_index(int index) {
    require_timesteps();
    if (!tracks_step_index_) throw RangeError("The " + name_ + " scheduler has no begin index");
    if (index < 0 || index >= static_cast<int>(timesteps_.size())) {
        throw RangeError("Expected integer begin index between 0 and " + std::to_string(timesteps_.size() - 1));
    }
    begin_index_ = index;
}

int Scheduler::noise_index(double t) const {
    if (!begin_index_) return index_for_timestep(t);
    return step_index_ ? *step_index_ : *begin_index_;
}

int Scheduler::current_index(double t) {
    if (!step_index_) step_index_ = begin_index_ ? *begin_index_ : index_for_timestep(t);
    if (*step_index_ >= static_cast<int>(timesteps_.size())) {
        throw RangeError("The " + name_ + " scheduler has taken all its steps; call setTimesteps again");
    }
    return *step_index_;
}

void Scheduler::scale_model_input(const float * sample, float * out, int64_t count, double) {
    if (out != sample) std::copy(sample, sample + count, out);
}

void Scheduler::add_noise(const float * original, const float * noise, float * out, int64_t count,
                          const std::vector<double> & t) const {
    const int64_t batch = static_cast<int64_t>(t.size());
    if (batch < 1 || count % batch != 0) throw RangeError("Expected one timestep per batch item");
    const int64_t per_item = count / batch;
    for (int64_t b = 0; b < batch; ++b) {
        const double tb = t[static_cast<size_t>(b)];
        if (!(tb >= 0) || tb > config_.num_train_timesteps - 1 || std::floor(tb) != tb) {
            throw RangeError("Expected integer timesteps between 0 and " + std::to_string(config_.num_train_timesteps - 1));
        }
        const float alpha_prod = alphas_cumprod_[static_cast<size_t>(tb)];
        const float sqrt_alpha = std::sqrt(alpha_prod);
        const float sqrt_one_minus_alpha = std::sqrt(1.0f - alpha_prod);
        for (int64_t i = b * per_item; i < (b + 1) * per_item; ++i) {
            out[i] = sqrt_alpha * original[i] + sqrt_one_minus_alpha * noise[i];
        }
    }
}

// ---- SigmaScheduler ----

SigmaScheduler::SigmaScheduler(std::string name, const SchedulerConfig & config) : Scheduler(std::move(name), config) {
    tracks_step_index_ = true;
    if (!config_.timestep_spacing) config_.timestep_spacing = TimestepSpacing::linspace;
    if (!config_.use_karras_sigmas) config_.use_karras_sigmas = false;
    scheduling::training_sigmas(alphas_cumprod_, train_sigmas_, log_sigmas_);
}

void SigmaScheduler::build_sigma_schedule(int steps) {
    const int train = config_.num_train_timesteps;
    // Timesteps as float32 (numpy builds them in float64 and casts).
    std::vector<float> ts;
    if (*config_.timestep_spacing == TimestepSpacing::linspace) {
        for (double v : scheduling::np_linspace(0.0, train - 1.0, steps)) ts.push_back(static_cast<float>(v));
        std::reverse(ts.begin(), ts.end());
    } else {
        for (int64_t v : scheduling::integer_timesteps(*config_.timestep_spacing, steps, train, config_.steps_offset)) {
            ts.push_back(static_cast<float>(v));
        }
    }

    const std::vector<double> fp(train_sigmas_.begin(), train_sigmas_.end());
    std::vector<double> sig(ts.size());
    for (size_t i = 0; i < ts.size(); ++i) sig[i] = scheduling::np_interp(ts[i], fp);

    std::vector<double> t_frac(ts.begin(), ts.end());
    if (*config_.use_karras_sigmas) {
        sig = scheduling::karras_sigmas(sig.back(), sig.front(), steps);
        t_frac.resize(sig.size());
        for (size_t i = 0; i < sig.size(); ++i) t_frac[i] = scheduling::sigma_to_t(sig[i], log_sigmas_);
    }

    sigmas_.resize(sig.size());
    for (size_t i = 0; i < sig.size(); ++i) sigmas_[i] = static_cast<float>(sig[i]);
    sigmas_.push_back(0.0f);
    timesteps_.resize(t_frac.size());
    for (size_t i = 0; i < t_frac.size(); ++i) timesteps_[i] = static_cast<float>(t_frac[i]);
    steps_ = steps;
    step_index_.reset();
    begin_index_.reset();
}

float SigmaScheduler::init_noise_sigma() const {
    require_timesteps();
    const float max_sigma = *std::max_element(sigmas_.begin(), sigmas_.end());
    if (*config_.timestep_spacing == TimestepSpacing::leading) return std::sqrt(max_sigma * max_sigma + 1.0f);
    return max_sigma;
}

void SigmaScheduler::scale_model_input(const float * sample, float * out, int64_t count, double t) {
    const float sigma = sigmas_[current_index(t)];
    const float denom = std::sqrt(sigma * sigma + 1.0f);
    for (int64_t i = 0; i < count; ++i) out[i] = sample[i] / denom;
}

void SigmaScheduler::add_noise(const float * original, const float * noise, float * out, int64_t count,
                               const std::vector<double> & t) const {
    require_timesteps();
    const int64_t batch = static_cast<int64_t>(t.size());
    if (batch < 1 || count % batch != 0) throw RangeError("Expected one timestep per batch item");
    const int64_t per_item = count / batch;
    for (int64_t b = 0; b < batch; ++b) {
        const int index = noise_index(t[static_cast<size_t>(b)]);
        const float sigma = sigmas_[std::min<size_t>(static_cast<size_t>(index), sigmas_.size() - 1)];
        for (int64_t i = b * per_item; i < (b + 1) * per_item; ++i) out[i] = original[i] + noise[i] * sigma;
    }
}

// ---- MultistepScheduler ----

MultistepScheduler::MultistepScheduler(std::string name, const SchedulerConfig & config, bool karras_default)
    : Scheduler(std::move(name), config) {
    tracks_step_index_ = true;
    if (!config_.timestep_spacing) config_.timestep_spacing = TimestepSpacing::linspace;
    if (!config_.use_karras_sigmas) config_.use_karras_sigmas = karras_default;
    scheduling::training_sigmas(alphas_cumprod_, train_sigmas_, log_sigmas_);
}

void MultistepScheduler::build_multistep_schedule(int steps) {
    const int train = config_.num_train_timesteps;
    std::vector<double> ts;
    switch (*config_.timestep_spacing) {
    case TimestepSpacing::linspace: {
        // steps + 1 points from 0 to T − 1, rounded, descending, without the final 0.
        std::vector<double> points = scheduling::np_linspace(0.0, train - 1.0, steps + 1);
        for (int i = steps; i >= 1; --i) ts.push_back(scheduling::np_round(points[i]));
        break;
    }
    case TimestepSpacing::leading: {
        // (steps + 1) · (T // (steps + 1)) spacing, without the final 0, plus steps_offset.
        const int64_t ratio = train / (steps + 1);
        for (int i = steps; i >= 1; --i) ts.push_back(static_cast<double>(i * ratio + config_.steps_offset));
        break;
    }
    case TimestepSpacing::trailing:
        for (int64_t v : scheduling::integer_timesteps(TimestepSpacing::trailing, steps, train, 0)) ts.push_back(static_cast<double>(v));
        break;
    }

    std::vector<double> sig;
    if (*config_.use_karras_sigmas) {
        sig = scheduling::karras_sigmas(train_sigmas_.front(), train_sigmas_.back(), steps);
        ts.resize(sig.size());
        for (size_t i = 0; i < sig.size(); ++i) ts[i] = scheduling::np_round(scheduling::sigma_to_t(sig[i], log_sigmas_));
    } else {
        const std::vector<double> fp(train_sigmas_.begin(), train_sigmas_.end());
        for (double t : ts) sig.push_back(scheduling::np_interp(t, fp));
    }
    sigmas_.resize(sig.size());
    for (size_t i = 0; i < sig.size(); ++i) sigmas_[i] = static_cast<float>(sig[i]);
    sigmas_.push_back(0.0f);
    timesteps_.assign(ts.begin(), ts.end());
    steps_ = steps;
    step_index_.reset();
    begin_index_.reset();
}

MultistepScheduler::NoiseLevel MultistepScheduler::level(float sigma) {
    NoiseLevel l;
    l.alpha = 1.0f / std::sqrt(sigma * sigma + 1.0f);
    l.sigma = sigma * l.alpha;
    l.lambda = std::log(l.alpha) - std::log(l.sigma);
    return l;
}

int MultistepScheduler::multistep_index_for_timestep(double t) const {
    require_timesteps();
    std::vector<int> found;
    for (size_t i = 0; i < timesteps_.size(); ++i) {
        if (static_cast<double>(timesteps_[i]) == t) found.push_back(static_cast<int>(i));
    }
    if (found.empty()) return static_cast<int>(timesteps_.size()) - 1;
    return found.size() > 1 ? found[1] : found[0];
}

void MultistepScheduler::add_noise(const float * original, const float * noise, float * out, int64_t count,
                                   const std::vector<double> & t) const {
    require_timesteps();
    const int64_t batch = static_cast<int64_t>(t.size());
    if (batch < 1 || count % batch != 0) throw RangeError("Expected one timestep per batch item");
    const int64_t per_item = count / batch;
    for (int64_t b = 0; b < batch; ++b) {
        const int index = begin_index_ ? (step_index_ ? *step_index_ : *begin_index_)
                                       : multistep_index_for_timestep(t[static_cast<size_t>(b)]);
        const NoiseLevel l = level(sigmas_[std::min<size_t>(static_cast<size_t>(index), sigmas_.size() - 1)]);
        for (int64_t i = b * per_item; i < (b + 1) * per_item; ++i) out[i] = l.alpha * original[i] + l.sigma * noise[i];
    }
}

} // namespace sd
