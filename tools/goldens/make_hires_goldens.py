#!/usr/bin/env python3
"""Hires-fix goldens: PyTorch's latent interpolation, and the two-pass generation composed of
diffusers' pipelines on the tiny fixtures.

References (imported, never copied):
  - torch.nn.functional.interpolate on seeded latents for every latent mode A1111 offers
    (bilinear and bicubic, each with and without antialias, nearest, nearest-exact; align_corners
    False, as A1111 calls it), up and down, to sizes that are and are not integer multiples;
  - the hires fix as a composition: diffusers' StableDiffusionPipeline (output_type 'latent', or
    'pt' for an upscaler in pixels) → F.interpolate of the latents (or the tiny Real-ESRGAN of
    make_esrgan_goldens.py on the decoded image, clamped to [0, 1]) → the centre crop A1111 makes
    when both target sides are given → StableDiffusionImg2ImgPipeline with those latents (a
    4-channel `image` is taken as latents) or that image, strength = denoising strength, and a
    fresh generator from the same seed (A1111's second pass draws its noise from the same seeds).

Prompt "a painting of a flooble", negative "blurry", a 128x128 first pass with 5 steps,
guidance 7.5, seed 42. For every case the final latents; for the first case also the image.

Output: test/fixtures/goldens/hires/goldens.bin (float32 little endian) and goldens.json.

Usage (from the repository root, with the environment of tools/README.md):
    PYTHONPATH=/work/refs/diffusers/src /work/pyenv/bin/python tools/goldens/make_hires_goldens.py
"""

import json
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT_DIR = os.path.join(REPO_ROOT, "test", "fixtures", "goldens", "hires")
ESRGAN_DIR = os.path.join(REPO_ROOT, "test", "fixtures", "tiny", "esrgan")

sys.path.insert(0, HERE)
import make_esrgan_goldens as esrgan  # noqa: E402
import make_pipeline_goldens as txt  # noqa: E402

SIZE = 128
STEPS = 5
GUIDANCE = 7.5
SEED = 42

# Our mode names → (torch mode, antialias).
MODES = {
    "bilinear": ("bilinear", False),
    "bilinear-antialiased": ("bilinear", True),
    "bicubic": ("bicubic", False),
    "bicubic-antialiased": ("bicubic", True),
    "nearest": ("nearest", False),
    "nearest-exact": ("nearest-exact", False),
}
# (input shape, seed, output sizes (h, w))
INTERPOLATION_INPUTS = [
    ((1, 4, 8, 8), 3, [(16, 16), (12, 20), (5, 7), (8, 8), (24, 10)]),
    ((2, 4, 6, 10), 4, [(13, 25), (3, 4)]),
]
# name, fixture, scheduler, hires (as the library takes it), denoising strength
PIPELINE_CASES = [
    ("latent-bilinear", "sd1-unet-t64", "euler", {"scale": 2, "upscaler": "bilinear"}, 0.6),
    ("latent-bicubic-antialiased-crop", "sd1-diffusers", "euler_a",
     {"width": 224, "height": 192, "upscaler": "bicubic-antialiased", "steps": 4}, 0.7),
    ("latent-nearest-exact-x1.5", "sd1-unet-t64", "ddim", {"scale": 1.5, "upscaler": "nearest-exact", "steps": 6}, 0.5),
    ("esrgan-x2", "sd1-unet-t64", "ddim", {"scale": 2, "upscaler": "tiny-x2"}, 0.6),
]


def target_size(width, height, hires):
    """A1111's hires target: the size to upscale to and the latent rows/columns cropped off."""
    rx, ry = hires.get("width", 0), hires.get("height", 0)
    if rx == 0 and ry == 0:
        return int(width * hires["scale"]), int(height * hires["scale"]), 0, 0
    if ry == 0:
        return rx, rx * height // width, 0, 0
    if rx == 0:
        return ry * width // height, ry, 0, 0
    if width / height < rx / ry:
        to_x, to_y = rx, rx * height // width
    else:
        to_x, to_y = ry * width // height, ry
    return to_x, to_y, (to_x - rx) // 8, (to_y - ry) // 8


