#!/usr/bin/env python3
"""Tiny random-weight Stable Diffusion models in the real file layouts, for tests.

Each model keeps the real SD 1.x / 2.x block structure at tiny widths:

  UNet  4 levels, layers_per_block 2, cross-attention transformer blocks in the first three
        levels (down) / last three (up), a mid block with one, GEGLU feed-forward, 1x1-conv
        projections (SD1) or linear ones (SD2, use_linear_projection), 4/9/5 input channels.
  VAE   4 levels, 2 resnets per encoder level (3 per decoder level), a channel change so the
        resnet shortcuts exist, mid block with one attention, 4 latent channels.
  text  CLIP text transformer with the real 49408-token vocabulary and 77 positions, so real
        token ids work: quick_gelu (SD1, CLIP ViT-L) or gelu (SD2, OpenCLIP ViT-H).

Widths are the smallest that keep that structure: GroupNorm(32) needs channels in multiples
of 32. Heads follow what a loader can infer from weights alone (see HEADS below). Every weight
is random -- norm weights and biases included, so a loader that swaps two tensors fails --
drawn from a fixed seed and rounded to float16, then saved as F16: the fixtures are exact and
the float32 goldens computed later use the same rounded values.

Models: sd1 (base), sd2 (base; one set of weights for both v-prediction and epsilon pipelines),
sd1-inpaint (UNet in_channels 9), sd2-depth (in_channels 5). Layouts:

  diffusers   a pipeline folder: model_index.json, unet/, vae/, text_encoder/ (safetensors),
              scheduler/ (SD's scheduler configs), tokenizer/ (configs only: see write_tokenizer)
  ldm         the original single-file checkpoint (model.diffusion_model.*, first_stage_model.*,
              cond_stage_model.transformer.text_model.* for SD1, cond_stage_model.model.* with
              fused attn.in_proj_weight/bias for SD2), as .safetensors or .ckpt (torch.save of
              {"state_dict": ..., "global_step": N})
  gguf        the ldm names in a GGUF file, as stable-diffusion.cpp's converter keeps them (it
              copies names unchanged unless asked to convert them; it writes no key/values)

The ldm mapping below is our own; it is verified on every run by loading the single file back
with diffusers' from_single_file (UNet, VAE) and its CLIP/OpenCLIP conversion (text encoder),
and requiring every tensor to equal the diffusers model's.

Usage (from the repository root, environment as in tools/README.md):
    PYTHONPATH=/work/refs/diffusers/src /work/pyenv/bin/python tools/goldens/make_tiny_models.py
        [--out test/fixtures/tiny] [--all]

Without --all it writes the committed fixture set (COMMITTED); --all writes every pipeline in
every layout (for golden work; not committed). Re-running reproduces the same bytes.
"""

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import zlib

import numpy as np
import torch

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUT = os.path.join(REPO_ROOT, "test", "fixtures", "tiny")

SEED = 20240915

# --------------------------------------------------------------------------
# tiny configurations
# --------------------------------------------------------------------------

UNET_CHANNELS = (32, 32, 32, 32)      # SD: (320, 640, 1280, 1280)
SD1_TEXT_LAYERS = 2                   # SD1: 12
# SD2's original file holds all 24 OpenCLIP layers and SD uses the penultimate one's output;
# diffusers' SD2 text_encoder folder stores only the 23 that are used. Tiny: 3 and 2.
SD2_TEXT_LAYERS_LDM = 3
SD2_TEXT_LAYERS_DIFFUSERS = 2
VOCAB = 49408
POSITIONS = 77

# HEADS. Files do not store head counts; a loader infers them from the family, as SD's configs
# fix them: SD1's UNet has 8 heads per attention, SD2's UNet and both text encoders use head
# dimension 64. Widths under 64 exist only in test models; for them the rule (detection in
# native/core/model/detection.cpp) takes head dimension 8. So: SD1 UNet 8 heads (head dim 4 here),
# SD2 UNet 32/8 = 4 heads, text encoders hidden/8 heads (2 for sd1, 1 for the others).
SD1_UNET_HEADS = 8


def head_dim_for(width):
    return 64 if width % 64 == 0 else 8


