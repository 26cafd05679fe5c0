#!/usr/bin/env python3
"""LoRA, LyCORIS and textual-inversion fixtures and goldens on the tiny SD models.

Fixtures (test/fixtures/lora/, a few KB each, float16 factors as kohya saves them):
  sd1-kohya.safetensors   a random kohya-ss LoRA for tiny sd1-diffusers, rank 4, alpha 2 (alpha 1 on
                          the 3x3 LoCon convolutions): UNet attention (attn1, attn2), feed-forward,
                          proj_in/proj_out (1x1 convolutions in SD1), resnet conv1/conv2 (3x3 LoCon),
                          time_emb_proj, and the text encoder's attention and MLP
  sd1-kohya.pt            the same state dict saved with torch.save
  sd1-peft.safetensors    the same LoRA in diffusers/PEFT names (unet.…lora_A/lora_B,
                          text_encoder.text_model.…), alphas in the lora_adapter_metadata
  sd1-loha.safetensors    a LyCORIS LoHa (rank 2, alpha 1) on UNet attention and feed-forward and
                          the text encoder
  sd1-lokr.safetensors    a LyCORIS LoKr (peft's factorisation, w2 decomposed, alpha 1, rank 2) on
                          UNet attention and feed-forward
  sd2-kohya.safetensors   a kohya LoRA for tiny sd2-v-diffusers (another family for the SD1 model)
  tinystyle.pt            an A1111 textual-inversion embedding of 2 vectors (string_to_param)
  tinystyle2.safetensors  the same vectors as A1111's safetensors embeddings (emb_params)
  cattoy.safetensors      a diffusers learned_embeds file of 1 vector ({"<cat-toy>": [16]})
  wide.pt                 an embedding of the SD2 tiny model's width (8), which SD1 must skip
  not-a-state-dict.pt     torch.save of a list

References (imported, never copied):
  * the UNet part of sd1-kohya and sd1-peft is loaded with diffusers' load_lora_weights and fused
    with fuse_lora(lora_scale); the fused UNet must equal the weights merged here by
    W + weight · alpha/rank · up·down (checked to 1e-6). With transformers 5 diffusers' text-encoder
    LoRA path expects "text_model." module names the flattened CLIPTextModel no longer has, so the
    text encoder is merged here by the same formula.
  * LoHa and LoKr: peft's LoHaConfig / LoKrConfig adapters on the UNet and the text encoder, their
    parameters set to the file's values, merged with merge_and_unload.
  * txt2img: diffusers' StableDiffusionPipeline on the merged weights, float32 on CPU, Euler, 3 steps,
    128x128, guidance 7.5, seed 42, prompt "a painting of a flooble", negative "blurry": final
    latents for the base model, kohya at 0.8 and 0.4, text encoder 0.5 / UNet 1.0, LoHa and LoKr at
    1, and the SD2 LoRA on sd2-v-diffusers at 0.8.
  * textual inversion: diffusers' load_textual_inversion (A1111 file and learned_embeds) then
    encode_prompt with a negative prompt: cond and uncond [1, 77, 16].

Output: test/fixtures/goldens/lora/goldens.bin (float32 little endian) and goldens.json.

Usage (from the repository root, with the environment of tools/README.md plus peft):
    PYTHONPATH=/work/refs/diffusers/src /work/pyenv/bin/python tools/goldens/make_lora_goldens.py
"""

import copy
import importlib.util
import json
import os
import tempfile

import numpy as np
import torch

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TINY = os.path.join(REPO_ROOT, "test", "fixtures", "tiny")
FIXTURES = os.path.join(REPO_ROOT, "test", "fixtures", "lora")
OUT_DIR = os.path.join(REPO_ROOT, "test", "fixtures", "goldens", "lora")

PROMPT = "a painting of a flooble"
NEGATIVE = "blurry"
SIZE = 128
STEPS = 3
GUIDANCE = 7.5
SEED = 42
RANK = 4
ALPHA = 2.0
CONV_ALPHA = 1.0