def tiny_esrgan(name):
    from safetensors.torch import load_file
    scale = int(name.split("x")[-1])
    net = esrgan.RrdbNet(scale).eval()
    net.load_state_dict(load_file(os.path.join(ESRGAN_DIR, name + ".safetensors")))
    return net


def hires_case(txt2img, img2img, config, scheduler, hires, strength):
    txt2img.scheduler = txt.scheduler_for(scheduler, config)
    img2img.scheduler = txt.scheduler_for(scheduler, config)
    common = dict(prompt=txt.PROMPT, negative_prompt=txt.NEGATIVE, guidance_scale=GUIDANCE)
    to_x, to_y, cut_x, cut_y = target_size(SIZE, SIZE, hires)
    upscaler = hires["upscaler"]
    with torch.no_grad():
        if upscaler in MODES:
            first = txt2img(**common, height=SIZE, width=SIZE, num_inference_steps=STEPS, output_type="latent",
                            generator=torch.Generator().manual_seed(SEED)).images
            mode, antialias = MODES[upscaler]
            start = F.interpolate(first, size=(to_y // 8, to_x // 8), mode=mode, antialias=antialias)
        else:
            first = txt2img(**common, height=SIZE, width=SIZE, num_inference_steps=STEPS, output_type="pt",
                            generator=torch.Generator().manual_seed(SEED)).images
            start = esrgan.run_padded(tiny_esrgan(upscaler), first).clamp(0, 1)
            assert start.shape[2] == to_y and start.shape[3] == to_x, "pick a scale the network makes exactly"
        if cut_x or cut_y:
            assert start.shape[1] == 4
            start = start[:, :, cut_y // 2:start.shape[2] - (cut_y + 1) // 2, cut_x // 2:start.shape[3] - (cut_x + 1) // 2]
        steps = hires.get("steps", 0) or STEPS
        out = {}
        for output_type in ("latent", "pt"):
            out[output_type] = img2img(**common, image=start.clone(), strength=strength, num_inference_steps=steps,
                                       output_type=output_type, generator=torch.Generator().manual_seed(SEED)).images
    return out["latent"], out["pt"]


def main():
    import diffusers
    import transformers
    from diffusers import StableDiffusionImg2ImgPipeline
    torch.manual_seed(0)
    writer = txt.Writer()
    interpolation = []
    for shape, seed, sizes in INTERPOLATION_INPUTS:
        x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        entry = {"input": writer.tensor(x), "outputs": []}
        for size in sizes:
            for name, (mode, antialias) in MODES.items():
                y = F.interpolate(x, size=size, mode=mode, antialias=antialias)
                entry["outputs"].append({"mode": name, "size": list(size), "output": writer.tensor(y)})
        interpolation.append(entry)
    helpers = txt.load_module("make_tokenizer_goldens")
    cases = []
    with tempfile.TemporaryDirectory() as workdir:
        pipes = {}
        for name, fixture, scheduler, hires, strength in PIPELINE_CASES:
            if fixture not in pipes:
                pipe, config = txt.build_pipeline(fixture, helpers, workdir)
                pipes[fixture] = (pipe, StableDiffusionImg2ImgPipeline(**pipe.components), config)
            pipe, img2img, config = pipes[fixture]
            img2img.set_progress_bar_config(disable=True)
            final, image = hires_case(pipe, img2img, config, scheduler, hires, strength)
            case = {"name": name, "fixture": fixture, "scheduler": scheduler, "hires": hires,
                    "denoisingStrength": strength, "latents": writer.tensor(final)}
            if not cases:
                case["image"] = writer.tensor(image)
            cases.append(case)
            print(name, list(final.shape), float(final.abs().max()))
    os.makedirs(OUT_DIR, exist_ok=True)
    np.concatenate(writer.chunks).tofile(os.path.join(OUT_DIR, "goldens.bin"))
    with open(os.path.join(OUT_DIR, "goldens.json"), "w") as f:
        json.dump({"generator": "tools/goldens/make_hires_goldens.py",
                   "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                                "transformers": transformers.__version__},
                   "dtype": "float32", "prompt": txt.PROMPT, "negativePrompt": txt.NEGATIVE, "width": SIZE,
                   "height": SIZE, "steps": STEPS, "guidanceScale": GUIDANCE, "seed": SEED,
                   "interpolation": interpolation, "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