# SIZE. A model of this structure cannot be much smaller: the UNet alone is 1.07M parameters
# (2.1 MB in F16) at 32 channels, and the 49408-token embedding is vocab x hidden. So only sd1,
# the model tested in every layout, is "rich": a VAE with a 32->64 channel step (SD's VAE
# changes width, so its resnets have nin_shortcut) and a 2-head text encoder (hidden 16). The
# others use a 32-channel VAE and a 1-head text encoder (hidden 8, also a different context
# dimension from sd1's, so a mix-up shows).
MODELS = {
    # name: family, UNet input channels, VAE block_out_channels, text hidden size
    "sd1": ("sd1", 4, (32, 32, 32, 64), 16),
    "sd2": ("sd2", 4, (32, 32, 32, 32), 8),
    "sd1-inpaint": ("sd1", 9, (32, 32, 32, 32), 8),
    "sd2-depth": ("sd2", 5, (32, 32, 32, 32), 8),
}

# pipeline name: model, prediction type, scheduler config, pipeline class, image size
PIPELINES = {
    "sd1": ("sd1", "epsilon", "sd1", "StableDiffusionPipeline", 512),
    "sd2-v": ("sd2", "v_prediction", "sd2-v", "StableDiffusionPipeline", 768),
    "sd2-eps": ("sd2", "epsilon", "sd2-eps", "StableDiffusionPipeline", 512),
    "sd1-inpaint": ("sd1-inpaint", "epsilon", "sd1", "StableDiffusionInpaintPipeline", 512),
    "sd2-depth": ("sd2-depth", "epsilon", "sd2-eps", "StableDiffusionDepth2ImgPipeline", 512),
}

LAYOUTS = ("diffusers", "ldm.safetensors", "ldm.ckpt", "ldm.gguf")

# What is committed under test/fixtures/tiny: sd1 in the three layouts; the others in the
# layout that tests their detection. sd2-eps shares sd2-v's weight files byte for byte (git
# stores them once). The inpainting model is a .ckpt, as the original SD inpainting checkpoints
# are: a Lightning training checkpoint (global_step, EMA entries) read end to end. (sd1 as .ckpt
# too would be one more 6 MB copy of the same weights; --all writes it.)
COMMITTED = [
    ("sd1", "diffusers"), ("sd1", "ldm.safetensors"), ("sd1", "ldm.gguf"),
    ("sd2-v", "diffusers"), ("sd2-eps", "diffusers"), ("sd2-v", "ldm.safetensors"),
    ("sd1-inpaint", "ldm.ckpt"), ("sd2-depth", "ldm.safetensors"),
]

# global_step of the .ckpt files, per pipeline (SD 1.5's is 840000). diffusers, and our
# detection, read 875000 in an SD2 checkpoint as "SD 2.0-base", an epsilon model.
GLOBAL_STEP = {"sd1": 840000, "sd2-v": 140000, "sd2-eps": 875000, "sd1-inpaint": 440000, "sd2-depth": 200000}


def fixture_name(pipeline, layout):
    if layout == "diffusers":
        return f"{pipeline}-diffusers"
    return f"{pipeline}-{layout}"


# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------

def unet_config(family, in_channels, text_hidden, sample_size):
    cfg = dict(
        sample_size=sample_size // 8,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        block_out_channels=UNET_CHANNELS,
        layers_per_block=2,
        cross_attention_dim=text_hidden,
        norm_num_groups=32,
    )
    if family == "sd1":
        cfg["attention_head_dim"] = SD1_UNET_HEADS   # diffusers' name; for SD1 it is the head count
    else:
        # SD2: diffusers lists heads per level under the same (misnamed) key; head dim fixed.
        cfg["attention_head_dim"] = [c // head_dim_for(c) for c in UNET_CHANNELS]
        cfg["use_linear_projection"] = True
    return cfg


def vae_config(channels, sample_size):
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=channels,
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=sample_size,
        scaling_factor=0.18215,
    )


def text_config(family, hidden, layers):
    from transformers import CLIPTextConfig
    # bos/eos/pad ids as in SD's text_encoder/config.json files (transformers' old defaults).
    return CLIPTextConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // head_dim_for(hidden),
        max_position_embeddings=POSITIONS,
        hidden_act="quick_gelu" if family == "sd1" else "gelu",
        layer_norm_eps=1e-5,
        projection_dim=hidden,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
    )


