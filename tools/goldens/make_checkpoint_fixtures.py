#!/usr/bin/env python3
"""Write the tiny PyTorch checkpoint fixtures of test/model-files.test.ts.

Every file is made by torch.save itself (the real zip layout, pickle protocol 2), and the values
the tests expect are taken from the tensors torch saved, into checkpoints.json beside them:

  state_dict.ckpt          a training checkpoint: weights (f32, f16, a bias of 1 dimension, an
                           nn.Parameter, an int64 position_ids, two views sharing one storage at
                           different offsets, a nested dict) under "state_dict", plus
                           global_step / epoch / a version string at the top level
  plain_state_dict.pt      a bare state dict (OrderedDict with _metadata, as Module.state_dict()
                           returns it) holding bf16 and bool tensors (bool is skipped on read)
  non_contiguous.ckpt      a transposed tensor: rejected (only contiguous tensors are read)
  malicious_os_system.ckpt a pickle whose __reduce__ calls os.system (posix.system on Linux)
  malicious_eval.ckpt      a pickle whose __reduce__ calls builtins.eval, hidden inside the
                           state dict after a valid tensor

Loading the malicious files with torch.load(weights_only=False) would run their commands (both
harmless echoes); our reader must refuse them without running anything.

Usage (from the repository root):
    /work/pyenv/bin/python tools/goldens/make_checkpoint_fixtures.py
"""

import builtins
import collections
import json
import os
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parents[2] / "test" / "fixtures" / "model-files"


class CallsOsSystem:
    def __reduce__(self):
        return (os.system, ("echo sdnode-unsafe-pickle-fixture",))


class CallsEval:
    def __reduce__(self):
        return (builtins.eval, ("print('sdnode-unsafe-pickle-fixture')",))


def describe(tensors):
    """name → {dtype, shape, values} for every tensor the reader should return."""
    out = {}
    for name, t in tensors.items():
        out[name] = {
            "dtype": str(t.dtype).replace("torch.", ""),
            "shape": list(t.shape),
            # float64 holds every f32/f16/bf16/int64 value here exactly, and so does JSON.
            "values": t.detach().to(torch.float64).flatten().tolist(),
        }
    return out


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(20240611)
    expected = {}

    shared = torch.arange(10, dtype=torch.float32) * 0.25 - 1.0
    weights = collections.OrderedDict()
    weights["model.conv.weight"] = torch.randn(4, 3, 3, 3)
    weights["model.conv.bias"] = torch.randn(4)
    weights["model.proj.weight"] = torch.randn(8, 5).half()
    weights["model.scale"] = torch.nn.Parameter(torch.tensor([1.5, -2.25]))
    weights["cond_stage_model.position_ids"] = torch.arange(7, dtype=torch.int64).unsqueeze(0)
    weights["model.low"] = shared[:4]
    weights["model.high"] = shared[6:]
    nested = {"inner.weight": torch.randn(2, 2)}
    torch.save(
        {
            "state_dict": {**weights, "extra": nested},
            "global_step": 123456,
            "epoch": 7,
            "pytorch-lightning_version": "1.4.2",
        },
        OUT / "state_dict.ckpt",
    )
    flat = dict(weights)
    flat["extra.inner.weight"] = nested["inner.weight"]
    expected["state_dict.ckpt"] = {
        "metadata": {"global_step": "123456", "epoch": "7", "pytorch-lightning_version": "1.4.2"},
        "tensors": describe(flat),
    }

    module = torch.nn.Linear(4, 3).to(torch.bfloat16)
    plain = module.state_dict()  # an OrderedDict carrying _metadata (pickled with BUILD)
    plain["mask"] = torch.tensor([True, False, True])
    torch.save(plain, OUT / "plain_state_dict.pt")
    expected["plain_state_dict.pt"] = {
        "metadata": {},
        "tensors": describe({k: v for k, v in plain.items() if v.dtype != torch.bool}),
        "skipped": ["mask"],
    }

    torch.save({"state_dict": {"transposed": torch.randn(2, 3).t()}}, OUT / "non_contiguous.ckpt")
    torch.save({"state_dict": {"weight": torch.zeros(2)}, "payload": CallsOsSystem()}, OUT / "malicious_os_system.ckpt")
    torch.save({"state_dict": {"weight": torch.zeros(2), "evil": CallsEval()}}, OUT / "malicious_eval.ckpt")

    with open(OUT / "checkpoints.json", "w") as f:
        json.dump({"torch": torch.__version__, "files": expected}, f, indent=1)
        f.write("\n")
    for path in sorted(OUT.iterdir()):
        print(f"{path.relative_to(OUT.parents[2])}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
