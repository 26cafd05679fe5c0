#!/usr/bin/env python3
"""Real-ESRGAN goldens: an RRDBNet written here in PyTorch after the published architecture.

The network (ESRGAN's generator as Real-ESRGAN trains it), from the paper and the weight files'
names and shapes; the code below is our own:
  conv_first   3×3, in → F (in = 3 at ×4; 12 at ×2 and 48 at ×1, the RGB input pixel-unshuffled
               by 2 or 4 first, so every scale ends with the same two ×2 upsamplings)
  body.N       RRDB: three residual dense blocks rdb1..rdb3, out·0.2 + x
    rdbK       conv1..conv4 (3×3, to G channels each, LeakyReLU 0.2) each see x and every output
               before it concatenated on channels; conv5 (to F) sees all of them, no activation;
               out = conv5·0.2 + x
  conv_body    3×3 F → F after the last block, added to conv_first's output
  conv_up1/2   nearest ×2, 3×3 F → F, LeakyReLU 0.2 (twice)
  conv_hr      3×3 F → F, LeakyReLU 0.2; conv_last 3×3 F → 3
Real-ESRGAN's x4plus has F = 64, G = 32, 23 blocks; anime_6B 6 blocks. The tiny ones here have
F = 8, G = 4, 2 blocks, PyTorch's default initialisation from a fixed seed with every kernel
times WEIGHT_GAIN.

Fixtures (test/fixtures/tiny/esrgan/):
  tiny-x4.pth          torch.save({"params_ema": state, "params": other}): Real-ESRGAN's training
                       checkpoints keep the EMA weights (those used for inference) under
                       "params_ema"; "params" here holds different weights, so using them fails
  tiny-x4.safetensors  the same state at the top level
  tiny-x2.pth          torch.save({"params": state}) (the fallback when there is no params_ema)
  tiny-x2.safetensors  the same state at the top level
Goldens (float32, CPU): inputs torch.rand(shape, generator=manual_seed(seed)) in [0, 1] and the
network's output (not clamped; sides that are not multiples of the unshuffle factor padded by
reflection and the output cropped, as Real-ESRGAN does), in test/fixtures/goldens/esrgan/goldens.bin (float32 little
endian, concatenated) and goldens.json (cases with shapes and offsets in floats).

Usage (from the repository root):
    /work/pyenv/bin/python tools/goldens/make_esrgan_goldens.py
"""

import json
import os

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TINY_DIR = os.path.join(REPO_ROOT, "test", "fixtures", "tiny", "esrgan")
OUT_DIR = os.path.join(REPO_ROOT, "test", "fixtures", "goldens", "esrgan")

FEATURES, GROWTH, BLOCKS = 8, 4, 2
WEIGHT_GAIN = 2.0
# (name, scale, weight seed, input cases as (shape, seed))
MODELS = [
    ("tiny-x4", 4, 1, [((1, 3, 16, 20), 11), ((1, 3, 7, 5), 12)]),
    ("tiny-x2", 2, 2, [((1, 3, 16, 20), 21), ((1, 3, 6, 10), 22), ((1, 3, 9, 7), 23)]),
]


def conv(cin, cout):
    return nn.Conv2d(cin, cout, 3, 1, 1)


class DenseBlock(nn.Module):
    def __init__(self, f, g):
        super().__init__()
        for i in range(1, 5):
            setattr(self, f"conv{i}", conv(f + (i - 1) * g, g))
        self.conv5 = conv(f + 4 * g, f)

    def forward(self, x):
        features = [x]
        for i in range(1, 5):
            features.append(F.leaky_relu(getattr(self, f"conv{i}")(torch.cat(features, 1)), 0.2))
        return self.conv5(torch.cat(features, 1)) * 0.2 + x


class Rrdb(nn.Module):
    def __init__(self, f, g):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = DenseBlock(f, g), DenseBlock(f, g), DenseBlock(f, g)

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RrdbNet(nn.Module):
    def __init__(self, scale, f=FEATURES, g=GROWTH, blocks=BLOCKS):
        super().__init__()
        self.unshuffle = {4: 1, 2: 2, 1: 4}[scale]
        self.conv_first = conv(3 * self.unshuffle ** 2, f)
        self.body = nn.Sequential(*[Rrdb(f, g) for _ in range(blocks)])
        self.conv_body = conv(f, f)
        self.conv_up1, self.conv_up2, self.conv_hr = conv(f, f), conv(f, f), conv(f, f)
        self.conv_last = conv(f, 3)

    def forward(self, x):
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


def run_padded(net, x):
    # Sides that are not multiples of the unshuffle factor: padded on the right and bottom by
    # reflection to the next multiple, run, and the output cropped back (Real-ESRGAN's mod_pad).
    m = net.unshuffle
    h, w = x.shape[2], x.shape[3]
    pad_h, pad_w = (-h) % m, (-w) % m
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    scale = 4 // m
    return net(x)[:, :, : h * scale, : w * scale]


def scaled(net):
    # PyTorch's default initialisation shrinks activations layer after layer (the output would be
    # nearly constant); larger kernels keep every layer's contribution visible in the output.
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.mul_(WEIGHT_GAIN)
    return net


class Writer:
    def __init__(self):
        self.chunks, self.offset = [], 0

    def tensor(self, t):
        a = t.detach().to(torch.float32).contiguous().numpy()
        self.chunks.append(a.reshape(-1).astype("<f4"))
        entry = {"shape": list(a.shape), "offset": self.offset}
        self.offset += a.size
        return entry


def main():
    torch.set_grad_enabled(False)
    os.makedirs(TINY_DIR, exist_ok=True)
    os.makedirs(OUT_DIR, exist_ok=True)
    writer = Writer()
    models = []
    for name, scale, seed, cases in MODELS:
        torch.manual_seed(seed)
        net = scaled(RrdbNet(scale).eval())
        state = {k: v.contiguous() for k, v in net.state_dict().items()}
        save_file(state, os.path.join(TINY_DIR, name + ".safetensors"))
        if scale == 4:
            torch.manual_seed(seed + 100)
            other = {k: v.contiguous() for k, v in scaled(RrdbNet(scale)).state_dict().items()}
            torch.save({"params_ema": state, "params": other}, os.path.join(TINY_DIR, name + ".pth"))
        else:
            torch.save({"params": state}, os.path.join(TINY_DIR, name + ".pth"))
        entries = []
        for shape, input_seed in cases:
            x = torch.rand(shape, generator=torch.Generator().manual_seed(input_seed), dtype=torch.float32)
            y = run_padded(net, x)
            entries.append({"seed": input_seed, "input": writer.tensor(x), "output": writer.tensor(y)})
            print(name, list(shape), "→", list(y.shape), f"max|y| {y.abs().max().item():.4g} std {y.std().item():.4g}")
        models.append({"name": name, "scale": scale, "features": FEATURES, "growth": GROWTH, "blocks": BLOCKS,
                       "stateDict": {"pth": "params_ema" if scale == 4 else "params", "safetensors": ""},
                       "cases": entries})
    np.concatenate(writer.chunks).tofile(os.path.join(OUT_DIR, "goldens.bin"))
    with open(os.path.join(OUT_DIR, "goldens.json"), "w") as f:
        json.dump({"generator": "tools/goldens/make_esrgan_goldens.py", "versions": {"torch": torch.__version__},
                   "dtype": "float32", "models": models}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