def random_tensor(model, component, name, shape):
    """A deterministic random tensor, rounded to float16 values (kept as float32)."""
    seed = (SEED * 1000003 + zlib.crc32(f"{model}/{component}/{name}".encode())) % (2 ** 63)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tuple(shape), generator=g, dtype=torch.float32)
    if name.endswith("bias"):
        x = 0.1 * x
    elif len(shape) == 1:
        x = 1.0 + 0.2 * x                           # GroupNorm / LayerNorm weights
    else:
        fan_in = math.prod(shape[1:])
        x = x / math.sqrt(fan_in)                   # keeps activations O(1) through the net
    return x.half().float()


def randomize(module, model, component):
    state = {k: random_tensor(model, component, k, v.shape) for k, v in module.state_dict().items()
             if v.is_floating_point()}
    missing, unexpected = module.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert all(k.endswith("position_ids") for k in missing), missing
    return module


class TinyModel:
    """One set of weights: UNet, VAE and the full text encoder (all layers the ldm file keeps)."""

    def __init__(self, name, sample_size):
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel

        family, in_channels, vae_channels, text_hidden = MODELS[name]
        self.name, self.family, self.text_hidden = name, family, text_hidden
        torch.manual_seed(0)
        self.unet = randomize(UNet2DConditionModel(**unet_config(family, in_channels, text_hidden, sample_size)),
                              name, "unet").eval()
        self.vae = randomize(AutoencoderKL(**vae_config(vae_channels, sample_size)), name, "vae").eval()
        ldm_layers = SD1_TEXT_LAYERS if family == "sd1" else SD2_TEXT_LAYERS_LDM
        self.text_encoder_full = randomize(CLIPTextModel(text_config(family, text_hidden, ldm_layers)),
                                           name, "text_encoder").eval()
        self.text_layers_diffusers = SD1_TEXT_LAYERS if family == "sd1" else SD2_TEXT_LAYERS_DIFFUSERS

    def unet_state(self):
        return dict(self.unet.state_dict())

    def vae_state(self):
        return dict(self.vae.state_dict())

    def text_state(self, diffusers_folder):
        """CLIPTextModel keys without 'text_model.' (transformers >= 5.6 flattened them)."""
        keep = self.text_layers_diffusers if diffusers_folder else None
        out = {}
        for k, v in self.text_encoder_full.state_dict().items():
            k = k.removeprefix("text_model.")
            if k.endswith("position_ids"):
                continue
            if keep is not None and k.startswith("encoder.layers."):
                if int(k.split(".")[2]) >= keep:
                    continue
            out[k] = v
        return out


# --------------------------------------------------------------------------
# diffusers -> original (ldm) names, our own mapping
# --------------------------------------------------------------------------

UNET_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
               "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
UNET_FIXED = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
              "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}


def unet_name_to_ldm(name, layers_per_block=2):
    """diffusers UNet2DConditionModel key -> key under model.diffusion_model."""
    parts = name.split(".")
    for fixed, ldm in UNET_FIXED.items():
        if name.startswith(fixed + "."):
            return ldm + name[len(fixed):]
    per_level = layers_per_block + 1
    if parts[0] == "down_blocks":
        level = int(parts[1])
        if parts[2] == "resnets":
            block = 1 + level * per_level + int(parts[3])
            return f"input_blocks.{block}.0.{UNET_RESNET[parts[4]]}.{'.'.join(parts[5:])}"
        if parts[2] == "attentions":
            block = 1 + level * per_level + int(parts[3])
            return f"input_blocks.{block}.1.{'.'.join(parts[4:])}"
        if parts[2] == "downsamplers":   # down_blocks.L.downsamplers.0.conv.*
            block = 1 + level * per_level + layers_per_block
            return f"input_blocks.{block}.0.op.{'.'.join(parts[5:])}"
    if parts[0] == "mid_block":
        if parts[1] == "resnets":
            return f"middle_block.{2 * int(parts[2])}.{UNET_RESNET[parts[3]]}.{'.'.join(parts[4:])}"
        if parts[1] == "attentions":
            return f"middle_block.1.{'.'.join(parts[3:])}"
    if parts[0] == "up_blocks":
        level = int(parts[1])
        if parts[2] == "resnets":
            block = level * per_level + int(parts[3])
            return f"output_blocks.{block}.0.{UNET_RESNET[parts[4]]}.{'.'.join(parts[5:])}"
        if parts[2] == "attentions":
            block = level * per_level + int(parts[3])
            return f"output_blocks.{block}.1.{'.'.join(parts[4:])}"
        if parts[2] == "upsamplers":     # after the resnet (and the attention, if the level has one)
            block = level * per_level + layers_per_block
            return None, block, ".".join(parts[5:])
    raise KeyError(f"unmapped UNet key {name}")


