#!/usr/bin/env python3
"""Generate goldens for randn / TorchGenerator (lib/rng.ts, native/core/sched/rng_torch.h).

Reference: torch.randn(shape, generator=torch.Generator().manual_seed(seed)) on the CPU, float32.

torch picks its float32 normal kernel by CPU capability: on x86-64 with AVX2 or AVX-512 it runs
its AVX2 kernel (our kernel "avx2", the default); with ATEN_CPU_CAPABILITY=default it runs its
portable kernel (our kernel "scalar"). The "scalar" cases are drawn in a child process started
with ATEN_CPU_CAPABILITY=default. The script checks that this machine's torch really uses the
AVX2 kernel by default (its capability must be AVX2 or AVX512).

For each case the file holds the SHA-256 of the float32 little-endian bytes of the whole draw
(so the test compares every bit), its first and last 64 values (base64 float32, to show where a
mismatch is), and for small draws and for seed 42 x [1, 4, 64, 64] all the values.

Usage (from the repository root, with the environment of tools/README.md):
    /work/pyenv/bin/python tools/goldens/make_rng_goldens.py
"""

import base64
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "rng", "randn_golden.json")

SEEDS = [0, 1, 42, 2**32 - 1, 2**32, 2**63 + 5]
SHAPES = [[1, 4, 64, 64], [2, 4, 8, 12], [3], [15], [16], [17], [1]]
# Successive draws from one generator: diffusers' latents then noise; and small draws that
# use the normal torch keeps between draws of fewer than 16 values.
SEQUENCES = [
    {"seed": 42, "shapes": [[2, 4, 8, 8], [5], [1, 4, 8, 8]]},
    {"seed": 1234, "shapes": [[3], [1], [20], [2], [7], [4, 4], [1]]},
    {"seed": 2**32 + 7, "shapes": [[1], [16], [1], [33], [15]]},
]
SCALAR_SEEDS = [0, 42, 2**32 - 1]
SCALAR_SHAPES = [[1, 4, 64, 64], [2, 4, 8, 12], [17], [3]]
FULL_LIMIT = 64  # store every value of draws up to this size
EDGE = 64


def describe(values: np.ndarray, full: bool) -> dict:
    data = values.astype("<f4", copy=False).tobytes()
    case = {
        "size": int(values.size),
        "sha256": hashlib.sha256(data).hexdigest(),
        "head": base64.b64encode(values[:EDGE].astype("<f4").tobytes()).decode(),
        "tail": base64.b64encode(values[-EDGE:].astype("<f4").tobytes()).decode(),
    }
    if full or values.size <= FULL_LIMIT:
        case["values"] = base64.b64encode(data).decode()
    return case


def draw(seed: int, shape: list) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float32).numpy().reshape(-1)


def scalar_cases() -> list:
    """The 'scalar' cases, computed here when ATEN_CPU_CAPABILITY=default is in force."""
    assert torch.backends.cpu.get_cpu_capability() == "DEFAULT", torch.backends.cpu.get_cpu_capability()
    return [
        {"seed": str(seed), "shape": shape, "kernel": "scalar", **describe(draw(seed, shape), False)}
        for seed in SCALAR_SEEDS
        for shape in SCALAR_SHAPES
    ]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--scalar-child":
        json.dump(scalar_cases(), sys.stdout)
        return

    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in ("AVX2", "AVX512"):
        sys.exit(f"torch's CPU capability here is {capability}; the avx2 goldens need AVX2 or AVX512")

    cases = []
    for seed in SEEDS:
        for shape in SHAPES:
            full = seed == 42 and shape == [1, 4, 64, 64]
            cases.append({"seed": str(seed), "shape": shape, "kernel": "avx2", **describe(draw(seed, shape), full)})

    sequences = []
    for seq in SEQUENCES:
        g = torch.Generator().manual_seed(seq["seed"])
        draws = []
        for shape in seq["shapes"]:
            values = torch.randn(shape, generator=g, dtype=torch.float32).numpy().reshape(-1)
            draws.append({"shape": shape, **describe(values, False)})
        sequences.append({"seed": str(seq["seed"]), "kernel": "avx2", "draws": draws})

    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    child = subprocess.run(
        [sys.executable, __file__, "--scalar-child"], env=env, check=True, capture_output=True, text=True
    )
    cases.extend(json.loads(child.stdout))

    golden = {
        "generator": "make_rng_goldens.py",
        "torch_version": torch.__version__,
        "torch_cpu_capability": capability,
        "note": "sha256 over the float32 little-endian bytes of the whole draw; head/tail/values base64 float32",
        "cases": cases,
        "sequences": sequences,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.normpath(OUT)}: {len(cases)} cases, {len(sequences)} sequences")


if __name__ == "__main__":
    main()
