#!/usr/bin/env python3
"""Writes random-weight, full-size copies of the networks beside the pipeline, for bench/networks.ts
and bench/networks_torch.py (never committed; about 600 MB in all):

  DIR/taesd/                       diffusers' AutoencoderTiny, its default (SD 1.x/2.x TAESD) config
  DIR/realesrgan-x4plus.safetensors  RRDBNet x4plus (64 features, growth 32, 23 blocks), Real-ESRGAN's names
  DIR/dpt-hybrid/                  transformers' DPTForDepthEstimation with DPT-Hybrid's (MiDaS 3.0) config

Seeded; the same files are timed by both sides of the benchmark.

    PYTHONPATH=/work/refs/diffusers/src /work/pyenv/bin/python tools/make_full_size_networks.py /tmp/networks
"""

import json
import os
import sys

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "goldens"))
import make_esrgan_goldens as esrgan  # noqa: E402

# DPT-Hybrid as published (Intel/dpt-hybrid-midas): a BiT ResNet-50 stem (3 stages) and ViT-B/16 at 384.
DPT_HYBRID = dict(is_hybrid=True, neck_hidden_sizes=[256, 512, 768, 768], backbone_out_indices=[2, 5, 8, 11])


def dpt_hybrid():
    from transformers import DPTConfig, DPTForDepthEstimation
    return DPTForDepthEstimation(DPTConfig(**DPT_HYBRID)).eval()


def taesd():
    from diffusers import AutoencoderTiny
    return AutoencoderTiny().eval()


def realesrgan_x4plus():
    return esrgan.RrdbNet(4, f=64, g=32, blocks=23).eval()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(1234)
    taesd().save_pretrained(os.path.join(out, "taesd"))
    net = realesrgan_x4plus()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, os.path.join(out, "realesrgan-x4plus.safetensors"))
    model = dpt_hybrid()
    model.save_pretrained(os.path.join(out, "dpt-hybrid"), safe_serialization=True)
    with open(os.path.join(out, "dpt-hybrid", "preprocessor_config.json"), "w") as f:
        json.dump({"image_processor_type": "DPTImageProcessor", "do_resize": True, "size": {"height": 384, "width": 384},
                   "keep_aspect_ratio": False, "ensure_multiple_of": 1, "do_rescale": True, "rescale_factor": 1 / 255,
                   "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 3}, f, indent=1)
    print("wrote", out)


if __name__ == "__main__":
    main()