def unet_to_ldm(state):
    has_attention = {int(k.split(".")[1]) for k in state if k.startswith("up_blocks.") and ".attentions." in k}
    out = {}
    for k, v in state.items():
        mapped = unet_name_to_ldm(k)
        if isinstance(mapped, tuple):
            _, block, rest = mapped
            level = int(k.split(".")[1])
            mapped = f"output_blocks.{block}.{2 if level in has_attention else 1}.conv.{rest}"
        out["model.diffusion_model." + mapped] = v
    return out


VAE_FIXED = {"conv_norm_out": "norm_out"}
VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def vae_to_ldm(state, levels=4):
    out = {}
    for k, v in state.items():
        parts = k.split(".")
        side = parts[0]                       # encoder / decoder / quant_conv / post_quant_conv
        if side in ("quant_conv", "post_quant_conv"):
            mapped = k
        elif parts[1] in ("conv_in", "conv_out"):
            mapped = k
        elif parts[1] == "conv_norm_out":
            mapped = f"{side}.norm_out.{parts[2]}"
        elif parts[1] in ("down_blocks", "up_blocks"):
            level = int(parts[2])
            ldm_level = level if side == "encoder" else levels - 1 - level   # decoder counts up from the bottom
            group = "down" if side == "encoder" else "up"
            if parts[3] == "resnets":
                layer = parts[5].replace("conv_shortcut", "nin_shortcut")
                mapped = f"{side}.{group}.{ldm_level}.block.{parts[4]}.{layer}.{parts[6]}"
            else:                             # downsamplers.0.conv / upsamplers.0.conv
                sampler = "downsample" if side == "encoder" else "upsample"
                mapped = f"{side}.{group}.{ldm_level}.{sampler}.conv.{parts[6]}"
        elif parts[1] == "mid_block":
            if parts[2] == "resnets":
                layer = parts[4].replace("conv_shortcut", "nin_shortcut")
                mapped = f"{side}.mid.block_{int(parts[3]) + 1}.{layer}.{parts[5]}"
            else:                             # attentions.0.<to_q|...>.<weight|bias>
                inner = ".".join(parts[4:-1])
                mapped = f"{side}.mid.attn_1.{VAE_ATTENTION[inner]}.{parts[-1]}"
                if parts[-1] == "weight" and inner != "group_norm":
                    v = v.reshape(*v.shape, 1, 1)    # LDM's attention projections are 1x1 convs
        else:
            raise KeyError(f"unmapped VAE key {k}")
        out["first_stage_model." + mapped] = v
    return out


def clip_to_ldm(state):
    """SD1: the transformers CLIP names under cond_stage_model.transformer.text_model."""
    return {"cond_stage_model.transformer.text_model." + k: v for k, v in state.items()}


OPENCLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc",
                  "mlp.fc2": "mlp.c_proj", "self_attn.out_proj": "attn.out_proj"}


