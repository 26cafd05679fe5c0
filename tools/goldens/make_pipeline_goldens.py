#!/usr/bin/env python3
"""txt2img goldens: diffusers' StableDiffusionPipeline on the tiny diffusers folders.

References (imported, never copied): diffusers' StableDiffusionPipeline built from
test/fixtures/tiny/{sd1-diffusers,sd2-v-diffusers} in float32 on CPU, safety_checker=None, with
a CLIPTokenizer made from the vocabulary the package ships (as make_text_encoder_goldens.py
does). Schedulers are built with from_config of the folder's scheduler config: PNDM, DDIM,
Euler, DPM++ 2M Karras (DPMSolverMultistepScheduler, use_karras_sigmas=True), Euler
ancestral and DPM++ 2M SDE (algorithm_type sde-dpmsolver++; both stochastic: their noise comes
from the pipeline's generator). Prompt
"a painting of a flooble", negative "blurry", 128x128, 5 steps, guidance 7.5, seed 42.

For every case: the final latents (output_type='latent', before 1/scaling_factor) and the
decoded image (output_type='pt', [B,3,H,W] in [0,1]). Plus a guidance-1 case (no
unconditional pass), a batch-2 case, an injected-latents case and DDIM with eta 1. The tiny UNets' 32 channels in
32 groups make GroupNorm cancel the time embedding (tools/README.md), so a few cases also run
sd1-unet-t64: sd1-diffusers with the timestep-sensitive UNet of test/fixtures/goldens/unet/.

Output: test/fixtures/goldens/pipeline/goldens.bin (float32 little endian, concatenated) and
goldens.json (cases: name, fixture, options, shapes and offsets in floats).

Usage (from the repository root, with the environment of tools/README.md):
    PYTHONPATH=/work/refs/diffusers/src /work/pyenv/bin/python tools/goldens/make_pipeline_goldens.py
"""

import importlib.util
import json
import os
import tempfile

import numpy as np
import torch

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TINY = os.path.join(REPO_ROOT, "test", "fixtures", "tiny")
OUT_DIR = os.path.join(REPO_ROOT, "test", "fixtures", "goldens", "pipeline")

PROMPT = "a painting of a flooble"
NEGATIVE = "blurry"
SIZE = 128  # 64 would leave the UNet's mid block at 1x1 (degenerate group norms)
STEPS = 5
GUIDANCE = 7.5
SEED = 42


def load_module(name):
    path = os.path.join(REPO_ROOT, "tools", "goldens", name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scheduler_for(name, config):
    from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                           EulerDiscreteScheduler, PNDMScheduler)
    if name == "pndm":
        return PNDMScheduler.from_config(config)
    if name == "ddim":
        return DDIMScheduler.from_config(config)
    if name == "euler":
        return EulerDiscreteScheduler.from_config(config)
    if name == "euler_a":
        return EulerAncestralDiscreteScheduler.from_config(config)
    if name == "dpmpp_2m_karras":
        return DPMSolverMultistepScheduler.from_config(config, use_karras_sigmas=True)
    if name == "dpmpp_2m_sde":  # stochastic: a draw from the pipeline's generator every step
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="sde-dpmsolver++")
    raise ValueError(name)


def fixture_folder(fixture, workdir):
    """A tiny folder; sd1-unet-t64 is sd1-diffusers with the UNet of goldens/unet/sd1-unet-t64."""
    if fixture != "sd1-unet-t64":
        return os.path.join(TINY, fixture)
    folder = os.path.join(workdir, fixture)
    os.makedirs(folder)
    for part in ("text_encoder", "vae", "tokenizer", "scheduler", "model_index.json"):
        os.symlink(os.path.join(TINY, "sd1-diffusers", part), os.path.join(folder, part))
    os.symlink(os.path.join(REPO_ROOT, "test", "fixtures", "goldens", "unet", fixture), os.path.join(folder, "unet"))
    return folder


