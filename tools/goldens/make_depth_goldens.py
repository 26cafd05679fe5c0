#!/usr/bin/env python3
"""Depth estimator goldens: transformers' DPTForDepthEstimation (DPT-Hybrid, MiDaS 3.0) on tiny
random weights, alone and inside diffusers' StableDiffusionDepth2ImgPipeline.

References (imported, never copied): transformers' DPTForDepthEstimation with is_hybrid=True (a
BiT backbone: weight-standardised convolutions, GroupNorm, "same" padding; the ViT on its
1/16 feature map; reassembly, fusion and the depth head), transformers' DPT image processor (the
PIL backend, as torchvision is not installed: resize to size×size with PIL's bicubic, 1/255,
mean and std 0.5), and diffusers' StableDiffusionDepth2ImgPipeline (prepare_depth_map: feature
extractor → DPT → bicubic to the latent size → per-image min-max to [-1, 1]).

The tiny DPT keeps the hybrid's structure with small sizes: BiT stem 32 channels, three stages
of 1, 2, 1 bottlenecks at 128 channels (32 in the middle, so that GroupNorm's 32 groups, which
MiDaS's files do not record, stay as in the real model), ViT 128 wide with 2 heads of 64 (the
real model's head width, which MiDaS's files do not record either), 3 layers, 64 px input (a
4×4 grid of 16 px), neck 128, 128, 64, 64, fusion 16. The ViT layers tapped for the neck are
backbone_out_indices[2:] = 1, 2: MiDaS taps blocks 8 and 11 of 12, i.e. ⌊3L/4⌋ − 1 and L − 1,
which a reader of MiDaS's files (no config) must assume. Weights: transformers' initialisation
from a fixed seed, then biases, norms and embeddings redrawn so that none is trivial.

Fixtures:
  test/fixtures/tiny/depth-estimator/depth_estimator/       config.json + model.safetensors
      (transformers' names), and feature_extractor/preprocessor_config.json: the parts of a
      diffusers depth folder, usable alone as `depthEstimator`
  test/fixtures/tiny/sd2-depth-diffusers/                   the tiny SD 2 depth model
      (make_tiny_models.py's sd2-depth, same seed) as a diffusers folder with those two parts
  test/fixtures/tiny/sd2-depth-midas-ldm.safetensors        the same model as the original
      512-depth-ema single file: sd2-depth-ldm.safetensors' tensors with the estimator under
      depth_model.model.* in MiDaS's names (key map: midas_names() below, derived from MiDaS's
      public vit.py / dpt_depth.py / blocks.py and timm's ResNetV2 and ViT); its two stray
      depth_model tensors are left out. sd2-depth-ldm.safetensors itself stays a depth model
      without an estimator.
Goldens (test/fixtures/goldens/depth/): goldens.bin (float32 little endian) + goldens.json
  network:  source.png (96×80 pattern) → pixel_values [1, 3, 64, 64] → predicted_depth [1, 64, 64]
  depth2img: StableDiffusionDepth2ImgPipeline on sd2-depth-diffusers with that estimator, image
            image.png (128×128, PIL), no depth map, prompt "a painting of a flooble", negative
            "blurry", PNDM and DDIM, 5 steps, strength 0.8, guidance 7.5, seed 42, batch 1 and 2:
            the depth map the pipeline made (prepare_depth_map's output) and the final latents
            (output_type="latent")

Usage (from the repository root, with the environment of tools/README.md):
    PYTHONPATH=/work/refs/diffusers/src /work/pyenv/bin/python tools/goldens/make_depth_goldens.py
"""

import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TINY = os.path.join(REPO_ROOT, "test", "fixtures", "tiny")
ESTIMATOR_DIR = os.path.join(TINY, "depth-estimator")
DIFFUSERS_DIR = os.path.join(TINY, "sd2-depth-diffusers")
LDM_WITHOUT = os.path.join(TINY, "sd2-depth-ldm.safetensors")
LDM_WITH = os.path.join(TINY, "sd2-depth-midas-ldm.safetensors")
OUT_DIR = os.path.join(REPO_ROOT, "test", "fixtures", "goldens", "depth")

sys.path.insert(0, HERE)
import make_image_pipeline_goldens as images  # noqa: E402
import make_pipeline_goldens as txt  # noqa: E402
import make_tiny_models as tiny  # noqa: E402