def openclip_to_ldm(state, model, hidden):
    """SD2: OpenCLIP names under cond_stage_model.model., q/k/v fused into in_proj."""
    p = "cond_stage_model.model."
    out = {
        p + "token_embedding.weight": state["embeddings.token_embedding.weight"],
        p + "positional_embedding": state["embeddings.position_embedding.weight"],
        p + "ln_final.weight": state["final_layer_norm.weight"],
        p + "ln_final.bias": state["final_layer_norm.bias"],
    }
    layers = sorted({int(k.split(".")[2]) for k in state if k.startswith("encoder.layers.")})
    for i in layers:
        src = f"encoder.layers.{i}."
        dst = f"{p}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.in_proj_{kind}"] = torch.cat(
                [state[src + f"self_attn.{q}_proj.{kind}"] for q in ("q", "k", "v")], dim=0)
        for ours, theirs in OPENCLIP_LAYER.items():
            for kind in ("weight", "bias"):
                out[dst + f"{theirs}.{kind}"] = state[src + f"{ours}.{kind}"]
    # Present in SD2's files, unused by SD: the projection to CLIP's joint space and the
    # contrastive temperature.
    out[p + "text_projection"] = random_tensor(model, "text_encoder", "text_projection", (hidden, hidden))
    out[p + "logit_scale"] = torch.tensor(4.6052, dtype=torch.float32).half().float()
    return out


def ddpm_buffers():
    """The DDPM schedule buffers LatentDiffusion saves in every original checkpoint."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
    return {
        "betas": betas.float(),
        "alphas_cumprod": alphas_cumprod.float(),
        "alphas_cumprod_prev": prev.float(),
        "sqrt_alphas_cumprod": alphas_cumprod.sqrt().float(),
        "sqrt_one_minus_alphas_cumprod": (1 - alphas_cumprod).sqrt().float(),
        "log_one_minus_alphas_cumprod": (1 - alphas_cumprod).log().float(),
        "sqrt_recip_alphas_cumprod": (1 / alphas_cumprod).sqrt().float(),
        "sqrt_recipm1_alphas_cumprod": (1 / alphas_cumprod - 1).sqrt().float(),
    }


def ldm_state(m):
    """The original single-file state dict of a tiny model, with the extras real files carry."""
    out = {}
    out.update(unet_to_ldm(m.unet_state()))
    out.update(vae_to_ldm(m.vae_state()))
    text = m.text_state(diffusers_folder=False)
    if m.family == "sd1":
        out.update(clip_to_ldm(text))
        out["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(POSITIONS).unsqueeze(0)
    else:
        out.update(openclip_to_ldm(text, m.name, m.text_hidden))
    out.update(ddpm_buffers())
    if m.name == "sd1-inpaint":
        # Training checkpoints carry an EMA copy of the UNet (dots removed from the names);
        # a few of its tensors and its counters stand in for it here.
        out["model_ema.decay"] = torch.tensor(0.9999, dtype=torch.float32)
        out["model_ema.num_updates"] = torch.tensor(440000, dtype=torch.int32)
        for k in ("model.diffusion_model.out.2.bias", "model.diffusion_model.time_embed.0.bias",
                  "model.diffusion_model.input_blocks.0.0.bias"):
            out["model_ema." + k.removeprefix("model.").replace(".", "")] = out[k].clone()
    if m.name == "sd2-depth":
        # The original depth checkpoint also holds its MiDaS depth estimator under depth_model.
        out["depth_model.model.scratch.output_conv.4.weight"] = random_tensor(m.name, "depth", "w", (1, 32, 1, 1))
        out["depth_model.model.scratch.output_conv.4.bias"] = random_tensor(m.name, "depth", "bias", (1,))
    return out


# --------------------------------------------------------------------------
# writers
# --------------------------------------------------------------------------

DDPM_BUFFERS = frozenset(ddpm_buffers())


def f16(state):
    """Weights as contiguous float16 (they already hold float16 values). Scalars, the DDPM
    schedule and integer tensors stay as they are."""
    return {k: (v.half() if v.is_floating_point() and v.ndim > 0 and k not in DDPM_BUFFERS else v).contiguous()
            for k, v in state.items()}


def save_safetensors(state, path):
    from safetensors.torch import save_file
    save_file(f16(state), path, metadata={"format": "pt"})


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def scheduler_config(kind):
    """SD's scheduler_config.json files (facts: class and values as the SD repositories ship them)."""
    common = {"beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
              "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True,
              "steps_offset": 1, "trained_betas": None, "clip_sample": False}
    if kind == "sd1":      # SD 1.x: PNDM, no prediction_type key (diffusers' default: epsilon)
        return {"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", **common}
    if kind == "sd2-v":    # SD 2.x 768-v: DDIM with v-prediction
        return {"_class_name": "DDIMScheduler", "_diffusers_version": "0.8.0", **common,
                "prediction_type": "v_prediction"}
    if kind == "sd2-eps":  # SD 2.x 512-base: PNDM, epsilon stated (also used here for depth)
        return {"_class_name": "PNDMScheduler", "_diffusers_version": "0.10.0", **common,
                "prediction_type": "epsilon"}
    raise KeyError(kind)


