"""Scheduler goldens: diffusers' schedulers built from Stable Diffusion 1.5's scheduler config.

For each scheduler × timestep spacing × prediction type (and the other overrides listed in
SCHEDULERS) this records what set_timesteps(10) gives (timesteps, sigmas, init_noise_sigma),
add_noise at one timestep, and a full run of the denoising loop with a fake model:

    sample = x0 * init_noise_sigma
    for t in timesteps:
        x = scale_model_input(sample, t)
        out = 0.1 * x + 0.05 * t / 1000        # the "model"
        sample = step(out, t, sample).prev_sample

Stochastic schedulers draw their noise through diffusers' randn_tensor; it is replaced here by a
function that hands out NOISE[0], NOISE[1], … in order (NOISE is what a torch CPU generator
seeded with 1 gives for twenty [1, 4, 8, 8] draws, i.e. what randn_tensor would draw with it), and
the noise is stored so the tests can pass it to step(). Each file also holds "schedules"
(timesteps and sigmas for 1, 2, 3, 25, 50 and 61 steps) and an img2img-style run (begin index
4 · order, add_noise, denoise from there, as diffusers' img2img pipeline drives a scheduler).

Needs scipy besides torch and numpy (diffusers' LMSDiscreteScheduler integrates its
coefficients with scipy.integrate.quad).

Run: PYTHONPATH=/work/refs/diffusers/src /work/pyenv/bin/python tools/goldens/make_scheduler_goldens.py
Writes test/fixtures/schedulers/<name>.json (and common.json: x0, the noise). Tensors and the
"schedules" (timesteps and sigmas for other step counts) are stored as base64 float32
(little-endian); per step of a run only PROBE's values are stored (also base64), and the final sample in full.
"""

import base64
import importlib
import json
import os
import sys

import numpy as np
import torch

import diffusers

SD15_CONFIG = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}

STEPS = 10
SHAPE = (1, 4, 8, 8)
PROBE = [0, 1, 17, 42, 63, 64, 100, 127, 128, 150, 191, 200, 222, 240, 254, 255]
SPACINGS = ["leading", "linspace", "trailing"]
PREDICTIONS = ["epsilon", "v_prediction"]
SCHEDULE_STEPS = [1, 2, 3, 25, 50, 61]

# our name → (diffusers class, module, extra config, overrides varied besides spacing × prediction)
SCHEDULERS = {
    "euler": ("EulerDiscreteScheduler", "scheduling_euler_discrete", {}, [{}, {"use_karras_sigmas": True}]),
    "ddim": ("DDIMScheduler", "scheduling_ddim", {}, [{}, {"eta": 1.0}]),
    "pndm": ("PNDMScheduler", "scheduling_pndm", {}, [{}]),
    "euler_a": ("EulerAncestralDiscreteScheduler", "scheduling_euler_ancestral_discrete", {}, [{}]),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", "scheduling_dpmsolver_multistep", {}, [{}]),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", "scheduling_dpmsolver_multistep", {"use_karras_sigmas": True}, [{}]),
    "dpmpp_2m_sde": ("DPMSolverMultistepScheduler", "scheduling_dpmsolver_multistep",
                     {"algorithm_type": "sde-dpmsolver++"}, [{}]),
    "dpmpp_2m_sde_karras": ("DPMSolverMultistepScheduler", "scheduling_dpmsolver_multistep",
                            {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True}, [{}]),
    "lms": ("LMSDiscreteScheduler", "scheduling_lms_discrete", {}, [{}, {"use_karras_sigmas": True}]),
    "heun": ("HeunDiscreteScheduler", "scheduling_heun_discrete", {}, [{}, {"use_karras_sigmas": True}]),
    "unipc": ("UniPCMultistepScheduler", "scheduling_unipc_multistep", {}, [{}, {"use_karras_sigmas": True}]),
    "ddpm": ("DDPMScheduler", "scheduling_ddpm", {}, [{}]),
    "lcm": ("LCMScheduler", "scheduling_lcm", {}, [{}]),
}

CAMEL = {
    "timestep_spacing": "timestepSpacing",
    "prediction_type": "predictionType",
    "use_karras_sigmas": "useKarrasSigmas",
    "eta": "eta",
}


def f32_b64(t):
    return base64.b64encode(np.ascontiguousarray(t.detach().cpu().numpy(), dtype="<f4").tobytes()).decode()


def floats(t):
    # The shortest decimal that reads back as the same float32.
    return [float(str(v)) for v in t.detach().cpu().numpy().astype(np.float32).ravel()]


generator = torch.Generator().manual_seed(0)
X0 = torch.randn(SHAPE, generator=generator)
ADD_NOISE = torch.randn(SHAPE, generator=generator)
noise_gen = torch.Generator().manual_seed(1)
NOISE = [torch.randn(SHAPE, generator=noise_gen) for _ in range(2 * STEPS)]


class NoiseFeed:
    def __init__(self):
        self.calls = 0

    def __call__(self, shape, generator=None, device=None, dtype=None, layout=None):
        assert tuple(shape) == SHAPE, shape
        noise = NOISE[self.calls].to(dtype=dtype or torch.float32)
        self.calls += 1
        return noise


