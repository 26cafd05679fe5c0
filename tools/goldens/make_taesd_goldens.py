#!/usr/bin/env python3
"""TAESD goldens: diffusers' AutoencoderTiny (madebyollin's tiny autoencoder) on random weights.

The tiny model keeps TAESD's block structure (encoder: 1, 3, 3, 3 blocks with three stride-2
convolutions; decoder: 3, 3, 3, 1 blocks with three nearest ×2 upsamplings, so 8 pixels per
latent as SD's VAE) with 8 channels instead of 64, and 4 latent channels. Weights are PyTorch's
default initialisation from a fixed seed, with biases redrawn so that none is zero.

Written in the layouts users have:
  test/fixtures/tiny/taesd-diffusers/                 diffusers' folder: config.json and
                                                      diffusion_pytorch_model.safetensors
                                                      ("encoder.layers.N.…", "decoder.layers.N.…")
  test/fixtures/tiny/taesd/taesd_encoder.safetensors  madebyollin's original files: each half as
  test/fixtures/tiny/taesd/taesd_decoder.safetensors  its own nn.Sequential, so keys are "N.…".
    The key map (from the public structure of both): the encoder's Sequential has the same
    layers in the same order as diffusers' EncoderTiny.layers ("N" = "encoder.layers.N"); the
    decoder's starts with a weightless Clamp that diffusers' DecoderTiny applies in forward()
    instead, so "N" = "decoder.layers.{N-1}". Blocks keep their own names (conv.0, conv.2,
    conv.4, skip) in both.

Goldens (float32, CPU), with their inputs:
  decode: latents (torch.randn, seed) → vae.decode(latents).sample        ([-1, 1] images' scale)
  encode: image (torch.rand·2−1, seed) → vae.encode(image).latents
  txt2img: StableDiffusionPipeline on test/fixtures/tiny/sd1-diffusers with vae=AutoencoderTiny
          (the tiny one above), prompt "a painting of a flooble", negative "blurry", 96×96, Euler,
          3 steps, guidance 7.5, seed 42: the final latents and the 'pt' image.
  img2img: StableDiffusionImg2ImgPipeline on the same parts, a 96×96 colour pattern in [0, 1]
          (stored), strength 0.75, 4 Euler steps: the final latents (TAESD's encoder gives latents,
          not a distribution, so diffusers draws nothing from the generator for the image).

Output: test/fixtures/goldens/taesd/goldens.bin (float32 little endian, concatenated) and
goldens.json (cases with shapes and offsets in floats).

Usage (from the repository root, with the environment of tools/README.md):
    PYTHONPATH=/work/refs/diffusers/src /work/pyenv/bin/python tools/goldens/make_taesd_goldens.py
"""

import importlib.util
import json
import os
import tempfile

import numpy as np
import torch
from safetensors.torch import save_file

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TINY = os.path.join(REPO_ROOT, "test", "fixtures", "tiny")
DIFFUSERS_DIR = os.path.join(TINY, "taesd-diffusers")
ORIGINAL_DIR = os.path.join(TINY, "taesd")
OUT_DIR = os.path.join(REPO_ROOT, "test", "fixtures", "goldens", "taesd")

CHANNELS = 8
CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4,
    encoder_block_out_channels=(CHANNELS,) * 4, decoder_block_out_channels=(CHANNELS,) * 4,
    num_encoder_blocks=(1, 3, 3, 3), num_decoder_blocks=(3, 3, 3, 1),
    act_fn="relu", upsample_fn="nearest", upsampling_scaling_factor=2,
)

DECODE_CASES = [((1, 4, 4, 4), 1), ((2, 4, 2, 3), 2)]
ENCODE_CASES = [((1, 3, 32, 32), 3), ((2, 3, 16, 24), 4)]

PROMPT = "a painting of a flooble"
NEGATIVE = "blurry"
SIZE = 96  # the tiny UNet's mid block at 2×2, as the pipeline goldens' 128 (64 leaves it at 1×1)
STEPS = 3
GUIDANCE = 7.5
SEED = 42