ATTENTIONS = ["down_blocks.0.attentions.0", "mid_block.attentions.0", "up_blocks.1.attentions.2"]
BLOCK_LAYERS = ["attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k",
                "attn2.to_v", "attn2.to_out.0", "ff.net.0.proj", "ff.net.2"]
UNET_EXTRA = ["down_blocks.1.resnets.0.conv1", "up_blocks.2.resnets.1.conv2", "down_blocks.0.resnets.0.time_emb_proj"]
TEXT_LAYERS = [f"encoder.layers.{i}.{p}" for i in range(2)
               for p in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2")]


def load_module(name):
    path = os.path.join(REPO_ROOT, "tools", "goldens", name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def unet_modules():
    names = [f"{a}.{p}" for a in ATTENTIONS for p in ("proj_in", "proj_out")]
    names += [f"{a}.transformer_blocks.0.{layer}" for a in ATTENTIONS for layer in BLOCK_LAYERS]
    return names + UNET_EXTRA


def random_lora(model, names, generator, rank=RANK):
    """{module: (down, up, alpha)} with float16 factors, sized so that a change is ~30% of the weight."""
    modules = dict(model.named_modules())
    lora = {}
    for name in names:
        layer = modules[name]
        weight = layer.weight.detach()
        if weight.dim() == 4:
            out_ch, in_ch, kh, kw = weight.shape
            down = torch.randn((rank, in_ch, kh, kw), generator=generator) / (in_ch * kh * kw) ** 0.5
            up = torch.randn((out_ch, rank, 1, 1), generator=generator)
            alpha = CONV_ALPHA if kh > 1 else ALPHA
        else:
            out_ch, in_ch = weight.shape
            down = torch.randn((rank, in_ch), generator=generator) / in_ch ** 0.5
            up = torch.randn((out_ch, rank), generator=generator)
            alpha = ALPHA
        delta = up.flatten(1) @ down.flatten(1) * alpha / rank
        up = up * (0.3 * weight.norm() / delta.norm())
        lora[name] = (down.half(), up.half(), alpha)
    return lora


def lora_delta(down, up, alpha, shape):
    rank = down.shape[0]
    return (up.float().flatten(1) @ down.float().flatten(1)).reshape(shape) * (alpha / rank)


def merged_state(model, lora, weight):
    """The model's state dict with W + weight · alpha/rank · up·down for every module of `lora`."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for name, (down, up, alpha) in lora.items():
        key = name + ".weight"
        state[key] = state[key] + weight * lora_delta(down, up, alpha, state[key].shape)
    return state


def kohya_dict(unet_lora, te_lora, unet_prefix="lora_unet_", te_prefix="lora_te_text_model_"):
    out = {}
    for prefix, lora in ((unet_prefix, unet_lora), (te_prefix, te_lora)):
        for name, (down, up, alpha) in lora.items():
            key = prefix + name.replace(".", "_")
            out[key + ".lora_down.weight"] = down.contiguous()
            out[key + ".lora_up.weight"] = up.contiguous()
            out[key + ".alpha"] = torch.tensor(alpha, dtype=torch.float32)
    return out


def peft_dict(unet_lora, te_lora):
    out = {}
    for prefix, lora in (("unet.", unet_lora), ("text_encoder.text_model.", te_lora)):
        for name, (down, up, _alpha) in lora.items():
            out[prefix + name + ".lora_A.weight"] = down.contiguous()
            out[prefix + name + ".lora_B.weight"] = up.contiguous()
    return out


def peft_metadata(unet_lora, te_lora):
    pattern = {name: alpha for name, (_d, _u, alpha) in unet_lora.items() if alpha != ALPHA}
    metadata = {"unet.r": RANK, "unet.lora_alpha": ALPHA, "unet.alpha_pattern": pattern,
                "unet.target_modules": sorted(unet_lora), "text_encoder.r": RANK, "text_encoder.lora_alpha": ALPHA,
                "text_encoder.target_modules": sorted(te_lora)}
    return {"format": "pt", "lora_adapter_metadata": json.dumps(metadata, indent=2, sort_keys=True)}


def build_pipeline(fixture, helpers, workdir):
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel
    folder = os.path.join(TINY, fixture)
    te = load_module("make_text_encoder_goldens")
    tokenizer = te.make_tokenizer(folder, helpers, workdir)
    text_encoder = CLIPTextModel.from_pretrained(os.path.join(folder, "text_encoder"), torch_dtype=torch.float32)
    unet = UNet2DConditionModel.from_pretrained(os.path.join(folder, "unet"), torch_dtype=torch.float32)
    vae = AutoencoderKL.from_pretrained(os.path.join(folder, "vae"), torch_dtype=torch.float32)
    with open(os.path.join(folder, "scheduler", "scheduler_config.json")) as f:
        config = json.load(f)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=EulerDiscreteScheduler.from_config(config), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    for module in (text_encoder, unet, vae):
        module.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(pipe, unet_state=None, te_state=None, scheduler=None, steps=STEPS, guidance=GUIDANCE):
    """Final latents of the pipeline with the given UNet and text-encoder weights (then put back),
    optionally with another scheduler, step count and guidance (the few-step recipes)."""
    saved_unet = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    saved_te = {k: v.clone() for k, v in pipe.text_encoder.state_dict().items()}
    if unet_state is not None:
        pipe.unet.load_state_dict(unet_state)
    if te_state is not None:
        pipe.text_encoder.load_state_dict(te_state)
    saved_scheduler = pipe.scheduler
    if scheduler is not None:
        pipe.scheduler = scheduler
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        latents = pipe(PROMPT, negative_prompt=NEGATIVE, height=SIZE, width=SIZE, num_inference_steps=steps,
                       guidance_scale=guidance, generator=generator, output_type="latent").images
    pipe.scheduler = saved_scheduler
    pipe.unet.load_state_dict(saved_unet)
    pipe.text_encoder.load_state_dict(saved_te)
    return latents


def max_diff(a, b):
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def check_diffusers_fuse(pipe, path, unet_lora, scale):
    """diffusers' own loader on a UNet-only LoRA file, fused at `scale`, against our merge."""
    base = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    pipe.load_lora_weights(path, adapter_name="check")
    pipe.fuse_lora(lora_scale=scale, components=["unet"])
    pipe.unload_lora_weights()  # keeps the fused weights
    fused = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    pipe.unet.load_state_dict(base)
    ours = merged_state(pipe.unet, unet_lora, scale)
    error = max_diff({k: fused[k] for k in ours}, ours)
    assert error < 1e-6, f"diffusers' fused UNet differs from our merge by {error} ({path})"
    return error


def lycoris_adapter(model, config_cls, names, rank, generator, file_prefix, kind, strength=0.3):
    """A peft LoHa/LoKr adapter on a copy of `model` with random parameters; returns the merged
    state dict and the LyCORIS tensors {file key: tensor} of the same values."""
    from peft import get_peft_model
    model = copy.deepcopy(model)
    config = config_cls(r=rank, alpha=1.0, target_modules=names, init_weights=False)
    peft_model = get_peft_model(model, config)
    tensors = {}
    for full, param in peft_model.named_parameters():
        if ".default" not in full or not any(p in full for p in ("hada_", "lokr_")):
            continue
        module, part = full.rsplit(".", 2)[0], full.rsplit(".", 2)[1]
        name = module.replace("base_model.model.", "")
        with torch.no_grad():
            values = torch.randn(param.shape, generator=generator).half()
            param.copy_(values.float())
        tensors[file_prefix + name.replace(".", "_") + "." + part] = values
    for name in names:
        tensors[file_prefix + name.replace(".", "_") + ".alpha"] = torch.tensor(1.0)
    assert tensors, kind
    # Scale the factors so that each change is ~30% of its weight (the same factor on one part).
    modules = dict(peft_model.named_modules())
    for name in names:
        layer = modules["base_model.model." + name]
        with torch.no_grad():
            delta = layer.get_delta_weight("default")
        factor = float(strength * layer.get_base_layer().weight.norm() / delta.norm())
        first = "hada_w1_a" if kind == "loha" else ("lokr_w1" if hasattr(layer, "lokr_w1") and "default" in layer.lokr_w1 else "lokr_w1_a")
        param = getattr(layer, first)["default"]
        with torch.no_grad():
            values = (param.detach() * factor).half()
            param.copy_(values.float())
        tensors[file_prefix + name.replace(".", "_") + "." + first] = values
    merged = peft_model.merge_and_unload()
    return {k: v.clone() for k, v in merged.state_dict().items()}, tensors


def save_torch(obj, path):
    torch.save(obj, path)


def main():
    import diffusers
    import peft
    import transformers
    from peft import LoHaConfig, LoKrConfig
    from safetensors.torch import save_file as save_safetensors

    def save_file(tensors, path, metadata=None):
        save_safetensors(tensors, path, metadata=metadata)
        os.chmod(path, 0o644)

    os.makedirs(FIXTURES, exist_ok=True)
    helpers = load_module("make_tokenizer_goldens")
    writer_chunks, cases, offset = [], [], 0

    def add(name, tensor, **meta):
        nonlocal offset
        a = tensor.detach().to(torch.float32).contiguous().numpy()
        writer_chunks.append(a.reshape(-1).astype("<f4"))
        cases.append({"name": name, "shape": list(a.shape), "offset": offset, **meta})
        offset += a.size
        print(name, list(a.shape), float(np.abs(a).max()))

    generator = torch.Generator().manual_seed(2024)
    with tempfile.TemporaryDirectory() as workdir:
        pipe = build_pipeline("sd1-diffusers", helpers, workdir)
        unet_lora = random_lora(pipe.unet, unet_modules(), generator)
        te_lora = random_lora(pipe.text_encoder, TEXT_LAYERS, generator)

        kohya = kohya_dict(unet_lora, te_lora)
        save_file(kohya, os.path.join(FIXTURES, "sd1-kohya.safetensors"), metadata={"ss_network_dim": str(RANK),
                                                                                   "ss_network_alpha": str(ALPHA)})
        save_torch(kohya, os.path.join(FIXTURES, "sd1-kohya.pt"))
        save_file(peft_dict(unet_lora, te_lora), os.path.join(FIXTURES, "sd1-peft.safetensors"),
                  metadata=peft_metadata(unet_lora, te_lora))

        # diffusers' loader on the UNet part of each format (see the docstring for the text encoder).
        unet_only = os.path.join(workdir, "unet-kohya.safetensors")
        save_file(kohya_dict(unet_lora, {}), unet_only)
        fuse_errors = {"kohya": check_diffusers_fuse(pipe, unet_only, unet_lora, 0.8)}
        unet_peft = os.path.join(workdir, "unet-peft.safetensors")
        save_file(peft_dict(unet_lora, {}), unet_peft, metadata=peft_metadata(unet_lora, {}))
        fuse_errors["peft"] = check_diffusers_fuse(pipe, unet_peft, unet_lora, 0.8)
        print("diffusers fuse vs our merge (UNet):", fuse_errors)

        base = run(pipe)
        add("sd1/base", base, fixture="sd1-diffusers")
        for label, te_weight, unet_weight in (("0.8", 0.8, 0.8), ("0.4", 0.4, 0.4), ("te0.5-unet1", 0.5, 1.0)):
            latents = run(pipe, merged_state(pipe.unet, unet_lora, unet_weight), merged_state(pipe.text_encoder, te_lora, te_weight))
            change = float((latents - base).abs().max() / base.abs().max())
            add(f"sd1/kohya/{label}", latents, fixture="sd1-diffusers", lora="sd1-kohya", textEncoderWeight=te_weight,
                unetWeight=unet_weight, changeFromBase=change)
            assert change > 0.05, f"the LoRA changes the latents by only {change}"

        # Only-UNet and only-text-encoder merges, to see each part matter.
        for label, unet_w, te_w in (("unet-only", 0.8, 0.0), ("te-only", 0.0, 0.8)):
            latents = run(pipe, merged_state(pipe.unet, unet_lora, unet_w), merged_state(pipe.text_encoder, te_lora, te_w))
            add(f"sd1/kohya/{label}", latents, fixture="sd1-diffusers", lora="sd1-kohya", textEncoderWeight=te_w, unetWeight=unet_w,
                changeFromBase=float((latents - base).abs().max() / base.abs().max()))

        # LyCORIS: LoHa and LoKr through peft.
        loha_unet_names = [f"{ATTENTIONS[0]}.transformer_blocks.0.{p}" for p in ("attn1.to_q", "attn1.to_v", "attn2.to_k", "ff.net.0.proj")]
        loha_te_names = ["encoder.layers.0.self_attn.q_proj", "encoder.layers.1.mlp.fc1"]
        loha_unet_state, loha_unet_tensors = lycoris_adapter(pipe.unet, LoHaConfig, loha_unet_names, 2, generator, "lora_unet_", "loha")
        loha_te_state, loha_te_tensors = lycoris_adapter(pipe.text_encoder, LoHaConfig, loha_te_names, 2, generator,
                                                         "lora_te_text_model_", "loha")
        save_file({**loha_unet_tensors, **loha_te_tensors}, os.path.join(FIXTURES, "sd1-loha.safetensors"))
        latents = run(pipe, loha_unet_state, loha_te_state)
        add("sd1/loha/1", latents, fixture="sd1-diffusers", lora="sd1-loha", textEncoderWeight=1.0, unetWeight=1.0,
            changeFromBase=float((latents - base).abs().max() / base.abs().max()))

        lokr_names = [f"{a}.transformer_blocks.0.{p}" for a in ATTENTIONS[:2] for p in ("attn1.to_k", "attn2.to_q", "ff.net.2")]
        lokr_state, lokr_tensors = lycoris_adapter(pipe.unet, LoKrConfig, lokr_names, 2, generator, "lora_unet_", "lokr", 1.0)
        assert any(k.endswith("lokr_w2_a") for k in lokr_tensors), "expected peft to decompose w2"
        save_file(lokr_tensors, os.path.join(FIXTURES, "sd1-lokr.safetensors"))
        latents = run(pipe, lokr_state, None)
        add("sd1/lokr/1", latents, fixture="sd1-diffusers", lora="sd1-lokr", textEncoderWeight=1.0, unetWeight=1.0,
            changeFromBase=float((latents - base).abs().max() / base.abs().max()))

        # Textual inversion: an A1111 .pt of 2 vectors and a diffusers learned_embeds of 1.
        hidden = pipe.text_encoder.config.hidden_size
        vectors = torch.randn((2, hidden), generator=generator)
        save_torch({"string_to_token": {"*": 265}, "string_to_param": {"*": torch.nn.Parameter(vectors.clone())},
                    "name": "tinystyle", "step": 500, "sd_checkpoint": "0123456789", "sd_checkpoint_name": "tiny"},
                   os.path.join(FIXTURES, "tinystyle.pt"))
        save_file({"emb_params": vectors.clone()}, os.path.join(FIXTURES, "tinystyle2.safetensors"))
        cat = torch.randn((hidden,), generator=generator)
        save_file({"<cat-toy>": cat.clone()}, os.path.join(FIXTURES, "cattoy.safetensors"))
        save_torch({"string_to_param": {"*": torch.randn((1, 8), generator=generator)}, "name": "wide"},
                   os.path.join(FIXTURES, "wide.pt"))
        save_torch([1, 2, 3], os.path.join(FIXTURES, "not-a-state-dict.pt"))

        ti_pipe = build_pipeline("sd1-diffusers", helpers, workdir)
        ti_pipe.load_textual_inversion(os.path.join(FIXTURES, "tinystyle.pt"), token="tinystyle")
        ti_pipe.load_textual_inversion(os.path.join(FIXTURES, "cattoy.safetensors"), token="cattoy")
        for prompt, negative in (("a painting of tinystyle", "blurry"), ("cattoy on a table, tinystyle", "cattoy")):
            with torch.no_grad():
                cond, uncond = ti_pipe.encode_prompt(prompt, torch.device("cpu"), 1, True, negative_prompt=negative)
            ids = ti_pipe.tokenizer(ti_pipe.maybe_convert_prompt(prompt, ti_pipe.tokenizer)).input_ids
            add(f"ti/{prompt}/cond", cond, prompt=prompt, negativePrompt=negative, ids=ids)
            add(f"ti/{prompt}/uncond", uncond, prompt=prompt, negativePrompt=negative)

        # SD2: a kohya LoRA of the tiny SD2 model (linear projections), also the other family for SD1.
        pipe2 = build_pipeline("sd2-v-diffusers", helpers, workdir)
        unet2 = random_lora(pipe2.unet, unet_modules(), generator)
        te2 = random_lora(pipe2.text_encoder, TEXT_LAYERS, generator)
        save_file(kohya_dict(unet2, te2), os.path.join(FIXTURES, "sd2-kohya.safetensors"))
        base2 = run(pipe2)
        add("sd2/base", base2, fixture="sd2-v-diffusers")
        latents = run(pipe2, merged_state(pipe2.unet, unet2, 0.8), merged_state(pipe2.text_encoder, te2, 0.8))
        add("sd2/kohya/0.8", latents, fixture="sd2-v-diffusers", lora="sd2-kohya", textEncoderWeight=0.8, unetWeight=0.8,
            changeFromBase=float((latents - base2).abs().max() / base2.abs().max()))

        # The few-step recipes on the tiny models (random weights: the recipe's settings, not its
        # pictures). LCM-LoRA: a LoRA (the kohya file at 1 stands in for LCM-LoRA) with
        # LCMScheduler, 4 steps, guidance 1.5. SD-Turbo: Euler a with trailing spacing, 1 step, no
        # guidance (guidance_scale 0), on the SD2 model.
        from diffusers import EulerAncestralDiscreteScheduler, LCMScheduler
        with open(os.path.join(TINY, "sd1-diffusers", "scheduler", "scheduler_config.json")) as f:
            config1 = json.load(f)
        lcm = run(pipe, merged_state(pipe.unet, unet_lora, 1.0), merged_state(pipe.text_encoder, te_lora, 1.0),
                  scheduler=LCMScheduler.from_config(config1), steps=4, guidance=1.5)
        add("recipe/lcm-lora", lcm, fixture="sd1-diffusers", lora="sd1-kohya", textEncoderWeight=1.0, unetWeight=1.0,
            scheduler="lcm", steps=4, guidanceScale=1.5)
        with open(os.path.join(TINY, "sd2-v-diffusers", "scheduler", "scheduler_config.json")) as f:
            config2 = json.load(f)
        turbo = run(pipe2, scheduler=EulerAncestralDiscreteScheduler.from_config(config2, timestep_spacing="trailing"),
                    steps=1, guidance=0.0)
        add("recipe/turbo", turbo, fixture="sd2-v-diffusers", scheduler="euler_a", timestepSpacing="trailing", steps=1,
            guidanceScale=0.0)

    os.makedirs(OUT_DIR, exist_ok=True)
    np.concatenate(writer_chunks).tofile(os.path.join(OUT_DIR, "goldens.bin"))
    with open(os.path.join(OUT_DIR, "goldens.json"), "w") as f:
        json.dump({"generator": "tools/goldens/make_lora_goldens.py",
                   "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                                "transformers": transformers.__version__, "peft": peft.__version__},
                   "dtype": "float32", "prompt": PROMPT, "negativePrompt": NEGATIVE, "width": SIZE, "height": SIZE,
                   "steps": STEPS, "guidanceScale": GUIDANCE, "scheduler": "euler", "seed": SEED,
                   "diffusersFuseError": fuse_errors, "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