def run_case(cls_name, module_name, extra, overrides):
    cls = getattr(diffusers, cls_name)
    module = importlib.import_module(f"diffusers.schedulers.{module_name}")
    eta = overrides.pop("eta", None)
    config = dict(SD15_CONFIG)
    config.update(extra)
    scheduler = cls.from_config(config, **overrides)
    scheduler.set_timesteps(STEPS)

    case = {}
    timesteps = scheduler.timesteps
    case["timesteps"] = [float(t) for t in timesteps]
    sigmas = getattr(scheduler, "sigmas", None)
    case["sigmas"] = floats(sigmas) if sigmas is not None else None
    init = scheduler.init_noise_sigma
    case["initNoiseSigma"] = float(init)
    case["resolvedSpacing"] = scheduler.config.timestep_spacing

    # add_noise on a second scheduler (before any step) at the fourth timestep.
    other = cls.from_config(config, **overrides)
    other.set_timesteps(STEPS)
    t_add = other.timesteps[3:4]
    noisy = other.add_noise(X0.clone(), ADD_NOISE.clone(), t_add)
    case["addNoise"] = {"timestep": float(t_add[0]), "sample": f32_b64(noisy)}

    feed = NoiseFeed()
    saved = getattr(module, "randn_tensor", None)
    module.randn_tensor = feed
    try:
        sample = X0 * init
        steps = []
        for t in timesteps:
            x = scheduler.scale_model_input(sample, t)
            out = 0.1 * x + 0.05 * float(t) / 1000
            kwargs = {}
            if eta is not None:
                kwargs["eta"] = eta
                kwargs["generator"] = generator  # unused: the noise comes from the feed
            sample = scheduler.step(out, t, sample, **kwargs).prev_sample
            steps.append({"t": float(t), "probe": f32_b64(sample.ravel()[PROBE])})
    finally:
        module.randn_tensor = saved
    case["steps"] = steps
    case["final"] = f32_b64(sample)
    case["noiseDraws"] = feed.calls
    return case


def run_img2img(cls_name, module_name, extra, t_start=4):
    """An img2img-style run as diffusers' pipelines do it: skip the first t_start * order
    timesteps (set_begin_index where the scheduler has it), noise x0 to the first remaining one
    with add_noise, and denoise from there."""
    cls = getattr(diffusers, cls_name)
    module = importlib.import_module(f"diffusers.schedulers.{module_name}")
    config = dict(SD15_CONFIG)
    config.update(extra)
    scheduler = cls.from_config(config)
    scheduler.set_timesteps(STEPS)
    begin = t_start * scheduler.order
    timesteps = scheduler.timesteps[begin:]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    sample = scheduler.add_noise(X0.clone(), ADD_NOISE.clone(), timesteps[:1])
    noisy = sample.clone()
    feed = NoiseFeed()
    saved = getattr(module, "randn_tensor", None)
    module.randn_tensor = feed
    steps = []
    try:
        for t in timesteps:
            x = scheduler.scale_model_input(sample, t)
            out = 0.1 * x + 0.05 * float(t) / 1000
            sample = scheduler.step(out, t, sample).prev_sample
            steps.append({"t": float(t), "probe": f32_b64(sample.ravel()[PROBE])})
    finally:
        module.randn_tensor = saved
    return {
        "beginIndex": begin,
        "setBeginIndex": hasattr(scheduler, "set_begin_index"),
        "noised": f32_b64(noisy),
        "steps": steps,
        "final": f32_b64(sample),
        "noiseDraws": feed.calls,
    }


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    out_dir = os.path.join(root, "test", "fixtures", "schedulers")
    os.makedirs(out_dir, exist_ok=True)
    only = set(sys.argv[1:])
    common = {
        "steps": STEPS,
        "shape": list(SHAPE),
        "probe": PROBE,
        "x0": f32_b64(X0),
        "addNoiseNoise": f32_b64(ADD_NOISE),
        "noise": [f32_b64(n) for n in NOISE],
    }
    with open(os.path.join(out_dir, "common.json"), "w") as f:
        json.dump(common, f)
    for name, (cls_name, module_name, extra, variants) in SCHEDULERS.items():
        if only and name not in only:
            continue
        cases = []
        for variant in variants:
            for spacing in SPACINGS:
                for prediction in PREDICTIONS:
                    overrides = {"timestep_spacing": spacing, "prediction_type": prediction, **variant}
                    case = run_case(cls_name, module_name, extra, dict(overrides))
                    case["overrides"] = {CAMEL[k]: v for k, v in overrides.items()}
                    cases.append(case)
        # Timesteps and sigmas for other step counts (61: numpy's arange gives "trailing" one
        # timestep more than asked for).
        schedules = []
        for variant in variants:
            for spacing in SPACINGS:
                for steps in SCHEDULE_STEPS:
                    if name == "lcm" and steps > 50:
                        continue
                    overrides = {"timestep_spacing": spacing, **variant}
                    overrides.pop("eta", None)
                    config = dict(SD15_CONFIG)
                    config.update(extra)
                    scheduler = getattr(diffusers, cls_name).from_config(config, **overrides)
                    scheduler.set_timesteps(steps)
                    sigmas = getattr(scheduler, "sigmas", None)
                    schedules.append({
                        "overrides": {CAMEL[k]: v for k, v in overrides.items()},
                        "steps": steps,
                        "timesteps": f32_b64(scheduler.timesteps.to(torch.float32)),
                        "sigmas": f32_b64(sigmas) if sigmas is not None else None,
                        "initNoiseSigma": float(scheduler.init_noise_sigma),
                    })
        # The scheduler as SD 1.5's config builds it, with nothing overridden.
        default = run_case(cls_name, module_name, extra, {})
        default["overrides"] = {}
        cases.append(default)
        doc = {
            "scheduler": name,
            "diffusers": {"class": cls_name, "version": diffusers.__version__, "config": {**SD15_CONFIG, **extra}},
            "cases": cases,
            "schedules": schedules,
            "img2img": run_img2img(cls_name, module_name, extra),
        }
        with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
            json.dump(doc, f, separators=(",", ":"))
        print(name, len(cases), "cases")


if __name__ == "__main__":
    main()
