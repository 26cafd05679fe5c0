#!/usr/bin/env python3
"""Exports the full-size benchmark model's UNet, VAE decoder and text encoder to ONNX (fp32), for
ONNX Runtime as a reference in `npm run bench -- --onnx DIR` (bench/onnxruntime_bench.py).

The networks come from the same single-file checkpoint the Node benchmark reads, loaded exactly as
bench/diffusers_bench.py loads them for the diffusers reference (diffusers' own conversion
functions, fp32), so the three engines run the same weights. torch.onnx.export's TorchScript
exporter, opset 17, with the spatial sizes left dynamic (one UNet file serves 256² and 512²); the
UNet's 3.4 GB of weights exceed protobuf's 2 GB, so the exporter keeps them as external data beside
its model.onnx. After export each network runs once in ONNX Runtime and in PyTorch on the same random
input at 256² and the largest relative difference is printed (a wrong export shows here, not as
a suspiciously fast benchmark).

Usage (environment as in tools/README.md; onnx and onnxruntime from the pip mirror):
    PYTHONPATH=/work/refs/diffusers/src /work/pyenv/bin/python tools/export_onnx.py MODEL.safetensors OUT_DIR

Writes OUT_DIR/{unet,vae_decoder,text_encoder}/model.onnx (and the UNet's external data), about 4.1 GB;
never commit them. A dev tool: it imports torch, diffusers and onnxruntime, it copies none of them.
"""

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
import diffusers_bench  # noqa: E402  (the checkpoint loader the diffusers reference uses)


class UNetStep(torch.nn.Module):
    """The UNet as one guided step calls it: (sample, timestep, context) → noise prediction."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False)[0]


class VaeDecoder(torch.nn.Module):
    """post_quant_conv and the decoder: latents → image in [-1, 1] (no scaling factor applied)."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, latents):
        return self.vae.decode(latents, return_dict=False)[0]


class TextEncoder(torch.nn.Module):
    """Token ids → the last hidden state (what SD 1.x conditions on)."""

    def __init__(self, text):
        super().__init__()
        self.text = text

    def forward(self, input_ids):
        return self.text(input_ids, return_dict=False)[0]


def networks(unet, vae, text):
    """Per network: the wrapper, example inputs at 256², input names, dynamic axes."""
    return {
        "unet": (UNetStep(unet),
                 (torch.randn(2, 4, 32, 32), torch.tensor(999, dtype=torch.int64), torch.randn(2, 77, 768)),
                 ["sample", "timestep", "encoder_hidden_states"],
                 {"sample": {2: "height", 3: "width"}}),
        "vae_decoder": (VaeDecoder(vae), (torch.randn(1, 4, 32, 32),), ["latents"],
                        {"latents": {2: "height", 3: "width"}}),
        "text_encoder": (TextEncoder(text), (torch.tensor([diffusers_bench.PROMPT_IDS + [49407] * (77 - len(diffusers_bench.PROMPT_IDS))]),),
                         ["input_ids"], {}),
    }


def export(name, module, inputs, input_names, dynamic_axes, out_dir):
    folder = os.path.join(out_dir, name)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.onnx")
    start = time.perf_counter()
    torch.onnx.export(module, inputs, path, input_names=input_names, output_names=["output"],
                      dynamic_axes=dynamic_axes, opset_version=17, do_constant_folding=True, dynamo=False,
                      external_data=True)
    print(f"{name}: exported in {time.perf_counter() - start:.0f} s to {path}", flush=True)
    one_data_file(folder)
    return path


def one_data_file(folder):
    """The TorchScript exporter writes external data as one file per tensor (over 700 for the
    UNet); gather them into model.onnx.data."""
    import onnx

    path = os.path.join(folder, "model.onnx")
    before = set(os.listdir(folder))
    if before == {"model.onnx"}:
        return  # small enough to hold its weights inline
    model = onnx.load(path)  # reads the external data too
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx.data", size_threshold=1024)
    for name in before - {"model.onnx", "model.onnx.data"}:
        os.remove(os.path.join(folder, name))


def check(name, module, inputs, input_names, path):
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = {n: t.numpy() for n, t in zip(input_names, inputs)}
    (theirs,) = session.run(None, feeds)
    with torch.no_grad():
        ours = module(*inputs).numpy()
    error = abs(theirs - ours).max() / abs(ours).max()
    print(f"{name}: ONNX Runtime vs PyTorch at the example input, max |Δ| / max |PyTorch| = {error:.2e}", flush=True)
    if not error < 1e-4:
        raise SystemExit(f"{name}: the export differs from PyTorch by {error:.2e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("out_dir")
    parser.add_argument("--only", choices=["unet", "vae_decoder", "text_encoder"], help="export one network")
    args = parser.parse_args()

    torch.manual_seed(0)
    unet, vae, text = diffusers_bench.load(args.model)
    for name, (module, inputs, input_names, dynamic_axes) in networks(unet, vae, text).items():
        if args.only and name != args.only:
            continue
        module.eval()
        with torch.no_grad():
            path = export(name, module, inputs, input_names, dynamic_axes, args.out_dir)
        check(name, module, inputs, input_names, path)


if __name__ == "__main__":
    sys.exit(main())
