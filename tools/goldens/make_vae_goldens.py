"""VAE goldens: diffusers' AutoencoderKL (float32, CPU) on the tiny fixture models.

For each model folder in MODELS this loads <folder>/vae with AutoencoderKL.from_pretrained and
runs, on seeded inputs,
  decode: latents (torch.randn, seed) → vae.decode(latents).sample     (unscaled latents, no clamp)
  encode: image (torch.rand·2−1, seed) → vae.encode(image).latent_dist.parameters
          (the moments: quant_conv's output, mean then log-variance on channels, before
          DiagonalGaussianDistribution clamps the log-variance)

Run: PYTHONPATH=/work/refs/diffusers/src /work/pyenv/bin/python tools/goldens/make_vae_goldens.py
Writes test/fixtures/goldens/vae/<model>.bin (little-endian float32 arrays, back to back) and
test/fixtures/goldens/vae/index.json listing each case: model, op, input and output as
{ offset (in floats), shape }. Inputs are stored too, so the tests need no random generator.
"""

import json
import os

import numpy as np
import torch

from diffusers import AutoencoderKL

GROUPS_FIXTURE = "vae-groups4"

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
TINY = os.path.join(ROOT, "test", "fixtures", "tiny")
OUT = os.path.join(ROOT, "test", "fixtures", "goldens", "vae")
OUT_GROUPS = os.path.join(ROOT, "test", "fixtures", "goldens", "vae-groups")

# model folder → cases (op, input shape, seed)
MODELS = {
    "sd1-diffusers": [
        ("decode", (1, 4, 8, 8), 1),
        ("decode", (2, 4, 8, 12), 2),
        ("encode", (1, 3, 64, 64), 3),
        ("encode", (2, 3, 32, 48), 4),
    ],
    "sd2-v-diffusers": [
        ("decode", (1, 4, 8, 8), 5),
        ("encode", (1, 3, 64, 64), 6),
    ],
}

# A VAE alone (vae/ only, so not a model the other suites can load) with GroupNorm over 4 groups
# instead of SD's 32: norm_num_groups is read from the config (the demo model's VAE uses 8).
# Written by write_groups_fixture(); its goldens go to their own folder, goldens/vae-groups/.
GROUPS_MODELS = {
    GROUPS_FIXTURE: [
        ("decode", (1, 4, 8, 8), 7),
        ("encode", (1, 3, 64, 64), 8),
    ],
}


def write_groups_fixture():
    """test/fixtures/tiny/vae-groups4/vae: widths 8, 16, 16, 16 and norm_num_groups 4, random
    weights as the tiny models make them (f16 values, deterministic)."""
    import make_tiny_models as tiny
    config = dict(tiny.vae_config((8, 16, 16, 16), 64), norm_num_groups=4)
    vae = tiny.randomize(AutoencoderKL(**config), GROUPS_FIXTURE, "vae").eval()
    folder = os.path.join(TINY, GROUPS_FIXTURE, "vae")
    os.makedirs(folder, exist_ok=True)
    vae.save_config(folder)
    tiny.save_safetensors(dict(vae.state_dict()), os.path.join(folder, "diffusion_pytorch_model.safetensors"))


def main():
    torch.set_grad_enabled(False)
    write_groups_fixture()
    write_goldens(MODELS, OUT)
    write_goldens(GROUPS_MODELS, OUT_GROUPS)


def write_goldens(models, out):
    os.makedirs(out, exist_ok=True)
    index = {"format": "float32 little-endian; offsets and sizes in floats", "cases": []}
    for model, cases in models.items():
        vae = AutoencoderKL.from_pretrained(os.path.join(TINY, model, "vae"), torch_dtype=torch.float32).eval()
        arrays = []
        offset = 0

        def put(t):
            nonlocal offset
            a = t.detach().to(torch.float32).contiguous().numpy().astype("<f4")
            arrays.append(a.ravel())
            entry = {"offset": offset, "shape": list(a.shape)}
            offset += a.size
            return entry

        for op, shape, seed in cases:
            g = torch.Generator().manual_seed(seed)
            if op == "decode":
                x = torch.randn(shape, generator=g, dtype=torch.float32)
                y = vae.decode(x).sample
            else:
                x = torch.rand(shape, generator=g, dtype=torch.float32) * 2 - 1
                dist = vae.encode(x).latent_dist
                y = dist.parameters
                assert torch.equal(y, vae.quant_conv(vae.encoder(x)))
            index["cases"].append({"model": model, "op": op, "seed": seed, "file": f"{model}.bin",
                                   "input": put(x), "output": put(y)})
            print(f"{model} {op} {list(shape)} → {list(y.shape)}  max|y| {y.abs().max().item():.4g}")
        np.concatenate(arrays).tofile(os.path.join(out, f"{model}.bin"))
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
