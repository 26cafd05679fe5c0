#!/usr/bin/env python3
"""The diffusers side of `npm run bench -- --diffusers-python PYTHON`: PyTorch fp32 on the CPU.

Loads SD 1.5's UNet, VAE and CLIP text encoder from the same single-file checkpoint the Node
benchmark reads (original layout: model.diffusion_model.*, first_stage_model.*,
cond_stage_model.transformer.*), with diffusers' own conversion functions and SD 1.5's configs
written out here (no downloads, no config folder), then times what bench/measure.ts times:
one 77-token text encode, the first UNet call and the median of `steps` more (a batch of 2, as
a guided step is), one VAE decode, and the process's peak RSS. Prints one JSON line with the
same keys as bench/measure.ts.

    PYTHONPATH=/work/refs/diffusers/src python bench/diffusers_bench.py MODEL SIZE THREADS [--steps N] [--seed S]
    PYTHONPATH=/work/refs/diffusers/src python bench/diffusers_bench.py --count-flops [SIZE ...]

--count-flops runs the networks on the meta device (no weights, no compute) under PyTorch's
torch.utils.flop_counter.FlopCounterMode and prints its counts, to check bench/flops.ts.
A dev tool: it imports diffusers, torch, transformers and safetensors, it copies none of them.
"""

import argparse
import json
import resource
import statistics
import sys
import time

import torch

UNET_CONFIG = dict(sample_size=64, in_channels=4, out_channels=4,
                   down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                   up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                   block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                   cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32)
VAE_CONFIG = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                  up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
                  layers_per_block=2, latent_channels=4, norm_num_groups=32, sample_size=512)
TEXT_CONFIG = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                   num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                   layer_norm_eps=1e-5, projection_dim=768)
PROMPT_IDS = [49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407]  # any 77-token row will do


def build_models(device):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device(device):
        unet = UNet2DConditionModel(**UNET_CONFIG).eval()
        vae = AutoencoderKL(**VAE_CONFIG).eval()
        text = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG)).eval()
    return unet, vae, text


def read_component(path, prefix):
    """The checkpoint's tensors under `prefix` (full names kept), as float32."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        return {k: f.get_tensor(k).float() for k in f.keys() if k.startswith(prefix)}


def load(path):
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint, convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint)

    unet, vae, text = build_models("meta")
    # One component at a time, loaded in place of the meta tensors (assign=True: no second copy).
    state = convert_ldm_unet_checkpoint(read_component(path, "model.diffusion_model."), dict(unet.config))
    unet.load_state_dict(state, strict=True, assign=True)
    state = convert_ldm_vae_checkpoint(read_component(path, "first_stage_model."), dict(vae.config))
    vae.load_state_dict(state, strict=True, assign=True)
    state = convert_ldm_clip_checkpoint(read_component(path, "cond_stage_model.transformer."))
    expected = set(text.state_dict())
    if not any(k.startswith("text_model.") for k in expected):  # transformers 5: no text_model wrapper
        state = {k.removeprefix("text_model."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.endswith("position_ids")}
    missing, unexpected = text.load_state_dict(state, strict=False, assign=True)
    if unexpected or any(not k.endswith("position_ids") for k in missing):
        raise RuntimeError(f"text encoder: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for name, buffer in list(text.named_buffers()):  # non-persistent buffers left on the meta device
        if buffer.is_meta and name.endswith("position_ids"):
            owner = text.get_submodule(name.rsplit(".", 1)[0])
            owner.register_buffer("position_ids", torch.arange(buffer.shape[-1]).expand(buffer.shape).clone(),
                                  persistent=False)
    del state
    for label, module in (("UNet", unet), ("VAE", vae), ("text encoder", text)):
        leftover = [n for n, t in list(module.named_parameters()) + list(module.named_buffers()) if t.is_meta]
        if leftover:
            raise RuntimeError(f"{label}: not loaded: {leftover[:5]}")
    return unet, vae, text


def bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    latent = args.size // 8
    result = {"weightType": "f32", "size": args.size, "threads": args.threads, "torch": torch.__version__}

    start = time.perf_counter()
    unet, vae, text = load(args.model)
    result["loadSeconds"] = time.perf_counter() - start
    result["weightBytes"] = sum(p.numel() * p.element_size()
                                for m in (unet, vae, text) for p in m.parameters())

    with torch.inference_mode():
        ids = torch.tensor([PROMPT_IDS + [49407] * (77 - len(PROMPT_IDS))])
        start = time.perf_counter()
        text(ids)
        result["textEncodeSeconds"] = time.perf_counter() - start

        sample = torch.randn(2, 4, latent, latent)
        context = torch.randn(2, 77, 768)
        start = time.perf_counter()
        unet(sample, 999, encoder_hidden_states=context)
        result["unetFirstStepSeconds"] = time.perf_counter() - start
        times = []
        for i in range(1, args.steps + 1):
            start = time.perf_counter()
            unet(sample, 999 - 20 * i, encoder_hidden_states=context)
            times.append(time.perf_counter() - start)
        result["unetStepSeconds"] = statistics.median(times) if times else None

        latents = torch.randn(1, 4, latent, latent)
        start = time.perf_counter()
        vae.decode(latents)
        result["vaeDecodeSeconds"] = time.perf_counter() - start

    result["peakRssBytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(result))


def count_flops(sizes):
    from torch.utils.flop_counter import FlopCounterMode

    unet, vae, text = build_models("meta")
    with torch.inference_mode():
        ids = torch.zeros(1, 77, dtype=torch.long, device="meta")
        with FlopCounterMode(display=False) as counter:
            text(ids)
        print(f"text encode (77 tokens): {counter.get_total_flops() / 1e12:.4f} TFLOP")
        for size in sizes:
            latent = size // 8
            with FlopCounterMode(display=False) as counter:
                unet(torch.zeros(1, 4, latent, latent, device="meta"), 999,
                     encoder_hidden_states=torch.zeros(1, 77, 768, device="meta"))
            unet_flops = counter.get_total_flops()
            with FlopCounterMode(display=False) as counter:
                vae.decode(torch.zeros(1, 4, latent, latent, device="meta"))
            print(f"{size}²: UNet {unet_flops / 1e12:.4f} TFLOP per image (batch 1), "
                  f"VAE decode {counter.get_total_flops() / 1e12:.4f} TFLOP")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count-flops", action="store_true")
    parser.add_argument("model", nargs="?")
    parser.add_argument("size", nargs="?", type=int)
    parser.add_argument("threads", nargs="?", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--sizes", default="256,512")
    args = parser.parse_args()
    if args.count_flops:
        count_flops([int(s) for s in args.sizes.split(",")])
        return
    if args.model is None or args.size is None:
        parser.error("MODEL and SIZE are required")
    bench(args)


if __name__ == "__main__":
    sys.exit(main())