def build_pipeline(fixture, tokenizer_helpers, workdir):
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel, PNDMScheduler
    from transformers import CLIPTextModel
    folder = fixture_folder(fixture, workdir)
    te = load_module("make_text_encoder_goldens")
    tokenizer = te.make_tokenizer(folder, tokenizer_helpers, workdir)
    text_encoder = CLIPTextModel.from_pretrained(os.path.join(folder, "text_encoder"), torch_dtype=torch.float32)
    unet = UNet2DConditionModel.from_pretrained(os.path.join(folder, "unet"), torch_dtype=torch.float32)
    vae = AutoencoderKL.from_pretrained(os.path.join(folder, "vae"), torch_dtype=torch.float32)
    with open(os.path.join(folder, "scheduler", "scheduler_config.json")) as f:
        config = json.load(f)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=PNDMScheduler.from_config(config), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    for module in (text_encoder, unet, vae):
        module.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe, config


class Writer:
    def __init__(self):
        self.chunks, self.cases, self.offset = [], [], 0

    def tensor(self, t):
        a = t.detach().to(torch.float32).contiguous().numpy()
        self.chunks.append(a.reshape(-1).astype("<f4"))
        entry = {"shape": list(a.shape), "offset": self.offset}
        self.offset += a.size
        return entry

    def write(self, versions):
        os.makedirs(OUT_DIR, exist_ok=True)
        np.concatenate(self.chunks).tofile(os.path.join(OUT_DIR, "goldens.bin"))
        with open(os.path.join(OUT_DIR, "goldens.json"), "w") as f:
            json.dump({"generator": "tools/goldens/make_pipeline_goldens.py", "versions": versions,
                       "dtype": "float32", "prompt": PROMPT, "negativePrompt": NEGATIVE, "width": SIZE,
                       "height": SIZE, "steps": STEPS, "seed": SEED, "cases": self.cases}, f, indent=1)
            f.write("\n")


def run(pipe, config, scheduler, guidance, batch=1, latents=None, eta=0.0):
    pipe.scheduler = scheduler_for(scheduler, config)
    out = {}
    for output_type in ("latent", "pt"):
        generator = torch.Generator().manual_seed(SEED)
        with torch.no_grad():
            result = pipe(PROMPT, negative_prompt=NEGATIVE, height=SIZE, width=SIZE, num_inference_steps=STEPS,
                          guidance_scale=guidance, generator=generator, num_images_per_prompt=batch, eta=eta,
                          latents=None if latents is None else latents.clone(), output_type=output_type)
        out[output_type] = result.images
    return out["latent"], out["pt"]


def main():
    import diffusers
    import transformers
    torch.manual_seed(0)
    writer = Writer()
    helpers = load_module("make_tokenizer_goldens")
    with tempfile.TemporaryDirectory() as workdir:
        for fixture in ("sd1-diffusers", "sd2-v-diffusers", "sd1-unet-t64"):
            pipe, config = build_pipeline(fixture, helpers, workdir)
            schedulers = ("pndm", "ddim", "euler", "dpmpp_2m_karras", "euler_a")
            if fixture == "sd1-unet-t64":
                schedulers = ("pndm", "dpmpp_2m_karras", "euler_a", "dpmpp_2m_sde")
            cases = [(s, GUIDANCE, 1, None, 0.0) for s in schedulers]
            if fixture == "sd1-diffusers":
                injected = torch.randn((1, 4, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(7))
                cases += [("pndm", 1.0, 1, None, 0.0), ("euler_a", GUIDANCE, 2, None, 0.0),
                          ("ddim", GUIDANCE, 1, injected, 0.0)]
            if fixture == "sd1-unet-t64":
                cases += [("ddim", GUIDANCE, 1, None, 1.0)]  # DDIM with eta: noise from the generator
            for scheduler, guidance, batch, latents, eta in cases:
                final, image = run(pipe, config, scheduler, guidance, batch, latents, eta)
                name = (f"{fixture}/{scheduler}/g{guidance}/b{batch}" + ("/injected" if latents is not None else "")
                        + (f"/eta{eta}" if eta else ""))
                case = {"name": name, "fixture": fixture, "scheduler": scheduler, "guidanceScale": guidance,
                        "batchSize": batch, "eta": eta, "latents": writer.tensor(final), "image": writer.tensor(image)}
                if latents is not None:
                    case["injected"] = writer.tensor(latents)
                writer.cases.append(case)
                print(name, list(final.shape), float(final.abs().max()), float(image.mean()))
    writer.write({"torch": torch.__version__, "diffusers": diffusers.__version__,
                  "transformers": transformers.__version__})


if __name__ == "__main__":
    main()
