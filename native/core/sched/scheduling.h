#pragma once
// What the scheduler files share beyond the public Scheduler (sdcore/scheduler.h): the two
// families of schedulers over noise levels, the numeric helpers that reproduce torch's and
// numpy's arithmetic, and one factory per file.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sdcore/scheduler.h"

namespace sd {

// The schedulers over noise levels σ(t) = √((1 − ᾱ_t)/ᾱ_t) (Euler, Euler ancestral, LMS, Heun):
// timesteps by spacing, σ by linear interpolation at them (or Karras's σ, with timesteps mapped
// back by log-σ interpolation), a final σ = 0; the model input is x/√(σ²+1), add_noise x + σ·z.
class SigmaScheduler : public Scheduler {
public:
    float init_noise_sigma() const override;
    void scale_model_input(const float * sample, float * out, int64_t count, double t) override;
    void add_noise(const float * original, const float * noise, float * out, int64_t count,
                   const std::vector<double> & t) const override;

protected:
    SigmaScheduler(std::string name, const SchedulerConfig & config);
    // Fills timesteps_ and sigmas_ as diffusers' EulerDiscreteScheduler does.
    void build_sigma_schedule(int steps);
    // The training schedule's σ (float32, as torch computes them) and their logs.
    std::vector<float> train_sigmas_;
    std::vector<float> log_sigmas_;
};

// The exponential-integrator schedulers over λ = log(α/σ) (DPM-Solver++, UniPC), as diffusers'
// DPMSolverMultistepScheduler and UniPCMultistepScheduler build them: n of n + 1 spaced
// timesteps (or Karras's σ with timesteps rounded from log-σ interpolation), a final σ = 0; the
// model input is x itself, add_noise α·x + s·z with α = 1/√(σ²+1), s = σ·α.
class MultistepScheduler : public Scheduler {
public:
    void add_noise(const float * original, const float * noise, float * out, int64_t count,
                   const std::vector<double> & t) const override;

protected:
    struct NoiseLevel {
        float alpha, sigma, lambda;
    };
    MultistepScheduler(std::string name, const SchedulerConfig & config, bool karras_default);
    void build_multistep_schedule(int steps);
    // α, s and λ of noise level σ, in float32 as torch computes them.
    static NoiseLevel level(float sigma);
    // diffusers' lookup for these schedulers: a timestep it does not have means the last step.
    int multistep_index_for_timestep(double t) const;
    std::vector<float> train_sigmas_;
    std::vector<float> log_sigmas_;
};

// ---- helpers shared by the scheduler files (scheduler_common.cpp) ----
namespace scheduling {

// torch.linspace(a, b, n, dtype=float32), value for value.
std::vector<float> torch_linspace_f32(double start, double end, int n);
// betas and their cumulative product (float32, as diffusers builds them with torch).
void make_betas(const SchedulerConfig & config, std::vector<float> & betas, std::vector<float> & alphas_cumprod);
// numpy.linspace(start, end, n) in float64.
std::vector<double> np_linspace(double start, double end, int n);
// Round half to even, as numpy's round.
double np_round(double x);
// The integer timesteps of DDIM/PNDM/DDPM/LCM-style spacing, in descending order (before any
// scheduler-specific reordering); `spacing` must be resolved.
std::vector<int64_t> integer_timesteps(TimestepSpacing spacing, int steps, int train_steps, int steps_offset);
// The training schedule's σ = ((1 − ᾱ)/ᾱ)^½ and log σ, per training timestep (float32).
void training_sigmas(const std::vector<float> & alphas_cumprod, std::vector<float> & sigmas, std::vector<float> & log_sigmas);
// numpy.interp over xp = 0, 1, …, fp.size()-1, in float64.
double np_interp(double x, const std::vector<double> & fp);
// Karras et al. (2022) sigmas between sigma_min and sigma_max, rho 7, float64.
std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int steps);
// diffusers' _sigma_to_t: the fractional timestep of sigma by interpolation in log-sigma.
double sigma_to_t(double sigma, const std::vector<float> & log_sigmas);

} // namespace scheduling

// One factory per file.
std::unique_ptr<Scheduler> make_euler_scheduler(const SchedulerConfig & config);
std::unique_ptr<Scheduler> make_ddim_scheduler(const SchedulerConfig & config);
std::unique_ptr<Scheduler> make_pndm_scheduler(const SchedulerConfig & config);
std::unique_ptr<Scheduler> make_euler_ancestral_scheduler(const SchedulerConfig & config);
std::unique_ptr<Scheduler> make_dpmpp_2m_scheduler(const SchedulerConfig & config, bool karras, bool sde);
std::unique_ptr<Scheduler> make_lms_scheduler(const SchedulerConfig & config);
std::unique_ptr<Scheduler> make_heun_scheduler(const SchedulerConfig & config);
std::unique_ptr<Scheduler> make_unipc_scheduler(const SchedulerConfig & config);
std::unique_ptr<Scheduler> make_ddpm_scheduler(const SchedulerConfig & config);
std::unique_ptr<Scheduler> make_lcm_scheduler(const SchedulerConfig & config);

} // namespace sd
