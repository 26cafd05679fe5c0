#!/usr/bin/env python3
"""A full-size random-weight Stable Diffusion 1.5 checkpoint, for benchmarks (never committed).

Writes the original single-file layout (model.diffusion_model.*, first_stage_model.*,
cond_stage_model.transformer.text_model.*) as F16 safetensors, about 2.1 GB: SD 1.5's UNet
(320/640/1280/1280 channels, 8 heads, 768-dim cross-attention), VAE (128/256/512/512) and CLIP
ViT-L/14 text encoder (12 layers, 768 wide). Shapes come from diffusers' and transformers' own
classes built on the meta device; the names from the mapping in goldens/make_tiny_models.py
(checked there against diffusers' from_single_file). The weights are random (same recipe and
seed as the tiny models), so images are noise: it measures speed and memory, not quality.

Usage (environment as in tools/README.md):
    PYTHONPATH=/work/refs/diffusers/src /work/pyenv/bin/python tools/make_full_size_model.py OUT.safetensors
        [--in-channels 4|9|5]
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "goldens"))
import make_tiny_models as tiny  # noqa: E402


def sd15_configs(in_channels=4):
    """SD 1.5's UNet, VAE and text-encoder configurations (stable-diffusion-v1-5: unet/, vae/,
    text_encoder/config.json), as keyword dicts for diffusers' classes and a CLIPTextConfig."""
    from transformers import CLIPTextConfig

    unet_cfg = dict(sample_size=64, in_channels=in_channels, out_channels=4,
                    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32)
    vae_cfg = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                   up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
                   layers_per_block=2, latent_channels=4, norm_num_groups=32, sample_size=512)
    text_cfg = CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                              num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                              layer_norm_eps=1e-5, projection_dim=768)
    return unet_cfg, vae_cfg, text_cfg


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="path of the .safetensors file to write")
    parser.add_argument("--in-channels", type=int, default=4, choices=(4, 9, 5),
                        help="UNet input channels: 4 text-to-image, 9 inpainting, 5 depth")
    args = parser.parse_args()

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextModel

    unet_cfg, vae_cfg, text_cfg = sd15_configs(args.in_channels)

    with torch.device("meta"):
        shapes = {
            "unet": {k: tuple(v.shape) for k, v in UNet2DConditionModel(**unet_cfg).state_dict().items()},
            "vae": {k: tuple(v.shape) for k, v in AutoencoderKL(**vae_cfg).state_dict().items()},
            "text_encoder": {k.removeprefix("text_model."): tuple(v.shape)
                             for k, v in CLIPTextModel(text_cfg).state_dict().items()
                             if not k.endswith("position_ids")},
        }

    name = f"sd15-full-{args.in_channels}ch"

    def weights(component):
        # One tensor at a time in float32, kept as float16: ~2 GB in all.
        return {k: tiny.random_tensor(name, component, k, shape).half() for k, shape in shapes[component].items()}

    state = {}
    state.update(tiny.unet_to_ldm(weights("unet")))
    state.update(tiny.vae_to_ldm(weights("vae")))
    state.update(tiny.clip_to_ldm(weights("text_encoder")))
    state["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77).unsqueeze(0)
    state.update(tiny.ddpm_buffers())
    state = {k: v.contiguous() for k, v in state.items()}
    save_file(state, args.out, metadata={"format": "pt"})
    params = sum(v.numel() for k, v in state.items() if v.dtype == torch.float16)
    print(f"wrote {args.out}: {params / 1e6:.0f}M parameters, {os.path.getsize(args.out) / 1e9:.2f} GB", file=sys.stderr)


if __name__ == "__main__":
    main()
