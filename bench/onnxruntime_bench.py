#!/usr/bin/env python3
"""The ONNX Runtime side of `npm run bench -- --onnx DIR`: fp32 on the CPU.

Runs the ONNX files tools/export_onnx.py wrote from the same full-size checkpoint (UNet, VAE
decoder, text encoder, fp32) with onnxruntime's CPU execution provider, `threads` intra-op
threads, one inter-op thread and every graph optimization on, and times what bench/measure.ts
times: one 77-token text encode, the first UNet call and the median of `steps` more (a batch of 2,
as a guided step is), one VAE decode, and the process's peak RSS. "load" is the creation of the
three sessions (reading the weights and optimizing the graphs). Prints one JSON line with the
same keys as bench/measure.ts.

    python bench/onnxruntime_bench.py ONNX_DIR SIZE THREADS [--steps N] [--seed S]

A dev tool: it needs onnxruntime and numpy (the pip mirror has both), never a runtime dependency.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

PROMPT_IDS = [49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407]  # as bench/diffusers_bench.py


def session(directory, name, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(os.path.join(directory, name, "model.onnx"), options, providers=["CPUExecutionProvider"])


def weight_bytes(directory):
    """The weights' size on disk (fp32 external data plus what the .onnx files hold)."""
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(directory) for f in files)


def timed(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def bench(args):
    rng = np.random.default_rng(args.seed)
    latent = args.size // 8
    result = {"weightType": "f32", "size": args.size, "threads": args.threads, "onnxruntime": ort.__version__}

    start = time.perf_counter()
    text = session(args.onnx_dir, "text_encoder", args.threads)
    unet = session(args.onnx_dir, "unet", args.threads)
    vae = session(args.onnx_dir, "vae_decoder", args.threads)
    result["loadSeconds"] = time.perf_counter() - start
    result["weightBytes"] = weight_bytes(args.onnx_dir)

    ids = np.array([PROMPT_IDS + [49407] * (77 - len(PROMPT_IDS))], dtype=np.int64)
    result["textEncodeSeconds"] = timed(lambda: text.run(None, {"input_ids": ids}))

    sample = rng.standard_normal((2, 4, latent, latent), dtype=np.float32)
    context = rng.standard_normal((2, 77, 768), dtype=np.float32)

    def step(t):
        return lambda: unet.run(None, {"sample": sample, "timestep": np.array(t, dtype=np.int64), "encoder_hidden_states": context})

    result["unetFirstStepSeconds"] = timed(step(999))
    times = [timed(step(999 - 20 * i)) for i in range(1, args.steps + 1)]
    result["unetStepSeconds"] = statistics.median(times) if times else None

    latents = rng.standard_normal((1, 4, latent, latent), dtype=np.float32)
    result["vaeDecodeSeconds"] = timed(lambda: vae.run(None, {"latents": latents}))

    result["peakRssBytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("onnx_dir")
    parser.add_argument("size", type=int)
    parser.add_argument("threads", nargs="?", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    bench(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
