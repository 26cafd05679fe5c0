#!/usr/bin/env python3
"""UNet goldens: diffusers' UNet2DConditionModel (float32, CPU) on the tiny fixtures' weights.

For each tiny model (test/fixtures/tiny) the UNet is loaded in float32:
  - diffusers folders with UNet2DConditionModel.from_pretrained;
  - the single files (sd1-inpaint-ldm.ckpt, sd2-depth-ldm.safetensors) by rebuilding the
    model with make_tiny_models.py (same seed, same weights) and requiring every UNet tensor of
    the file, mapped to the original names with that script's own (from_single_file-verified)
    mapping, to equal the rebuilt model's.
Inputs are seeded torch.randn; outputs are the UNet's prediction at timesteps 999, 500 and 1
(plus a per-item timestep list and a two-chunk 154-token context for sd1).

Writes test/fixtures/goldens/unet/: index.json and little-endian float32 files (*.f32).

Usage (repository root, environment as in tools/README.md):
    PYTHONPATH=/work/refs/diffusers/src /work/pyenv/bin/python tools/goldens/make_unet_goldens.py
"""

import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TINY = os.path.join(REPO_ROOT, "test", "fixtures", "tiny")
OUT = os.path.join(REPO_ROOT, "test", "fixtures", "goldens", "unet")

sys.path.insert(0, HERE)
import make_tiny_models as tiny  # noqa: E402

TIMESTEPS = [999, 500, 1]

# case: fixture, tiny model name (for single files), sample shape, context tokens, extra runs
CASES = [
    dict(name="sd1", fixture="sd1-diffusers", sample=[1, 4, 16, 16], tokens=77, seed=101),
    dict(name="sd1-b2", fixture="sd1-diffusers", sample=[2, 4, 8, 12], tokens=77, seed=102,
         per_item=[[999, 1]]),
    dict(name="sd1-long", fixture="sd1-diffusers", sample=[1, 4, 16, 16], tokens=154, seed=103, timesteps=[500]),
    dict(name="sd2", fixture="sd2-v-diffusers", sample=[1, 4, 16, 16], tokens=77, seed=201),
    dict(name="sd1-inpaint", fixture="sd1-inpaint-ldm.ckpt", model="sd1-inpaint", sample=[1, 9, 16, 16], tokens=77,
         seed=301),
    dict(name="sd2-depth", fixture="sd2-depth-ldm.safetensors", model="sd2-depth", sample=[1, 5, 16, 16], tokens=77,
         seed=401),
    # The tiny fixtures have 32 channels in 32 groups: GroupNorm then removes any per-channel
    # constant, so the time embedding (added per channel before norm2) has no effect on their
    # output. This extra UNet (64 channels at level 0, 2 levels, 1 resnet per level) makes the
    # timestep visible; the test puts it in a copy of sd1-diffusers (see T64_DIR).
    dict(name="sd1-t64", fixture="sd1-unet-t64", sample=[1, 4, 16, 16], tokens=77, seed=501),
    dict(name="sd1-t64-b2", fixture="sd1-unet-t64", sample=[2, 4, 12, 10], tokens=77, seed=502,
         timesteps=[], per_item=[[999, 20], [0.5, 745.25]]),
]

T64_DIR = os.path.join(OUT, "sd1-unet-t64")


def make_t64_unet():
    """UNet for sd1-diffusers' text encoder (context 16) with block_out_channels (64, 32)."""
    from diffusers import UNet2DConditionModel
    cfg = tiny.unet_config("sd1", 4, 16, 512)
    cfg.update(block_out_channels=(64, 32), layers_per_block=1,
               down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
               up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    unet = tiny.randomize(UNet2DConditionModel(**cfg), "sd1-unet-t64", "unet").eval()
    os.makedirs(T64_DIR, exist_ok=True)
    unet.to(torch.float16).save_pretrained(T64_DIR, safe_serialization=True)
    return UNet2DConditionModel.from_pretrained(T64_DIR, torch_dtype=torch.float32).eval()


def load_unet(case):
    from diffusers import UNet2DConditionModel

    if case["fixture"] == "sd1-unet-t64":
        return make_t64_unet()
    path = os.path.join(TINY, case["fixture"])
    if os.path.isdir(path):
        return UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=torch.float32).eval()
    name = case["model"]
    image_size = next(p[4] for p in tiny.PIPELINES.values() if p[0] == name)
    m = tiny.TinyModel(name, image_size)
    expected = tiny.unet_to_ldm(m.unet_state())
    if path.endswith(".ckpt"):
        stored = torch.load(path, weights_only=True)["state_dict"]
    else:
        from safetensors.torch import load_file
        stored = load_file(path)
    stored = {k: v for k, v in stored.items() if k.startswith("model.diffusion_model.")}
    if set(stored) != set(expected):
        raise AssertionError(f"{path}: UNet keys differ from the rebuilt model's")
    for k, v in expected.items():
        if not torch.equal(stored[k].float(), v.float()):
            raise AssertionError(f"{path}: {k} differs from the rebuilt model's")
    return m.unet.float().eval()


def write(name, tensor):
    arr = tensor.detach().cpu().contiguous().numpy().astype("<f4")
    arr.tofile(os.path.join(OUT, name))
    return {"file": name, "shape": list(arr.shape)}


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".f32"):
            os.remove(os.path.join(OUT, f))
    index = {"generator": "tools/goldens/make_unet_goldens.py", "cases": []}
    unets = {}
    with torch.no_grad():
        for case in CASES:
            key = case["fixture"]
            if key not in unets:
                unets[key] = load_unet(case)
            unet = unets[key]
            cfg = unet.config
            assert cfg.in_channels == case["sample"][1], (key, cfg.in_channels)
            g = torch.Generator().manual_seed(case["seed"])
            sample = torch.randn(case["sample"], generator=g, dtype=torch.float32)
            batch = case["sample"][0]
            context = torch.randn([batch, case["tokens"], cfg.cross_attention_dim], generator=g, dtype=torch.float32)
            entry = {
                "name": case["name"],
                "fixture": case["fixture"],
                "sample": write(f"{case['name']}.sample.f32", sample),
                "context": write(f"{case['name']}.context.f32", context),
                "outputs": [],
            }
            runs = [t for t in case.get("timesteps", TIMESTEPS)] + case.get("per_item", [])
            for t in runs:
                if isinstance(t, list):
                    ts = torch.tensor(t, dtype=torch.float32)
                    label = "t" + "-".join(str(x) for x in t)
                else:
                    ts = t
                    label = f"t{t}"
                out = unet(sample, ts, encoder_hidden_states=context).sample
                info = write(f"{case['name']}.{label}.f32", out)
                info["timestep"] = t
                info["maxAbs"] = float(out.abs().max())
                entry["outputs"].append(info)
            if case["name"].startswith("sd1-t64"):
                # The point of this model: the timestep must matter.
                outs = [np.fromfile(os.path.join(OUT, o["file"]), dtype="<f4") for o in entry["outputs"]]
                for o in outs[1:]:
                    assert np.abs(o - outs[0]).max() > 1e-2 * np.abs(outs[0]).max(), "timestep has no effect"
            index["cases"].append(entry)
            print(case["name"], [o["maxAbs"] for o in entry["outputs"]])
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