def write_tokenizer(folder, family):
    """tokenizer/ without vocab.json and merges.txt.

    The vocabulary is OpenAI CLIP's, which the package ships (native/core/data); the 1.6 MB of
    vocab.json + merges.txt per fixture would only repeat it. What a folder decides is kept:
    the pad token (SD1 pads with <|endoftext|>, SD2 with "!", id 0) and the maximum length.
    transformers cannot load this folder by itself: tools that need a CLIPTokenizer build
    vocab.json/merges.txt from the shipped vocabulary (make_tokenizer_goldens.build_vocab).
    """
    os.makedirs(folder, exist_ok=True)
    bos, eos = "<|startoftext|>", "<|endoftext|>"
    pad = eos if family == "sd1" else "!"

    def added(content):
        return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True,
                "rstrip": False, "single_word": False}

    write_json(os.path.join(folder, "tokenizer_config.json"), {
        "add_prefix_space": False, "bos_token": added(bos), "do_lower_case": True,
        "eos_token": added(eos), "errors": "replace", "model_max_length": POSITIONS,
        "pad_token": added(pad) if family == "sd2" else eos, "tokenizer_class": "CLIPTokenizer",
        "unk_token": added(eos)})
    write_json(os.path.join(folder, "special_tokens_map.json"), {
        "bos_token": added(bos), "eos_token": added(eos),
        "pad_token": added(pad) if family == "sd2" else eos, "unk_token": added(eos)})


def write_diffusers(m, pipeline, folder):
    model, prediction, scheduler, pipeline_class, image_size = PIPELINES[pipeline]
    if os.path.exists(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    import diffusers
    index = {
        "_class_name": pipeline_class,
        "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", scheduler_config(scheduler)["_class_name"]],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    if pipeline_class == "StableDiffusionDepth2ImgPipeline":
        # The real depth folder has depth_estimator/ (DPT) and feature_extractor/: omitted here.
        del index["safety_checker"], index["requires_safety_checker"]
        index["depth_estimator"] = ["transformers", "DPTForDepthEstimation"]
        index["feature_extractor"] = ["transformers", "DPTImageProcessor"]
    write_json(os.path.join(folder, "model_index.json"), index)

    for component, module in (("unet", m.unet), ("vae", m.vae)):
        module.save_config(os.path.join(folder, component))
        save_safetensors(dict(module.state_dict()),
                         os.path.join(folder, component, "diffusion_pytorch_model.safetensors"))

    os.makedirs(os.path.join(folder, "text_encoder"))
    cfg = text_config(m.family, m.text_hidden, m.text_layers_diffusers).to_dict()
    for k in ("transformers_version", "_name_or_path", "dtype", "torch_dtype", "output_attentions", "return_dict"):
        cfg.pop(k, None)
    cfg["architectures"] = ["CLIPTextModel"]
    cfg["torch_dtype"] = "float16"
    write_json(os.path.join(folder, "text_encoder", "config.json"), cfg)
    # Keys as SD's repositories store them (saved by transformers < 5.6, with "text_model.").
    text = {"text_model." + k: v for k, v in m.text_state(diffusers_folder=True).items()}
    save_safetensors(text, os.path.join(folder, "text_encoder", "model.safetensors"))

    write_tokenizer(os.path.join(folder, "tokenizer"), m.family)
    os.makedirs(os.path.join(folder, "scheduler"))
    write_json(os.path.join(folder, "scheduler", "scheduler_config.json"), scheduler_config(scheduler))


def write_ckpt(state, path, global_step):
    """torch.save of a Lightning-style checkpoint; made byte-reproducible (see below)."""
    tensors = {k: v.clone() for k, v in f16(state).items()}   # one storage per tensor
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "archive.ckpt")
        torch.save({"global_step": global_step, "state_dict": tensors}, raw)
        deterministic_zip(raw, path, os.path.splitext(os.path.basename(path))[0])


