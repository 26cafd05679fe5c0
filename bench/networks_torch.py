#!/usr/bin/env python3
"""The PyTorch side of bench/networks.ts: the same files (tools/make_full_size_networks.py), the
same inputs' shapes, timed in one process after a first call.

    PYTHONPATH=/work/refs/diffusers/src /work/pyenv/bin/python bench/networks_torch.py taesd|esrgan|dpt PATH \
        [--size N] [--threads 2] [--runs 2]

taesd: diffusers' AutoencoderTiny.decode of [1, 4, N/8, N/8] (default N 512); esrgan: RRDBNet x4plus
(the golden generator's PyTorch module) on a whole N×N image, as Real-ESRGAN's default `--tile 0`
runs it (default 512); dpt: transformers' DPTForDepthEstimation on [1, 3, N, N] pixel values
(default 384). Prints one JSON line.
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools", "goldens"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("network", choices=["taesd", "esrgan", "dpt"])
    parser.add_argument("path")
    parser.add_argument("--size", type=int)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    size = args.size or (384 if args.network == "dpt" else 512)
    generator = torch.Generator().manual_seed(0)
    if args.network == "taesd":
        from diffusers import AutoencoderTiny
        vae = AutoencoderTiny.from_pretrained(args.path).eval()
        latents = torch.randn(1, 4, size // 8, size // 8, generator=generator)
        call = lambda: vae.decode(latents).sample  # noqa: E731
    elif args.network == "esrgan":
        import make_esrgan_goldens as esrgan
        from safetensors.torch import load_file
        net = esrgan.RrdbNet(4, f=64, g=32, blocks=23).eval()
        net.load_state_dict(load_file(args.path))
        image = torch.rand(1, 3, size, size, generator=generator)
        call = lambda: net(image)  # noqa: E731
    else:
        from transformers import DPTForDepthEstimation
        model = DPTForDepthEstimation.from_pretrained(args.path).eval()
        pixels = torch.rand(1, 3, size, size, generator=generator) * 2 - 1
        call = lambda: model(pixel_values=pixels).predicted_depth  # noqa: E731
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    print(json.dumps({"engine": f"PyTorch {torch.__version__}", "network": args.network, "size": size,
                      "threads": args.threads, "firstSeconds": first, "seconds": times,
                      "median": statistics.median(times)}))


if __name__ == "__main__":
    main()