def load_module(name):
    path = os.path.join(REPO_ROOT, "tools", "goldens", name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_model():
    from diffusers import AutoencoderTiny
    torch.manual_seed(1234)
    vae = AutoencoderTiny(**CONFIG).eval()
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if name.endswith(".bias"):
                p.uniform_(-0.2, 0.2)
    return vae


def original_state_dicts(vae):
    """madebyollin's taesd_encoder / taesd_decoder key names (see the module docstring)."""
    encoder, decoder = {}, {}
    for name, t in vae.state_dict().items():
        side, _, index, *rest = name.split(".")
        assert _ == "layers", name
        t = t.detach().contiguous().clone()
        if side == "encoder":
            encoder[".".join([index, *rest])] = t
        else:
            decoder[".".join([str(int(index) + 1), *rest])] = t
    return encoder, decoder


class Writer:
    def __init__(self):
        self.chunks, self.cases, self.offset = [], [], 0

    def tensor(self, t):
        a = t.detach().to(torch.float32).contiguous().numpy()
        self.chunks.append(a.reshape(-1).astype("<f4"))
        entry = {"shape": list(a.shape), "offset": self.offset}
        self.offset += a.size
        return entry


def txt2img_case(vae, writer, workdir):
    from diffusers import StableDiffusionPipeline, EulerDiscreteScheduler
    pipelines = load_module("make_pipeline_goldens")
    helpers = load_module("make_tokenizer_goldens")
    base, config = pipelines.build_pipeline("sd1-diffusers", helpers, workdir)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=base.unet,
                                   scheduler=EulerDiscreteScheduler.from_config(config), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.vae_scale_factor == 8
    out = {}
    for output_type in ("latent", "pt"):
        generator = torch.Generator().manual_seed(SEED)
        with torch.no_grad():
            out[output_type] = pipe(PROMPT, negative_prompt=NEGATIVE, height=SIZE, width=SIZE, num_inference_steps=STEPS,
                                    guidance_scale=GUIDANCE, generator=generator, output_type=output_type).images
    # The decode alone, to separate a decoder difference from a sampling one.
    with torch.no_grad():
        decoded = vae.decode(out["latent"] / vae.config.scaling_factor).sample
    assert torch.allclose((decoded / 2 + 0.5).clamp(0, 1), out["pt"], atol=1e-6)
    return {"name": "sd1-diffusers/taesd/euler", "fixture": "sd1-diffusers", "scheduler": "euler",
            "prompt": PROMPT, "negativePrompt": NEGATIVE, "width": SIZE, "height": SIZE, "steps": STEPS,
            "guidanceScale": GUIDANCE, "seed": SEED,
            "latents": writer.tensor(out["latent"]), "image": writer.tensor(out["pt"])}


def img2img_case(vae, writer, workdir):
    from diffusers import StableDiffusionImg2ImgPipeline, EulerDiscreteScheduler
    pipelines = load_module("make_pipeline_goldens")
    helpers = load_module("make_tokenizer_goldens")
    base, config = pipelines.build_pipeline("sd1-diffusers", helpers, workdir)
    pipe = StableDiffusionImg2ImgPipeline(vae=vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=base.unet,
                                          scheduler=EulerDiscreteScheduler.from_config(config), safety_checker=None,
                                          feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    y, x = torch.meshgrid(torch.arange(SIZE, dtype=torch.float64), torch.arange(SIZE, dtype=torch.float64), indexing="ij")
    image = torch.stack([0.5 + 0.45 * torch.sin(x / 7.0) * torch.cos(y / 11.0), (x + 2 * y) / (3 * (SIZE - 1)),
                         0.5 + 0.5 * torch.cos((x - y) / 13.0) ** 3])[None].float()
    strength, steps = 0.75, 4
    with torch.no_grad():
        latents = pipe(PROMPT, negative_prompt=NEGATIVE, image=image.clone(), strength=strength, num_inference_steps=steps,
                       guidance_scale=GUIDANCE, generator=torch.Generator().manual_seed(SEED), output_type="latent").images
    return {"name": "sd1-diffusers/taesd/img2img/euler", "fixture": "sd1-diffusers", "scheduler": "euler",
            "prompt": PROMPT, "negativePrompt": NEGATIVE, "strength": strength, "steps": steps,
            "guidanceScale": GUIDANCE, "seed": SEED, "image": writer.tensor(image), "latents": writer.tensor(latents)}


def main():
    import diffusers
    import transformers
    torch.set_grad_enabled(False)
    vae = make_model()

    os.makedirs(DIFFUSERS_DIR, exist_ok=True)
    vae.save_pretrained(DIFFUSERS_DIR, safe_serialization=True)
    os.makedirs(ORIGINAL_DIR, exist_ok=True)
    encoder, decoder = original_state_dicts(vae)
    save_file(encoder, os.path.join(ORIGINAL_DIR, "taesd_encoder.safetensors"))
    save_file(decoder, os.path.join(ORIGINAL_DIR, "taesd_decoder.safetensors"))

    writer = Writer()
    cases = []
    for shape, seed in DECODE_CASES:
        x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
        y = vae.decode(x).sample
        cases.append({"op": "decode", "seed": seed, "input": writer.tensor(x), "output": writer.tensor(y)})
        print("decode", list(shape), "→", list(y.shape), f"max|y| {y.abs().max().item():.4g} std {y.std().item():.4g}")
    for shape, seed in ENCODE_CASES:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32) * 2 - 1
        y = vae.encode(x).latents
        cases.append({"op": "encode", "seed": seed, "input": writer.tensor(x), "output": writer.tensor(y)})
        print("encode", list(shape), "→", list(y.shape), f"max|y| {y.abs().max().item():.4g} std {y.std().item():.4g}")
    with tempfile.TemporaryDirectory() as workdir:
        pipeline = txt2img_case(vae, writer, workdir)
        img2img = img2img_case(vae, writer, workdir)
    print(pipeline["name"], float(writer.chunks[-1].mean()))

    os.makedirs(OUT_DIR, exist_ok=True)
    np.concatenate(writer.chunks).tofile(os.path.join(OUT_DIR, "goldens.bin"))
    with open(os.path.join(OUT_DIR, "goldens.json"), "w") as f:
        json.dump({"generator": "tools/goldens/make_taesd_goldens.py",
                   "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                                "transformers": transformers.__version__},
                   "dtype": "float32", "config": CONFIG, "cases": cases, "txt2img": pipeline, "img2img": img2img}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
