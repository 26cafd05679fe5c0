#!/usr/bin/env python3
"""Text-encoder and prompt-encoding goldens for the tiny fixtures (test/fixtures/tiny/).

References (imported, never copied):
  * transformers' CLIPTextModel, loaded from the diffusers folders in float32 on CPU:
    last_hidden_state, and hidden_states[-clip_skip] + final_layer_norm for A1111's clip skip
    (clip_skip 1 is last_hidden_state).
  * the original SD2 checkpoint sd2-v-ldm.safetensors (3 OpenCLIP layers stored, SD uses the
    penultimate one's output): loaded by diffusers' own conversion
    (create_diffusers_clip_model_from_ldm with the folder's 2-layer config, what
    from_single_file does), and cross-checked here against our own mapping of all 3 layers run
    with output_hidden_states: hidden_states[-2] + final_layer_norm must give the same values.
  * diffusers' StableDiffusionPipeline.encode_prompt (prompt + negative prompt, clip_skip None
    and 1) on a pipeline built from the tiny folder, with a CLIPTokenizer made from the
    vocabulary the package ships (the fixture folders hold no vocab.json/merges.txt).

Output: test/fixtures/goldens/text-encoder/goldens.bin (float32, little endian, concatenated)
and goldens.json (for every case: model, ids, clip skip, shape, offset in floats).

Usage (from the repository root, with the environment of tools/README.md):
    PYTHONPATH=/work/refs/diffusers/src /work/pyenv/bin/python tools/goldens/make_text_encoder_goldens.py
"""

import importlib.util
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TINY = os.path.join(REPO_ROOT, "test", "fixtures", "tiny")
OUT_DIR = os.path.join(REPO_ROOT, "test", "fixtures", "goldens", "text-encoder")
VOCAB_GZ = os.path.join(REPO_ROOT, "native", "core", "data", "bpe_simple_vocab_16e6.txt.gz")

FLOOBLE = "A painting of a flooble"
NEGATIVE = "blurry, low quality, watermark"
LONG = ("a highly detailed matte painting of a sprawling cyberpunk city at night, neon signs reflecting "
        "in rain-soaked streets, flying cars weaving between towering skyscrapers, holographic billboards "
        "advertising ramen and robot repair, crowds of people with umbrellas, steam rising from manholes, "
        "volumetric fog, cinematic lighting, ultra wide angle lens, octane render, unreal engine 5")


def load_tokenizer_helpers():
    path = os.path.join(REPO_ROOT, "tools", "goldens", "make_tokenizer_goldens.py")
    spec = importlib.util.spec_from_file_location("make_tokenizer_goldens", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_tokenizer(folder, helpers, workdir):
    """CLIPTokenizer with our vocabulary and the fixture's tokenizer_config (pad token)."""
    from transformers import CLIPTokenizer
    vocab, merges = helpers.build_vocab(VOCAB_GZ)
    target = os.path.join(workdir, os.path.basename(folder) + "-tokenizer")
    helpers.write_tokenizer_folder(target, vocab, merges)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(folder, "tokenizer", name), os.path.join(target, name))
    return CLIPTokenizer.from_pretrained(target)


class Writer:
    def __init__(self):
        self.chunks, self.cases, self.offset = [], [], 0

    def add(self, name, tensor, **meta):
        a = tensor.detach().to(torch.float32).contiguous().numpy()
        self.chunks.append(a.reshape(-1).astype("<f4"))
        self.cases.append({"name": name, "shape": list(a.shape), "offset": self.offset, **meta})
        self.offset += a.size

    def write(self, versions):
        os.makedirs(OUT_DIR, exist_ok=True)
        np.concatenate(self.chunks).tofile(os.path.join(OUT_DIR, "goldens.bin"))
        with open(os.path.join(OUT_DIR, "goldens.json"), "w") as f:
            json.dump({"generator": "tools/goldens/make_text_encoder_goldens.py", "versions": versions,
                       "dtype": "float32", "cases": self.cases}, f, indent=1)
            f.write("\n")


def encode(model, ids, clip_skip):
    """A1111's clip skip: hidden_states[-clip_skip] then final_layer_norm (1 = last_hidden_state)."""
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids, dtype=torch.long), output_hidden_states=True)
        if clip_skip == 1:
            return out.last_hidden_state
        # transformers >= 5.6 has no text_model level in CLIPTextModel.
        final_layer_norm = getattr(model, "text_model", model).final_layer_norm
        return final_layer_norm(out.hidden_states[-clip_skip])


def id_cases(tokenizer):
    pad77 = dict(padding="max_length", max_length=77, truncation=True)
    return {
        "flooble": [tokenizer(FLOOBLE).input_ids],                       # bos … eos, no padding
        "flooble-77": [tokenizer(FLOOBLE, **pad77).input_ids],           # as diffusers pads
        "empty-77": [tokenizer("", **pad77).input_ids],
        "long-77": [tokenizer(LONG, **pad77).input_ids],                 # 75 tokens + bos/eos, truncated
        "negative-77": [tokenizer(NEGATIVE, **pad77).input_ids],
        "batch2-77": [tokenizer(FLOOBLE, **pad77).input_ids, tokenizer(NEGATIVE, **pad77).input_ids],
    }


