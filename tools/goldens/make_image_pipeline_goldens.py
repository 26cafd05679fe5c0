#!/usr/bin/env python3
"""img2img, inpaint and depth2img goldens: diffusers' pipelines on the tiny fixtures.

References (imported, never copied): diffusers' StableDiffusionImg2ImgPipeline,
StableDiffusionInpaintPipeline and StableDiffusionDepth2ImgPipeline in float32 on CPU,
safety_checker=None, tokenizer from the vocabulary the package ships (as
make_pipeline_goldens.py does), schedulers from the fixture's scheduler config.

Models:
  - img2img and inpainting with latent blending (a 4-channel UNet): test/fixtures/tiny's
    sd1-diffusers and sd2-v-diffusers, and sd1-unet-t64 (sd1-diffusers with the
    timestep-sensitive UNet of goldens/unet/; see make_pipeline_goldens.py);
  - 9-channel inpainting and depth2img: the single files sd1-inpaint-ldm.ckpt and
    sd2-depth-ldm.safetensors, rebuilt as diffusers folders by make_tiny_models.py (same seed,
    same weights; make_unet_goldens.load_unet checks every UNet tensor of the file against the
    rebuilt model first).

Inputs (stored in the goldens so the tests use the same values): a 128x128 RGB pattern in
[0, 1], a mask in [0, 1] with soft values on both sides of 0.5 (the pipeline binarizes it), and
a 100x120 depth map (not the image's size: diffusers resizes it bicubically to the latents).
Prompt "a painting of a flooble", negative "blurry", 5 steps, guidance 7.5, seed 42.

For every case the final latents (output_type='latent'); for the first case of each model also
the image (output_type='pt').

Output: test/fixtures/goldens/image-pipelines/goldens.bin (float32 little endian) and
goldens.json (inputs and cases with shapes and offsets in floats).

Usage (from the repository root, with the environment of tools/README.md):
    PYTHONPATH=/work/refs/diffusers/src /work/pyenv/bin/python tools/goldens/make_image_pipeline_goldens.py
"""

import json
import os
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TINY = os.path.join(REPO_ROOT, "test", "fixtures", "tiny")
OUT_DIR = os.path.join(REPO_ROOT, "test", "fixtures", "goldens", "image-pipelines")

sys.path.insert(0, HERE)
import make_pipeline_goldens as txt  # noqa: E402
import make_text_encoder_goldens as te  # noqa: E402
import make_tiny_models as tiny  # noqa: E402
import make_tokenizer_goldens as tokenizer_helpers  # noqa: E402
import make_unet_goldens as unet_goldens  # noqa: E402

PROMPT = txt.PROMPT
NEGATIVE = txt.NEGATIVE
SIZE = 128
STEPS = 5
GUIDANCE = 7.5
SEED = 42
DEPTH_SHAPE = (1, 100, 120)


def scheduler_for(name, config):
    from diffusers import HeunDiscreteScheduler, LMSDiscreteScheduler, UniPCMultistepScheduler
    if name == "heun":
        return HeunDiscreteScheduler.from_config(config)
    if name == "lms":
        return LMSDiscreteScheduler.from_config(config)
    if name == "unipc":
        return UniPCMultistepScheduler.from_config(config)
    return txt.scheduler_for(name, config)


def make_inputs():
    """A smooth colour pattern, a soft-edged mask and a depth map, all deterministic."""
    y, x = torch.meshgrid(torch.arange(SIZE, dtype=torch.float64), torch.arange(SIZE, dtype=torch.float64),
                          indexing="ij")
    r = 0.5 + 0.45 * torch.sin(x / 9.0) * torch.cos(y / 13.0)
    g = (x + 2 * y) / (3 * (SIZE - 1))
    b = 0.5 + 0.5 * torch.cos((x - y) / 17.0) ** 3
    image = torch.stack([r, g, b])[None].float()
    # Repaint a rectangle; the ramp around it crosses 0.5, so binarization decides the edge.
    inside = ((x - 64).abs() <= 28) & ((y - 56).abs() <= 36)
    ramp = (1 - torch.clamp(torch.maximum((x - 64).abs() - 28, (y - 56).abs() - 36) / 12, 0, 1))
    mask = torch.where(inside, torch.ones_like(x), ramp * 0.9)[None, None].float()
    dy, dx = torch.meshgrid(torch.arange(DEPTH_SHAPE[1], dtype=torch.float64),
                            torch.arange(DEPTH_SHAPE[2], dtype=torch.float64), indexing="ij")
    depth = (3.0 + 2.0 * torch.exp(-((dx - 70) ** 2 + (dy - 40) ** 2) / 800.0) + dy / 50.0)[None].float()
    return image, mask, depth