IMAGE_SIZE = 64
LAYERS = 3
BACKBONE = dict(global_padding="same", layer_type="bottleneck", depths=[1, 2, 1], hidden_sizes=[128, 128, 128],
                embedding_size=32, out_features=["stage1", "stage2", "stage3"], embedding_dynamic_padding=True,
                num_groups=32)
TAPS = [(3 * LAYERS) // 4 - 1, LAYERS - 1]
DPT = dict(is_hybrid=True, hidden_size=128, num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=128,
           image_size=IMAGE_SIZE, patch_size=16, backbone_out_indices=[0, 1] + TAPS,
           neck_hidden_sizes=[128, 128, 64, 64], fusion_hidden_size=16, reassemble_factors=[4, 2, 1, 0.5],
           readout_type="project", backbone_featmap_shape=[1, 128, IMAGE_SIZE // 16, IMAGE_SIZE // 16])

PROMPT = txt.PROMPT
NEGATIVE = txt.NEGATIVE
STEPS = 5
STRENGTH = 0.8
GUIDANCE = 7.5
SEED = 42
CASES = [("pndm", 1), ("ddim", 1), ("ddim", 2)]


def make_dpt():
    from transformers import DPTConfig, DPTForDepthEstimation
    torch.manual_seed(4321)
    model = DPTForDepthEstimation(DPTConfig(backbone_config=dict(BACKBONE), **DPT)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2 and "embeddings" not in name.split(".")[-1]:
                # transformers draws with std 0.02, which flattens a deep network's output to its
                # last bias; 1/sqrt(fan in) keeps every layer's contribution visible.
                p.normal_(0.0, 1.0 / np.sqrt(p[0].numel()))
            if name.endswith(".bias"):
                p.uniform_(-0.1, 0.1)
            elif "norm" in name and name.endswith(".weight"):
                p.uniform_(0.7, 1.3)
            elif name.endswith("cls_token") or name.endswith("position_embeddings"):
                p.normal_(0.0, 0.5)
        # The last ReLU of the head clips at 0; a positive last bias keeps most of the map alive.
        model.head.head[4].bias.fill_(0.5)
    return model


def make_processor():
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil
    return DPTImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})


def midas_names(state, prefix="depth_model.model."):
    """transformers' DPT-Hybrid state dict → MiDaS's (timm ResNetV2 + ViT, act_postprocess, scratch)."""
    out = {}
    model = prefix + "pretrained.model."
    for name, value in state.items():
        value = value.detach().contiguous().clone()
        n = name
        if n.startswith("dpt.embeddings.backbone.bit."):
            n = n[len("dpt.embeddings.backbone.bit."):]
            n = n.replace("embedder.convolution.", "stem.conv.").replace("embedder.norm.", "stem.norm.")
            n = n.replace("encoder.stages.", "stages.").replace(".layers.", ".blocks.")
            out[model + "patch_embed.backbone." + n] = value
        elif n.startswith("dpt.embeddings."):
            n = n[len("dpt.embeddings."):]
            n = {"cls_token": "cls_token", "position_embeddings": "pos_embed"}.get(n, n.replace("projection.", "patch_embed.proj."))
            out[model + n] = value
        elif n.startswith("dpt.encoder.layer."):
            layer, rest = n[len("dpt.encoder.layer."):].split(".", 1)
            block = f"{model}blocks.{layer}."
            if rest.startswith("attention.attention."):
                continue  # fused below
            rest = (rest.replace("layernorm_before.", "norm1.").replace("layernorm_after.", "norm2.")
                    .replace("attention.output.dense.", "attn.proj.").replace("intermediate.dense.", "mlp.fc1.")
                    .replace("output.dense.", "mlp.fc2."))
            out[block + rest] = value
        elif n.startswith("dpt.layernorm."):
            out[model + "norm." + n[len("dpt.layernorm."):]] = value
        elif n.startswith("neck.reassemble_stage.readout_projects."):
            i, rest = n[len("neck.reassemble_stage.readout_projects."):].split(".", 1)
            out[f"{prefix}pretrained.act_postprocess{int(i) + 1}.0.project.{rest}"] = value
        elif n.startswith("neck.reassemble_stage.layers."):
            i, rest = n[len("neck.reassemble_stage.layers."):].split(".", 1)
            rest = rest.replace("projection.", "3.").replace("resize.", "4.")
            out[f"{prefix}pretrained.act_postprocess{int(i) + 1}.{rest}"] = value
        elif n.startswith("neck.convs."):
            i, rest = n[len("neck.convs."):].split(".", 1)
            out[f"{prefix}scratch.layer{int(i) + 1}_rn.{rest}"] = value
        elif n.startswith("neck.fusion_stage.layers."):
            i, rest = n[len("neck.fusion_stage.layers."):].split(".", 1)
            rest = (rest.replace("projection.", "out_conv.").replace("residual_layer1.", "resConfUnit1.")
                    .replace("residual_layer2.", "resConfUnit2.").replace("convolution", "conv"))
            out[f"{prefix}scratch.refinenet{4 - int(i)}.{rest}"] = value
        elif n.startswith("head.head."):
            out[prefix + "scratch.output_conv." + n[len("head.head."):]] = value
        else:
            raise AssertionError("no MiDaS name for " + name)
    for layer in range(LAYERS):
        parts = [f"dpt.encoder.layer.{layer}.attention.attention.{p}" for p in ("query", "key", "value")]
        for kind in ("weight", "bias"):
            out[f"{model}blocks.{layer}.attn.qkv.{kind}"] = torch.cat([state[f"{p}.{kind}"] for p in parts]).contiguous()
    # timm's ViT keeps its ImageNet classifier; MiDaS never uses it.
    hidden = DPT["hidden_size"]
    out[model + "head.weight"] = torch.zeros(10, hidden)
    out[model + "head.bias"] = torch.zeros(10)
    return out


def test_image(width, height, seed):
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    freq = rng.uniform(1.0, 3.0, size=(3, 2))
    channels = [0.5 + 0.4 * np.sin(2 * np.pi * (freq[c, 0] * x / width + freq[c, 1] * y / height) + phase[c]) for c in range(3)]
    image = np.stack(channels, axis=-1) * 255 + rng.normal(0, 5, size=(height, width, 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def write_estimator(model, processor, folder):
    os.makedirs(os.path.join(folder, "depth_estimator"))
    os.makedirs(os.path.join(folder, "feature_extractor"))
    model.config.save_pretrained(os.path.join(folder, "depth_estimator"))
    save_file({k: v.detach().contiguous().clone() for k, v in model.state_dict().items()},
              os.path.join(folder, "depth_estimator", "model.safetensors"), metadata={"format": "pt"})
    processor.save_pretrained(os.path.join(folder, "feature_extractor"))
    # diffusers' depth folders were written by DPTFeatureExtractor: name the class they name.
    path = os.path.join(folder, "feature_extractor", "preprocessor_config.json")
    with open(path) as f:
        config = json.load(f)
    config["image_processor_type"] = "DPTImageProcessor"
    tiny.write_json(path, config)


def write_fixtures(model, processor):
    for path in (ESTIMATOR_DIR, DIFFUSERS_DIR):
        shutil.rmtree(path, ignore_errors=True)
    write_estimator(model, processor, ESTIMATOR_DIR)
    m = tiny.TinyModel("sd2-depth", tiny.PIPELINES["sd2-depth"][4])
    tiny.write_diffusers(m, "sd2-depth", DIFFUSERS_DIR)
    for part in ("depth_estimator", "feature_extractor"):
        shutil.copytree(os.path.join(ESTIMATOR_DIR, part), os.path.join(DIFFUSERS_DIR, part))
    state = {k: v for k, v in load_file(LDM_WITHOUT).items() if not k.startswith("depth_model.")}
    state.update(midas_names(model.state_dict()))
    save_file(state, LDM_WITH)
    os.chmod(LDM_WITH, 0o644)


def update_manifest():
    """The two depth models with an estimator join manifest.json as make_tiny_models.py records
    its fixtures (what detection must find, the files and their hashes)."""
    path = os.path.join(TINY, "manifest.json")
    with open(path) as f:
        manifest = json.load(f)
    base = manifest["fixtures"]["sd2-depth-ldm.safetensors"]
    for name, layout in (("sd2-depth-diffusers", "diffusers"), ("sd2-depth-midas-ldm.safetensors", "ldm")):
        entry = {k: v for k, v in base.items() if k != "files"}
        entry["layout"] = layout
        entry["depth_estimator"] = "tools/goldens/make_depth_goldens.py (DPT-Hybrid, tiny)"
        entry["files"] = {rel: tiny.sha256(os.path.join(TINY, rel)) for rel in tiny.file_list(TINY, os.path.join(TINY, name))}
        manifest["fixtures"][name] = entry
    manifest["fixtures"] = dict(sorted(manifest["fixtures"].items()))
    tiny.write_json(path, manifest)


def reload_matches(model):
    """transformers reads the folder back to the same weights."""
    from transformers import DPTForDepthEstimation
    loaded = DPTForDepthEstimation.from_pretrained(os.path.join(ESTIMATOR_DIR, "depth_estimator")).eval()
    expected, got = model.state_dict(), loaded.state_dict()
    assert set(got) == set(expected)
    for k in expected:
        assert torch.equal(got[k], expected[k]), k


def main():
    import diffusers
    import transformers
    from diffusers import StableDiffusionDepth2ImgPipeline
    model = make_dpt()
    processor = make_processor()
    write_fixtures(model, processor)
    update_manifest()
    reload_matches(model)
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    os.makedirs(OUT_DIR)
    writer = txt.Writer()

    source = test_image(96, 80, 7)
    Image.fromarray(source).save(os.path.join(OUT_DIR, "source.png"))
    resized = processor(Image.fromarray(source), do_rescale=False, do_normalize=False, return_tensors="np").pixel_values[0]
    assert np.all(resized == np.rint(resized)), "the resize should stay on 8-bit values"
    pixel_values = processor(Image.fromarray(source), return_tensors="pt").pixel_values
    with torch.no_grad():
        depth = model(pixel_values).predicted_depth
    network = {"source": "source.png", "pixelValues": writer.tensor(pixel_values), "predictedDepth": writer.tensor(depth)}
    print("network", list(depth.shape), float(depth.min()), float(depth.max()), float((depth > 0).float().mean()))

    image = test_image(images.SIZE, images.SIZE, 11)
    Image.fromarray(image).save(os.path.join(OUT_DIR, "image.png"))
    cases = []
    with tempfile.TemporaryDirectory() as workdir:
        pipe, config = images.build(DIFFUSERS_DIR, StableDiffusionDepth2ImgPipeline, workdir)
        pipe.register_modules(depth_estimator=model, feature_extractor=processor)
        made = {}
        original = pipe.prepare_depth_map

        def recording(*args, **kwargs):
            out = original(*args, **kwargs)
            made["depth"] = out
            return out

        pipe.prepare_depth_map = recording
        for scheduler, batch in CASES:
            pipe.scheduler = images.scheduler_for(scheduler, config)
            with torch.no_grad():
                latents = pipe(prompt=PROMPT, negative_prompt=NEGATIVE, image=Image.fromarray(image),
                               num_inference_steps=STEPS, guidance_scale=GUIDANCE, strength=STRENGTH,
                               generator=torch.Generator().manual_seed(SEED), num_images_per_prompt=batch,
                               output_type="latent").images
            depth_map = made["depth"][:1]  # the pipeline's map (repeated per image and for guidance)
            cases.append({"name": f"depth2img/{scheduler}/b{batch}", "scheduler": scheduler, "batchSize": batch,
                          "depthMap": writer.tensor(depth_map), "latents": writer.tensor(latents)})
            print(cases[-1]["name"], list(latents.shape), float(latents.abs().max()))

    np.concatenate(writer.chunks).tofile(os.path.join(OUT_DIR, "goldens.bin"))
    with open(os.path.join(OUT_DIR, "goldens.json"), "w") as f:
        json.dump({"generator": "tools/goldens/make_depth_goldens.py",
                   "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                                "transformers": transformers.__version__},
                   "dtype": "float32", "imageSize": IMAGE_SIZE, "network": network,
                   "depth2img": {"image": "image.png", "prompt": PROMPT, "negativePrompt": NEGATIVE, "steps": STEPS,
                                 "strength": STRENGTH, "guidanceScale": GUIDANCE, "seed": SEED, "cases": cases}},
                  f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