def openclip_ldm_to_clip(state, layers):
    """Our own mapping of the ldm OpenCLIP names to CLIPTextModel's (all stored layers)."""
    p = "cond_stage_model.model."
    out = {
        "embeddings.token_embedding.weight": state[p + "token_embedding.weight"],
        "embeddings.position_embedding.weight": state[p + "positional_embedding"],
        "final_layer_norm.weight": state[p + "ln_final.weight"],
        "final_layer_norm.bias": state[p + "ln_final.bias"],
    }
    names = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
             "attn.out_proj": "self_attn.out_proj"}
    for i in range(layers):
        src, dst = f"{p}transformer.resblocks.{i}.", f"encoder.layers.{i}."
        for kind in ("weight", "bias"):
            q, k, v = state[src + f"attn.in_proj_{kind}"].chunk(3, dim=0)
            out[dst + f"self_attn.q_proj.{kind}"] = q
            out[dst + f"self_attn.k_proj.{kind}"] = k
            out[dst + f"self_attn.v_proj.{kind}"] = v
            for theirs, ours in names.items():
                out[dst + f"{ours}.{kind}"] = state[src + f"{theirs}.{kind}"]
    return {k: v.float() for k, v in out.items()}


def max_rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def main():
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from safetensors.torch import load_file
    import diffusers
    import transformers
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.set_grad_enabled(False)
    helpers = load_tokenizer_helpers()
    w = Writer()
    with tempfile.TemporaryDirectory() as workdir:
        folders = {"sd1": os.path.join(TINY, "sd1-diffusers"), "sd2": os.path.join(TINY, "sd2-v-diffusers")}
        for family, folder in folders.items():
            tokenizer = make_tokenizer(folder, helpers, workdir)
            text = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", dtype=torch.float32).eval()
            cases = id_cases(tokenizer)
            fixture = os.path.basename(folder)
            for name, ids in cases.items():
                for skip in (1, 2):
                    w.add(f"{fixture}/{name}/skip{skip}", encode(text, ids, skip), fixture=fixture, ids=ids,
                          clipSkip=skip)

            if family == "sd2":
                # The same model as an original checkpoint: 3 layers stored, the penultimate used.
                ldm = os.path.join(TINY, "sd2-v-ldm.safetensors")
                checkpoint = load_file(ldm)
                converted = create_diffusers_clip_model_from_ldm(
                    CLIPTextModel, checkpoint, config=folder, subfolder="text_encoder", local_files_only=True,
                    torch_dtype=torch.float32).eval()
                stored = 1 + max(int(k.split(".")[4]) for k in checkpoint
                                 if k.startswith("cond_stage_model.model.transformer.resblocks."))
                config = CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder")
                config.num_hidden_layers = stored
                full = CLIPTextModel(config).eval()
                missing, unexpected = full.load_state_dict(
                    openclip_ldm_to_clip(checkpoint, stored), strict=False)
                assert not unexpected and all(k.endswith("position_ids") for k in missing), (missing, unexpected)
                for name, ids in cases.items():
                    for skip in (1, 2):
                        ours = encode(full, ids, skip + 1)  # the penultimate of the stored layers is skip 1
                        theirs = encode(converted, ids, skip)
                        assert torch.allclose(ours, theirs, atol=1e-6, rtol=0), (name, skip, max_rel(ours, theirs))
                        w.add(f"sd2-v-ldm.safetensors/{name}/skip{skip}", theirs, fixture="sd2-v-ldm.safetensors",
                              ids=ids, clipSkip=skip)
                    # The last stored layer (what SD2 does not use), to show it differs.
                    if name == "flooble-77":
                        w.add(f"sd2-v-ldm.safetensors/{name}/all-layers", encode(full, ids, 1),
                              fixture="sd2-v-ldm.safetensors", ids=ids, note="last of the 3 stored layers (unused by SD)")

            # diffusers' encode_prompt on a pipeline from the folder.
            pipe = StableDiffusionPipeline(
                vae=AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=torch.float32),
                text_encoder=text, tokenizer=tokenizer,
                unet=UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=torch.float32),
                scheduler=DDIMScheduler.from_pretrained(folder, subfolder="scheduler"),
                safety_checker=None, feature_extractor=None, requires_safety_checker=False)
            # clip_skip stays None: diffusers' clip-skip branch reaches text_encoder.text_model, which
            # transformers >= 5.6 no longer has (AttributeError). The same computation
            # (hidden_states[-(clip_skip + 1)] + final_layer_norm) is in the cases above as skip2.
            for prompt, negative in ((FLOOBLE, NEGATIVE), (FLOOBLE, None)):
                for diffusers_skip in (None,):
                    cond, uncond = pipe.encode_prompt(prompt, torch.device("cpu"), 1, True, negative_prompt=negative,
                                                      clip_skip=diffusers_skip)
                    a1111 = 1 if diffusers_skip is None else diffusers_skip + 1
                    # The same as the text encoder's output for the padded ids (a check of the mapping).
                    ids = [tokenizer(prompt, padding="max_length", max_length=77, truncation=True).input_ids]
                    assert torch.equal(cond, encode(text, ids, a1111))
                    tag = f"{fixture}/encode_prompt/{'neg' if negative else 'noneg'}/diffusers-skip-{diffusers_skip}"
                    meta = dict(fixture=fixture, prompt=prompt, negativePrompt=negative or "", clipSkip=a1111,
                                diffusersClipSkip=diffusers_skip)
                    w.add(tag + "/cond", cond, **meta)
                    w.add(tag + "/uncond", uncond, **meta)

    w.write({"torch": torch.__version__, "transformers": transformers.__version__,
             "diffusers": diffusers.__version__, "python": sys.version.split()[0]})
    print(f"wrote {len(w.cases)} cases, {w.offset * 4} bytes to {OUT_DIR}")


if __name__ == "__main__":
    main()
