#!/usr/bin/env python3
"""A random-weight LoRA for the full-size SD 1.5 model, for benchmarks (never committed).

Writes a kohya-ss LoRA (`lora_unet_*` / `lora_te_*` modules with `.lora_down.weight`,
`.lora_up.weight` and `.alpha`, F16 safetensors) of the given rank, for the layers that the two
common kinds of SD 1.5 LoRA train, found on diffusers' and transformers' own classes built on the
meta device:

- `--preset attention` (the default; what kohya's train_network.py trains without LoCon): every
  Transformer2DModel's proj_in/proj_out (1x1 convolutions in SD 1.5), attn1/attn2 to_q, to_k,
  to_v, to_out.0, ff.net.0.proj and ff.net.2, and the text encoder's q/k/v/out projections and
  MLP.
- `--preset lcm` (the layers of latent-consistency/lcm-lora-sdv1-5, rank 64 there): the
  attention layers above plus every ResNet's conv1, conv2, conv_shortcut and time_emb_proj and
  the down- and upsamplers' convolutions; UNet only.

The factors are small random numbers (seeded), so the LoRA changes the weights without blowing
the activations up: it measures speed and memory, not what a LoRA draws.

Usage (environment as in tools/README.md):
    PYTHONPATH=/work/refs/diffusers/src /work/pyenv/bin/python tools/make_random_lora.py OUT.safetensors
        [--rank 32] [--preset attention|lcm] [--seed 17]
"""

import argparse
import os
import sys

import torch

from make_full_size_model import sd15_configs

ATTENTION_LAYERS = ("proj_in", "proj_out", "to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2")
RESNET_LAYERS = ("conv1", "conv2", "conv_shortcut", "time_emb_proj")
SAMPLER_LAYERS = ("downsamplers.0.conv", "upsamplers.0.conv")
TEXT_LAYERS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")


def targets(model, suffixes):
    """(module name, module) for every Linear or Conv2d whose name ends with one of the suffixes."""
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)) and name.endswith(suffixes):
            yield name, module


def factors(module, rank, generator):
    """Kohya's down (rank × in [× kh × kw]) and up (out × rank [× 1 × 1]) factors."""
    if isinstance(module, torch.nn.Conv2d):
        down_shape = (rank, module.in_channels, *module.kernel_size)
        up_shape = (module.out_channels, rank, 1, 1)
    else:
        down_shape = (rank, module.in_features)
        up_shape = (module.out_features, rank)
    fan_in = 1
    for size in down_shape[1:]:
        fan_in *= size
    down = torch.randn(down_shape, generator=generator) / fan_in ** 0.5
    up = torch.randn(up_shape, generator=generator) * 0.01
    return down.half(), up.half()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="path of the .safetensors file to write")
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--preset", choices=("attention", "lcm"), default="attention")
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()

    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextModel

    unet_cfg, _, text_cfg = sd15_configs()
    with torch.device("meta"):
        unet = UNet2DConditionModel(**unet_cfg)
        text_encoder = CLIPTextModel(text_cfg)

    unet_layers = ATTENTION_LAYERS + (RESNET_LAYERS + SAMPLER_LAYERS if args.preset == "lcm" else ())
    modules = [("lora_unet_", name, m) for name, m in targets(unet, unet_layers)]
    if args.preset == "attention":
        # transformers 5 has no `.text_model` level; kohya's names do.
        modules += [("lora_te_", "text_model." + name.removeprefix("text_model."), m)
                    for name, m in targets(text_encoder, TEXT_LAYERS)]

    generator = torch.Generator().manual_seed(args.seed)
    state = {}
    for prefix, name, module in modules:
        key = prefix + name.replace(".", "_")
        down, up = factors(module, args.rank, generator)
        state[f"{key}.lora_down.weight"] = down
        state[f"{key}.lora_up.weight"] = up
        state[f"{key}.alpha"] = torch.tensor(float(args.rank), dtype=torch.float16)
    save_file(state, args.out, metadata={"ss_network_dim": str(args.rank), "ss_network_alpha": str(args.rank)})
    params = sum(v.numel() for v in state.values())
    print(f"wrote {args.out}: {len(modules)} layers, rank {args.rank}, {params / 1e6:.1f}M parameters, "
          f"{os.path.getsize(args.out) / 1e6:.0f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