def build(folder, pipeline_class, workdir, unet=None):
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel
    tokenizer = te.make_tokenizer(folder, tokenizer_helpers, workdir)
    text_encoder = CLIPTextModel.from_pretrained(os.path.join(folder, "text_encoder"), torch_dtype=torch.float32)
    if unet is None:
        unet = UNet2DConditionModel.from_pretrained(os.path.join(folder, "unet"), torch_dtype=torch.float32)
    vae = AutoencoderKL.from_pretrained(os.path.join(folder, "vae"), torch_dtype=torch.float32)
    with open(os.path.join(folder, "scheduler", "scheduler_config.json")) as f:
        config = json.load(f)
    parts = dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                 scheduler=PNDMScheduler.from_config(config))
    if pipeline_class.__name__ == "StableDiffusionDepth2ImgPipeline":
        parts.update(depth_estimator=None, feature_extractor=None)
    else:
        parts.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe = pipeline_class(**parts)
    for module in (text_encoder, unet, vae):
        module.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe, config


def single_file_folder(model, fixture, workdir):
    """The tiny single file as a diffusers folder, after checking the file holds the same UNet."""
    unet_goldens.load_unet({"fixture": fixture, "model": model})
    pipeline = next(name for name, p in tiny.PIPELINES.items() if p[0] == model)
    m = tiny.TinyModel(model, tiny.PIPELINES[pipeline][4])
    folder = os.path.join(workdir, model)
    tiny.write_diffusers(m, pipeline, folder)
    return folder


def run(pipe, config, scheduler, kind, inputs, strength, guidance=GUIDANCE, batch=1, with_image=True, latents=None):
    image, mask, depth = inputs
    pipe.scheduler = scheduler_for(scheduler, config)
    out = {"pt": None}
    for output_type in ("latent", "pt") if with_image else ("latent",):
        args = dict(prompt=PROMPT, negative_prompt=NEGATIVE, num_inference_steps=STEPS, guidance_scale=guidance,
                    generator=torch.Generator().manual_seed(SEED), num_images_per_prompt=batch,
                    output_type=output_type, strength=strength, image=image.clone())
        if kind == "inpaint":
            args.update(mask_image=mask.clone(), height=SIZE, width=SIZE)
        if latents is not None:
            args.update(latents=latents.clone())
        if kind == "depth2img":
            args.update(depth_map=depth.clone())
        with torch.no_grad():
            out[output_type] = pipe(**args).images
    return out["latent"], out["pt"]