def deterministic_zip(src, dst, archive_name):
    """Rewrites torch.save's archive with a fixed serialization id and folder name.

    torch.save stores a per-save random `.data/serialization_id`; replacing it (and the folder
    named after the temporary file) keeps the fixture identical across runs. Entries stay
    uncompressed and 64-byte aligned, as torch writes them (mmap-able).
    """
    import zipfile
    with zipfile.ZipFile(src) as zin:
        entries = [(i.filename.split("/", 1)[1], zin.read(i.filename)) for i in zin.infolist()]
    with open(dst, "wb") as out:
        zout = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED)
        for name, data in entries:
            if name == ".data/serialization_id":
                data = b"0" * len(data)
            info = zipfile.ZipInfo(f"{archive_name}/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            # Pad the local header's extra field so the data starts 64-byte aligned.
            header = 30 + len(info.filename.encode())
            pad = (-(out.tell() + header + 4)) % 64
            info.extra = b"\xfe\xca" + pad.to_bytes(2, "little") + b"\0" * pad
            zout.writestr(info, data)
        zout.close()


def write_gguf(state, path):
    """The ldm names as stable-diffusion.cpp's converter keeps them: no key/values, float tensors
    only; biases and other 1-D tensors F32 (its f16 conversion leaves them in float), the rest F16."""
    import gguf
    writer = gguf.GGUFWriter(path, arch="unused")
    writer.kv_data[0].pop("general.architecture", None)
    for k, v in state.items():
        if not v.is_floating_point():
            continue
        arr = v.float().numpy() if v.ndim <= 1 else v.half().numpy()
        if v.ndim == 0:
            arr = arr.reshape(1)
        writer.add_tensor(k, np.ascontiguousarray(arr))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


# --------------------------------------------------------------------------
# verification against diffusers' own loaders
# --------------------------------------------------------------------------

def assert_same(expected, actual, what):
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    if missing or extra:
        raise AssertionError(f"{what}: missing {missing[:5]}, unexpected {extra[:5]}")
    for k, v in expected.items():
        if tuple(actual[k].shape) != tuple(v.shape) or not torch.equal(actual[k].float(), v.float()):
            raise AssertionError(f"{what}: {k} differs")


def verify_single_file(m, ldm_path, diffusers_folder):
    """Loads the single file back through diffusers and compares every tensor."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from safetensors.torch import load_file
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_single_file(ldm_path, config=diffusers_folder, subfolder="unet",
                                                 local_files_only=True, torch_dtype=torch.float32)
    assert_same(m.unet_state(), unet.state_dict(), f"{ldm_path}: UNet via from_single_file")
    vae = AutoencoderKL.from_single_file(ldm_path, config=diffusers_folder, subfolder="vae",
                                         local_files_only=True, torch_dtype=torch.float32)
    assert_same(m.vae_state(), vae.state_dict(), f"{ldm_path}: VAE via from_single_file")
    checkpoint = load_file(ldm_path)
    text = create_diffusers_clip_model_from_ldm(CLIPTextModel, checkpoint, config=diffusers_folder,
                                                subfolder="text_encoder", local_files_only=True,
                                                torch_dtype=torch.float32)
    got = {k.removeprefix("text_model."): v for k, v in text.state_dict().items() if not k.endswith("position_ids")}
    assert_same(m.text_state(diffusers_folder=True), got, f"{ldm_path}: text encoder via diffusers' conversion")


def verify_diffusers_folder(m, folder):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=torch.float32)
    assert_same(m.unet_state(), unet.state_dict(), f"{folder}: unet")
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=torch.float32)
    assert_same(m.vae_state(), vae.state_dict(), f"{folder}: vae")
    text = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", dtype=torch.float32)
    got = {k.removeprefix("text_model."): v for k, v in text.state_dict().items() if not k.endswith("position_ids")}
    assert_same(m.text_state(diffusers_folder=True), got, f"{folder}: text_encoder")
    assert text.config.num_hidden_layers == m.text_layers_diffusers


def verify_ckpt(state, path):
    loaded = torch.load(path, weights_only=True)
    assert_same(state, loaded["state_dict"], f"{path}: torch.load")


def verify_gguf(state, path):
    import gguf
    reader = gguf.GGUFReader(path)
    got = {}
    for t in reader.tensors:
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))   # GGUF lists dims innermost first
        got[t.name] = torch.from_numpy(np.array(t.data).astype(np.float32).reshape(shape))
    want = {k: (v.reshape(1) if v.ndim == 0 else v) for k, v in state.items() if v.is_floating_point()}
    assert_same(want, got, f"{path}: gguf")


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_list(root, path):
    if os.path.isdir(path):
        return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(path) for f in fs)
    return [os.path.relpath(path, root)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--all", action="store_true", help="every pipeline in every layout")
    args = parser.parse_args()

    import diffusers
    import transformers
    wanted = [(p, l) for p in PIPELINES for l in LAYOUTS] if args.all else COMMITTED
    os.makedirs(args.out, exist_ok=True)

    models = {}
    manifest = {"generator": "tools/goldens/make_tiny_models.py", "seed": SEED,
                "note": "prediction_type and image_size are the pipeline's; an SD2 epsilon single file "
                        "(--all) is detected as v_prediction unless the predictionType option says otherwise",
                "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                             "transformers": transformers.__version__},
                "fixtures": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for pipeline, layout in wanted:
            model_name, prediction, _, _, image_size = PIPELINES[pipeline]
            key = (model_name, image_size)
            if key not in models:
                models[key] = TinyModel(model_name, image_size)
            m = models[key]
            path = os.path.join(args.out, fixture_name(pipeline, layout))
            if layout == "diffusers":
                write_diffusers(m, pipeline, path)
                verify_diffusers_folder(m, path)
            else:
                state = ldm_state(m)
                reference = os.path.join(tmp, pipeline)
                if not os.path.exists(reference):
                    write_diffusers(m, pipeline, reference)
                if layout == "ldm.safetensors":
                    save_safetensors(state, path)
                    verify_single_file(m, path, reference)
                elif layout == "ldm.ckpt":
                    write_ckpt(state, path, GLOBAL_STEP[pipeline])
                    verify_ckpt(f16(state), path)
                else:
                    write_gguf(state, path)
                    verify_gguf(state, path)
            files = file_list(args.out, path)
            manifest["fixtures"][fixture_name(pipeline, layout)] = {
                "model": model_name, "family": m.family, "variant": {4: "base", 9: "inpaint", 5: "depth"}[MODELS[model_name][1]],
                "layout": layout.split(".")[0], "prediction_type": prediction, "image_size": image_size,
                "unet": {"in_channels": MODELS[model_name][1], "block_out_channels": list(UNET_CHANNELS),
                         "layers_per_block": 2, "cross_attention_dim": m.text_hidden,
                         "attention_heads": ([SD1_UNET_HEADS] * 4 if m.family == "sd1"
                                             else [c // head_dim_for(c) for c in UNET_CHANNELS]),
                         "use_linear_projection": m.family == "sd2"},
                "vae": {"block_out_channels": list(MODELS[model_name][2]), "latent_channels": 4,
                        "scaling_factor": 0.18215},
                "text_encoder": {"hidden_size": m.text_hidden, "heads": m.text_hidden // head_dim_for(m.text_hidden),
                                 "hidden_act": "quick_gelu" if m.family == "sd1" else "gelu",
                                 "layers_stored": m.text_layers_diffusers if layout == "diffusers" else
                                 (SD1_TEXT_LAYERS if m.family == "sd1" else SD2_TEXT_LAYERS_LDM),
                                 "layers_used": m.text_layers_diffusers},
                "files": {f: sha256(os.path.join(args.out, f)) for f in files},
            }
            print(f"wrote {path}", file=sys.stderr)
    write_json(os.path.join(args.out, "manifest.json"), manifest)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.out) for f in fs)
    print(f"{args.out}: {total / 1e6:.1f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
