"""VAE tiling goldens: diffusers' AutoencoderKL with enable_tiling() (float32, CPU) on the tiny
SD1 fixture, with the tile size made small enough that a small image needs several tiles.

diffusers tiles by `tile_sample_min_size` (image pixels, default the VAE's sample_size) and
`tile_latent_min_size` (= that / 8) with `tile_overlap_factor` 0.25; here both sizes are set to
TILE / TILE÷8 so that the tests can pass the same `tileSize` to our VAE. Cases:
  decode: latents (torch.randn, seed) → vae.decode(latents).sample       (tiled_decode)
  encode: image (torch.rand·2−1, seed) → vae.encode(image).latent_dist.parameters (_tiled_encode)

Run: PYTHONPATH=/work/refs/diffusers/src /work/pyenv/bin/python tools/goldens/make_vae_tiling_goldens.py
Writes test/fixtures/goldens/vae-tiling/sd1-diffusers.bin (little-endian float32 arrays, back to
back) and index.json in the layout of make_vae_goldens.py, plus each case's tileSize.
"""

import json
import os

import numpy as np
import torch

from diffusers import AutoencoderKL

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
TINY = os.path.join(ROOT, "test", "fixtures", "tiny")
OUT = os.path.join(ROOT, "test", "fixtures", "goldens", "vae-tiling")
MODEL = "sd1-diffusers"

# (op, input shape, seed, tile size in pixels)
CASES = [
    ("decode", (1, 4, 10, 14), 21, 64),
    ("decode", (2, 4, 12, 9), 22, 32),
    ("encode", (1, 3, 96, 128), 23, 64),
    ("encode", (2, 3, 72, 96), 24, 32),
]


def main():
    torch.set_grad_enabled(False)
    os.makedirs(OUT, exist_ok=True)
    index = {"format": "float32 little-endian; offsets and sizes in floats", "cases": []}
    vae = AutoencoderKL.from_pretrained(os.path.join(TINY, MODEL, "vae"), torch_dtype=torch.float32).eval()
    vae.enable_tiling()
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    arrays = []
    offset = 0

    def put(t):
        nonlocal offset
        a = t.detach().to(torch.float32).contiguous().numpy().astype("<f4")
        arrays.append(a.ravel())
        entry = {"offset": offset, "shape": list(a.shape)}
        offset += a.size
        return entry

    for op, shape, seed, tile in CASES:
        vae.tile_sample_min_size = tile
        vae.tile_latent_min_size = tile // factor
        g = torch.Generator().manual_seed(seed)
        if op == "decode":
            x = torch.randn(shape, generator=g, dtype=torch.float32)
            y = vae.decode(x).sample
        else:
            x = torch.rand(shape, generator=g, dtype=torch.float32) * 2 - 1
            y = vae.encode(x).latent_dist.parameters
        index["cases"].append({"model": MODEL, "op": op, "seed": seed, "tileSize": tile, "file": f"{MODEL}.bin",
                               "input": put(x), "output": put(y)})
        print(f"{op} {list(shape)} tile {tile} → {list(y.shape)}  max|y| {y.abs().max().item():.4g}")
    np.concatenate(arrays).tofile(os.path.join(OUT, f"{MODEL}.bin"))
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