def main():
    import diffusers
    import transformers
    from diffusers import (StableDiffusionDepth2ImgPipeline, StableDiffusionImg2ImgPipeline,
                           StableDiffusionInpaintPipeline)
    torch.manual_seed(0)
    writer = txt.Writer()
    inputs = make_inputs()
    stored_inputs = {"image": writer.tensor(inputs[0]), "mask": writer.tensor(inputs[1]),
                     "depth": writer.tensor(inputs[2])}
    # kind, fixture, [(scheduler, strength, guidance, batch)]
    plan = [
        ("img2img", "sd1-diffusers", [(s, 0.6, GUIDANCE, 1) for s in
                                      ("pndm", "ddim", "euler", "dpmpp_2m_karras", "euler_a", "heun", "lms", "unipc")]
         + [("ddim", 0.6, 1.0, 1), ("euler_a", 0.6, GUIDANCE, 2), ("pndm", 1.0, GUIDANCE, 1)]),
        ("img2img", "sd2-v-diffusers", [("ddim", 0.6, GUIDANCE, 1), ("euler", 0.8, GUIDANCE, 1)]),
        ("img2img", "sd1-unet-t64", [("pndm", 0.6, GUIDANCE, 1), ("dpmpp_2m_karras", 0.6, GUIDANCE, 1),
                                     ("heun", 0.6, GUIDANCE, 1)]),
        ("inpaint", "sd1-inpaint", [("pndm", 1.0, GUIDANCE, 1), ("ddim", 1.0, GUIDANCE, 1),
                                    ("euler_a", 1.0, GUIDANCE, 1), ("ddim", 0.7, GUIDANCE, 1),
                                    ("euler", 0.7, GUIDANCE, 1), ("ddim", 1.0, GUIDANCE, 2)]),
        ("inpaint", "sd1-diffusers", [("ddim", 1.0, GUIDANCE, 1), ("euler", 0.7, GUIDANCE, 1)]),
        ("inpaint", "sd1-unet-t64", [("pndm", 0.7, GUIDANCE, 1), ("dpmpp_2m_karras", 1.0, GUIDANCE, 1),
                                     ("euler_a", 0.7, 1.0, 1)]),
        ("depth2img", "sd2-depth", [("pndm", 0.8, GUIDANCE, 1), ("ddim", 0.8, GUIDANCE, 1),
                                    ("euler", 1.0, GUIDANCE, 1), ("ddim", 0.8, GUIDANCE, 2)]),
    ]
    # Inpainting with the caller's latents (diffusers' prepare_latents: they are the noise, and the
    # start once multiplied by init_noise_sigma, whatever the strength): fixture, scheduler, strength.
    given_latents = torch.randn((1, 4, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(7))
    stored_inputs["latents"] = writer.tensor(given_latents)
    given_plan = [("sd1-inpaint", "ddim", 1.0), ("sd1-inpaint", "euler", 0.7), ("sd1-diffusers", "euler", 0.7)]
    classes = {"img2img": StableDiffusionImg2ImgPipeline, "inpaint": StableDiffusionInpaintPipeline,
               "depth2img": StableDiffusionDepth2ImgPipeline}
    with tempfile.TemporaryDirectory() as workdir:
        for kind, fixture, cases in plan:
            unet = None
            if fixture == "sd1-inpaint":
                folder = single_file_folder("sd1-inpaint", "sd1-inpaint-ldm.ckpt", workdir)
                loads = "sd1-inpaint-ldm.ckpt"
            elif fixture == "sd2-depth":
                folder = single_file_folder("sd2-depth", "sd2-depth-ldm.safetensors", workdir)
                loads = "sd2-depth-ldm.safetensors"
            elif fixture == "sd1-unet-t64":
                folder = os.path.join(TINY, "sd1-diffusers")
                from diffusers import UNet2DConditionModel
                unet = UNet2DConditionModel.from_pretrained(unet_goldens.T64_DIR, torch_dtype=torch.float32).eval()
                loads = "sd1-unet-t64"
            else:
                folder = os.path.join(TINY, fixture)
                loads = fixture
            pipe, config = build(folder, classes[kind], workdir, unet)
            for i, (scheduler, strength, guidance, batch) in enumerate(cases):
                # Decoded images (196 KB each) for the first case of each model; latents for all.
                final, image = run(pipe, config, scheduler, kind, inputs, strength, guidance, batch, i == 0)
                name = f"{kind}/{fixture}/{scheduler}/s{strength}/g{guidance}/b{batch}"
                case = {"name": name, "pipeline": kind, "fixture": loads, "scheduler": scheduler,
                        "strength": strength, "guidanceScale": guidance, "batchSize": batch,
                        "latents": writer.tensor(final)}
                if image is not None:
                    case["image"] = writer.tensor(image)
                writer.cases.append(case)
                print(name, list(final.shape), float(final.abs().max()))
            if kind != "inpaint":
                continue
            for given_fixture, scheduler, strength in given_plan:
                if given_fixture != fixture:
                    continue
                final, _ = run(pipe, config, scheduler, kind, inputs, strength, with_image=False, latents=given_latents)
                name = f"{kind}/{fixture}/{scheduler}/s{strength}/g{GUIDANCE}/b1/given-latents"
                writer.cases.append({"name": name, "pipeline": kind, "fixture": loads, "scheduler": scheduler,
                                     "strength": strength, "guidanceScale": GUIDANCE, "batchSize": 1,
                                     "givenLatents": True, "latents": writer.tensor(final)})
                print(name, list(final.shape), float(final.abs().max()))
    os.makedirs(OUT_DIR, exist_ok=True)
    np.concatenate(writer.chunks).tofile(os.path.join(OUT_DIR, "goldens.bin"))
    with open(os.path.join(OUT_DIR, "goldens.json"), "w") as f:
        json.dump({"generator": "tools/goldens/make_image_pipeline_goldens.py",
                   "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                                "transformers": transformers.__version__},
                   "dtype": "float32", "prompt": PROMPT, "negativePrompt": NEGATIVE, "steps": STEPS, "seed": SEED,
                   "inputs": stored_inputs, "cases": writer.cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
