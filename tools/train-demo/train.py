#!/usr/bin/env python3
"""Trains the demo model (models/demo-sd1-tiny.gguf): SD 1.x's architecture at tiny scale,
on the procedural shapes of shapes.py, on the CPU.

Stages (all in this one run, from one seed):
  1. VAE     diffusers' AutoencoderKL with SD's block structure (4 levels, 2 resnets per encoder
             level, 3 per decoder level, mid attention) and 4 latent channels at 1/8, trained on
             whole 64x64 images (L1 weighted towards the shape's pixels, and a small KL term).
             32 channels at every level in 8 GroupNorm groups of 4: with 1 or 2 channels per
             group (SD's 32 groups at width 32 or 64) a flat region normalises to fixed values
             whatever its colour, and the decoder's last norm cannot pass colours through.
             Afterwards its latents are standardised per channel by folding a scale and shift
             into quant_conv and post_quant_conv (exact), so that latents * 0.18215 (SD 1.x's
             scaling factor, which our loader assumes) have unit variance.
  2. latents a fixed data set of images is encoded once (posterior mean and std; the UNet stage
             samples from the posterior).
  3. UNet + text encoder, jointly: UNet2DConditionModel with cross-attention (SD1: 8 heads,
             1x1-conv projections, GEGLU), epsilon prediction, SD's DDPM schedule (scaled_linear,
             0.00085-0.012, 1000 steps), 10 % of captions dropped (empty prompt) for classifier-
             free guidance; CLIPTextModel (quick_gelu, 77 positions, the real 49408-token
             vocabulary and the real CLIP tokenizer). The text encoder is trained jointly: no
             pretrained CLIP can be had here, and a frozen random one would give each prompt an
             arbitrary code in which "red" is not the same thing at every position of the prompt.
             An exponential moving average of the weights is what is saved.
  4. export  a diffusers pipeline folder (f16 safetensors, SD1's PNDM scheduler config) written
             by tools/goldens/make_tiny_models.py's own writer; token-embedding rows of tokens no
             caption uses are set to zero (an unknown word then contributes only its position).

Then `node --import tsx tools/make-demo-model.ts --from OUT/diffusers` writes the GGUF.

--resume PATH continues from a trained model (the shipped GGUF or a diffusers folder written
by this script): it loads all three networks, skips the VAE stage (unless --vae-steps is given)
and trains the UNet and text encoder for --unet-steps more steps, e.g. on a new shape.

Usage (environment as in tools/README.md):
    PYTHONPATH=/work/refs/diffusers/src nice -n 5 /work/pyenv/bin/python tools/train-demo/train.py \
        --out /tmp/demo-train
"""

import argparse
import math
import os
import sys
import tempfile
import time
import types

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO_ROOT, "tools", "goldens"))

import shapes  # noqa: E402
import make_tiny_models as tiny  # noqa: E402
import make_tokenizer_goldens as tokgold  # noqa: E402

SEED = 23
IMAGE_SIZE = shapes.SIZE
SCALING_FACTOR = 0.18215

# SD 1.x block structure, tiny widths. GroupNorm(32) sets the minimum width to 32; the UNet
# uses 64 so that each group holds 2 channels and the time embedding (a per-channel offset)
# is not cancelled by the norm after it, as it is at 32 channels.
VAE_CHANNELS = (32, 32, 32, 32)
# GroupNorm over 8 groups, 4 channels each (SD's VAE: 32 groups of 4 at 128 channels). With 2 or
# fewer channels per group, a flat region normalises to a few fixed values whatever its colour
# (1 channel: 0; 2: ±1), so the decoder's last norm cannot pass a continuous colour through; a
# 64-wide VAE at SD's 32 groups (2 per group) plateaued at a mean error of about 22/255.
VAE_GROUPS = 8
UNET_CHANNELS = (64, 64, 64, 64)
UNET_HEADS = 8                  # SD1's; head dimension 8 here
TEXT_HIDDEN = 32                # 4 heads of 8 (our loader's rule for widths under 64)
TEXT_LAYERS = 3


def unet_config():
    return dict(
        sample_size=IMAGE_SIZE // 8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        block_out_channels=UNET_CHANNELS,
        layers_per_block=2,
        cross_attention_dim=TEXT_HIDDEN,
        attention_head_dim=UNET_HEADS,
        norm_num_groups=32,
    )


class Log:
    def __init__(self, path):
        self.file = open(path, "a", encoding="utf-8")
        self.start = time.time()

    def __call__(self, *parts):
        line = f"[{time.time() - self.start:8.1f}s] " + " ".join(str(p) for p in parts)
        print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()


def make_tokenizer(folder):
    from transformers import CLIPTokenizer
    vocab, merges = tokgold.build_vocab(tokgold.DEFAULT_VOCAB)
    tokgold.write_tokenizer_folder(folder, vocab, merges)
    return CLIPTokenizer.from_pretrained(folder)


def tokenize(tokenizer, captions):
    ids = tokenizer(captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    return ids


def build_models(vae_groups=VAE_GROUPS):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel
    vae = AutoencoderKL(**dict(tiny.vae_config(VAE_CHANNELS, IMAGE_SIZE), norm_num_groups=vae_groups))
    unet = UNet2DConditionModel(**unet_config())
    text = CLIPTextModel(tiny.text_config("sd1", TEXT_HIDDEN, TEXT_LAYERS))
    return vae, unet, text


def to_tensor(images):
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def lr_at(step, total, base, warmup):
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


# --------------------------------------------------------------------------
# stage 1: VAE
# --------------------------------------------------------------------------

def shape_weight(x, boost):
    """Per-pixel loss weights: 1 on the background, 1 + boost on the shape. The background is each
    image's median border colour; a pixel far from it is shape (or the far end of a gradient).
    The shapes cover 5-30 % of an image, so a plain mean lets the background's error dominate and
    the shapes' colours are the last thing learnt (a first 5,000-step run drew them in the
    background's hue)."""
    border = torch.cat([x[:, :, 0, :], x[:, :, -1, :], x[:, :, :, 0], x[:, :, :, -1]], dim=2)
    background = border.median(dim=2).values[:, :, None, None]
    shape = ((x - background).abs().sum(dim=1, keepdim=True) > 0.15).float()
    return 1 + boost * shape


def channel_correlation(latents):
    """Mean squared correlation between the latent channels over a batch's pixels. Without it the
    encoder put every colour on one line of the 4-channel space (all channels moving together;
    see palette_check), where colours crowd each other; penalising the correlation makes it use
    all four directions."""
    flat = latents.permute(1, 0, 2, 3).reshape(latents.shape[1], -1)
    flat = flat - flat.mean(dim=1, keepdim=True)
    flat = flat / (flat.norm(dim=1, keepdim=True) + 1e-6)
    corr = flat @ flat.T
    off = corr - torch.diag(torch.diag(corr))
    c = latents.shape[1]
    return (off ** 2).sum() / (c * (c - 1))


def train_vae(vae, args, log):
    rng = np.random.default_rng(SEED * 10 + 1)
    # Start with a small posterior std (logvar -8): from the default (std 1, as large as the
    # means at first) a few hundred steps are not enough to shrink it, and the decoder learns
    # averages of noisy latents (a first try did: grey blobs).
    with torch.no_grad():
        vae.quant_conv.bias[vae.config.latent_channels:] = -8.0
    opt = torch.optim.Adam(vae.parameters(), lr=args.vae_lr)
    total = args.vae_steps
    vae.train()
    for step in range(total):
        images, _ = shapes.make_dataset(args.vae_batch, int(rng.integers(2 ** 31)))
        x = to_tensor(images)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, args.vae_lr, 50)
        posterior = vae.encode(x).latent_dist
        z = posterior.sample()
        rec = vae.decode(z).sample
        error = (rec - x).abs()
        l1 = error.mean()
        weight = shape_weight(x, args.vae_shape_weight)
        kl = posterior.kl().mean() / z[0].numel()
        loss = (weight * error).mean() / weight.mean() + args.vae_kl * kl
        if args.vae_decorrelate > 0:
            loss = loss + args.vae_decorrelate * channel_correlation(posterior.mean)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if step % 25 == 0 or step == total - 1:
            log(f"vae step {step}/{total} l1 {l1.item():.4f} kl {kl.item():.3f} "
                f"channel correlation {channel_correlation(posterior.mean).item():.3f} "
                f"lr {opt.param_groups[0]['lr']:.2e}")
    vae.eval()


def train_vae_decoder(vae, args, log):
    """Fine-tunes the decoder alone (post_quant_conv and the decoder), the encoder frozen: the
    latents, and so a UNet trained on them, stay exactly as they are, while the decoder learns to
    draw them more faithfully (a first model's decoder turned green shapes orange)."""
    rng = np.random.default_rng(SEED * 10 + 6)
    params = list(vae.post_quant_conv.parameters()) + list(vae.decoder.parameters())
    opt = torch.optim.Adam(params, lr=args.vae_lr)
    total = args.vae_decoder_steps
    vae.encoder.eval()
    vae.quant_conv.eval()
    vae.decoder.train()
    for step in range(total):
        images, _ = shapes.make_dataset(args.vae_batch, int(rng.integers(2 ** 31)))
        x = to_tensor(images)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, args.vae_lr, 50)
        with torch.no_grad():
            z = vae.encode(x).latent_dist.sample()
        rec = vae.decode(z).sample
        error = (rec - x).abs()
        weight = shape_weight(x, args.vae_shape_weight)
        loss = (weight * error).mean() / weight.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 25 == 0 or step == total - 1:
            log(f"vae decoder step {step}/{total} l1 {error.mean().item():.4f} lr {opt.param_groups[0]['lr']:.2e}")
    vae.eval()


@torch.no_grad()
def standardise_latents(vae, log):
    """Folds a per-channel shift and scale into quant_conv / post_quant_conv so that the
    posterior means have mean 0 and standard deviation 1 / SCALING_FACTOR (exact)."""
    images, _ = shapes.make_dataset(512, SEED * 10 + 2)
    means = torch.cat([vae.encode(to_tensor(images[i:i + 64])).latent_dist.mean for i in range(0, 512, 64)])
    m = means.mean(dim=(0, 2, 3))
    s = means.std(dim=(0, 2, 3))
    k = 1.0 / (s * SCALING_FACTOR)
    q, pq = vae.quant_conv, vae.post_quant_conv
    c = m.numel()
    q.weight[:c] *= k.view(-1, 1, 1, 1)
    q.bias[:c] = (q.bias[:c] - m) * k
    q.bias[c:] += 2 * torch.log(k)                       # logvar of the scaled latent
    pq.bias += pq.weight[:, :, 0, 0] @ m
    pq.weight /= k.view(1, -1, 1, 1)
    log(f"latents standardised: channel means {m.tolist()} stds {s.tolist()}")


@torch.no_grad()
def check_vae(vae, path, log):
    """Reconstruction of 32 held-out images: mean absolute error in 0..255 and a picture
    (originals above their reconstructions)."""
    from PIL import Image
    images, _ = shapes.make_dataset(32, SEED * 10 + 5)
    x = to_tensor(images)
    dist = vae.encode(x).latent_dist
    rec = vae.decode(dist.mean).sample
    err = (rec - x).abs().mean().item() * 127.5
    ratio = (dist.std / dist.mean.std()).mean().item()
    out = ((rec.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    pairs = np.concatenate([images[:16], out[:16]], axis=1)        # [16, 128, 64, 3]
    Image.fromarray(np.concatenate(list(pairs), axis=1)).save(path)
    log(f"vae check: mean abs error {err:.2f}/255 on held-out images; posterior std / latent std {ratio:.4f}; {path}")


@torch.no_grad()
def palette_check(vae, log):
    """A square of each palette colour on white, encoded and decoded: the latent at its centre and
    the decoded colour there. A VAE can reconstruct well on average and still put all colours on
    one line of latent space (the first trained VAE did: every channel moved together, red to
    yellow to pink to cyan, with green between orange and yellow, so green decoded orange); the
    closest pair of colours in latent space shows that before the UNet is trained on it."""
    names = list(shapes.COLOURS)
    images = []
    for name in names:
        image = np.full((IMAGE_SIZE, IMAGE_SIZE, 3), 255, np.float32)
        image[shapes.shape_mask("square", IMAGE_SIZE / 2, IMAGE_SIZE / 2, IMAGE_SIZE * 0.22) > 0.5] = shapes.COLOURS[name]
        images.append(image)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2) / 127.5 - 1.0
    z = vae.encode(x).latent_dist.mean
    rec = vae.decode(z).sample
    c = IMAGE_SIZE // 16                                 # the centre latent pixels, and their image area
    centre = z[:, :, c - 1:c + 1, c - 1:c + 1].mean(dim=(2, 3)) * SCALING_FACTOR
    decoded = ((rec.clamp(-1, 1) + 1) * 127.5)[:, :, 8 * c - 4:8 * c + 4, 8 * c - 4:8 * c + 4].mean(dim=(2, 3))
    distance = torch.cdist(centre, centre) + torch.eye(len(names)) * 1e9
    i, j = divmod(int(distance.argmin()), len(names))
    errors = [float((decoded[k] - torch.tensor(shapes.COLOURS[n], dtype=torch.float32)).abs().max()) for k, n in enumerate(names)]
    singular = torch.linalg.svdvals(centre - centre.mean(dim=0))
    log(f"palette check: largest decoded error per colour (0..255) "
        f"{', '.join(f'{n} {e:.0f}' for n, e in zip(names, errors))}; closest pair in latent space "
        f"{names[i]}/{names[j]} at {float(distance[i, j]):.2f} (scaled latents); spread of the colours' latents "
        f"over the 4 channels (singular values) {[round(float(v), 2) for v in singular]}")


# --------------------------------------------------------------------------
# stage 2: latents
# --------------------------------------------------------------------------

@torch.no_grad()
def encode_dataset(vae, tokenizer, args, log):
    images, captions = shapes.make_dataset(args.images, SEED * 10 + 3)
    means, stds = [], []
    for i in range(0, len(images), 128):
        dist = vae.encode(to_tensor(images[i:i + 128])).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
    mean, std = torch.cat(means), torch.cat(stds)
    ids = tokenize(tokenizer, captions)
    scaled = mean * SCALING_FACTOR
    log(f"encoded {len(images)} images: scaled latent mean {scaled.mean():.3f} std {scaled.std():.3f}, "
        f"posterior std (scaled) {(std * SCALING_FACTOR).mean():.4f}; {len(set(captions))} distinct captions")
    return mean, std, ids


# --------------------------------------------------------------------------
# stage 3: UNet and text encoder
# --------------------------------------------------------------------------

def min_snr_weights(noise_schedule, t, gamma):
    """Min-SNR-gamma loss weights for epsilon prediction (Hang et al. 2023: min(SNR, gamma) / SNR):
    the low-noise steps, whose targets are nearly the noise itself and carry little of the prompt,
    stop dominating the gradient. gamma 0 turns it off (plain MSE)."""
    if gamma <= 0:
        return torch.ones(t.shape)
    alphas = noise_schedule.alphas_cumprod[t]
    snr = alphas / (1 - alphas)
    return torch.clamp(snr, max=gamma) / snr


def train_unet(unet, text, data, tokenizer, args, log, on_checkpoint=None):
    from diffusers import DDPMScheduler
    mean, std, ids = data
    noise_schedule = DDPMScheduler(**{k: v for k, v in tiny.scheduler_config("sd1").items()
                                      if not k.startswith("_") and k not in ("skip_prk_steps", "set_alpha_to_one")})
    empty = tokenize(tokenizer, [""])[0]
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    ema = [p.detach().clone() for p in params]
    g = torch.Generator().manual_seed(SEED * 10 + 4)
    unet.train()
    text.train()
    total = args.unet_steps
    n = len(mean)
    running = 0.0
    for step in range(total):
        idx = torch.randint(0, n, (args.batch,), generator=g)
        latents = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=g)) * SCALING_FACTOR
        tokens = ids[idx].clone()
        drop = torch.rand(args.batch, generator=g) < args.caption_dropout
        tokens[drop] = empty
        noise = torch.randn(latents.shape, generator=g)
        t = torch.randint(0, noise_schedule.config.num_train_timesteps, (args.batch,), generator=g)
        noisy = noise_schedule.add_noise(latents, noise, t)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total, args.lr, args.warmup)
        context = text(tokens).last_hidden_state
        pred = unet(noisy, t, context).sample
        per_item = F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))
        loss = (per_item * min_snr_weights(noise_schedule, t, args.snr_gamma)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.lerp_(p.detach(), 1 - decay)
        running = loss.item() if step == 0 else 0.98 * running + 0.02 * loss.item()
        if step % 50 == 0 or step == total - 1:
            log(f"unet step {step}/{total} loss {loss.item():.4f} (smoothed {running:.4f}) "
                f"lr {opt.param_groups[0]['lr']:.2e}")
        if on_checkpoint and args.checkpoint_every and (step + 1) % args.checkpoint_every == 0 and step + 1 < total:
            on_checkpoint(step + 1, ema)
    with torch.no_grad():
        for e, p in zip(ema, params):
            p.copy_(e)
    unet.eval()
    text.eval()


# --------------------------------------------------------------------------
# export, resume, preview
# --------------------------------------------------------------------------

def zero_unused_tokens(text, tokenizer):
    used = set()
    for word in shapes.vocabulary():
        used.update(tokenizer(word).input_ids)
    used.update(tokenizer("").input_ids)
    with torch.no_grad():
        weight = text.embeddings.token_embedding.weight
        keep = torch.zeros(weight.shape[0], dtype=torch.bool)
        keep[sorted(used)] = True
        weight[~keep] = 0.0
    return len(used)


def export(vae, unet, text, folder):
    def text_state(diffusers_folder=True):
        return {k.removeprefix("text_model."): v for k, v in text.state_dict().items()
                if not k.endswith("position_ids")}
    model = types.SimpleNamespace(unet=unet, vae=vae, family="sd1", text_hidden=TEXT_HIDDEN,
                                  text_layers_diffusers=TEXT_LAYERS, text_state=text_state)
    tiny.write_diffusers(model, "sd1", folder)


def load_weights(vae, unet, text, path):
    """From the shipped GGUF (our canonical names: unet.*, vae.*, text_encoder.*) or a diffusers
    folder written by export()."""
    if os.path.isdir(path):
        from safetensors.torch import load_file
        parts = {"unet": load_file(os.path.join(path, "unet", "diffusion_pytorch_model.safetensors")),
                 "vae": load_file(os.path.join(path, "vae", "diffusion_pytorch_model.safetensors")),
                 "text_encoder": load_file(os.path.join(path, "text_encoder", "model.safetensors"))}
    else:
        import gguf
        reader = gguf.GGUFReader(path)
        parts = {"unet": {}, "vae": {}, "text_encoder": {}}
        for t in reader.tensors:
            prefix, name = t.name.split(".", 1)
            shape = tuple(int(d) for d in reversed(t.shape.tolist()))
            parts[prefix][name] = torch.from_numpy(np.array(t.data).astype(np.float32).reshape(shape))
    for module, key in ((unet, "unet"), (vae, "vae"), (text, "text_encoder")):
        state = {k.removeprefix("text_model."): v.float() for k, v in parts[key].items()}
        own = module.state_dict()
        if key == "text_encoder" and any(k.startswith("text_model.") for k in own):
            state = {"text_model." + k: v for k, v in state.items()}
        state = {k: v.reshape(own[k].shape) if k in own else v for k, v in state.items()}
        missing, unexpected = module.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise SystemExit(f"{path}: {key} does not match this script's configuration: "
                             f"missing {missing[:3]}, unexpected {unexpected[:3]}")


@torch.no_grad()
def preview(vae, unet, text, tokenizer, path, log):
    """A grid of samples (DDIM 25 steps, guidance 7.5, 2 seeds per prompt) for a quick look."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from PIL import Image
    scheduler = DDIMScheduler(**{k: v for k, v in tiny.scheduler_config("sd1").items()
                                 if not k.startswith("_") and k != "skip_prk_steps"})
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    prompts = ["a red circle on a white background", "a blue square on a white background",
               "a large green triangle", "a yellow star on a black background",
               "a small purple ring in the top left on a white background",
               "an orange cross in the bottom right on a white background",
               "a large pink circle on a blue background", "a cyan square on a gradient background"]
    rows = []
    for prompt in prompts:
        out = pipe([prompt] * 4, height=IMAGE_SIZE, width=IMAGE_SIZE, num_inference_steps=25, guidance_scale=7.5,
                   generator=[torch.Generator().manual_seed(s) for s in range(4)], output_type="np").images
        rows.append(np.concatenate(list(out), axis=1))
    grid = (np.concatenate(rows, axis=0) * 255).round().astype(np.uint8)
    Image.fromarray(grid).save(path)
    log(f"preview: {path} (rows: {'; '.join(prompts)})")


def main():
    global SEED
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for the log, the diffusers export and previews")
    parser.add_argument("--resume", help="the shipped GGUF or an exported diffusers folder")
    parser.add_argument("--vae-steps", type=int, default=None, help="default 10000 (0 with --resume)")
    parser.add_argument("--vae-batch", type=int, default=4)
    parser.add_argument("--vae-lr", type=float, default=1e-3)
    parser.add_argument("--vae-kl", type=float, default=1e-6)
    parser.add_argument("--vae-decorrelate", type=float, default=0.0,
                        help="weight of the latent channels' mean squared correlation in the VAE's loss")
    parser.add_argument("--vae-groups", type=int, default=VAE_GROUPS,
                        help="GroupNorm groups in the VAE (its 32 channels split evenly; a resumed VAE must match)")
    parser.add_argument("--vae-shape-weight", type=float, default=4.0,
                        help="extra L1 weight on the shape's pixels (see shape_weight)")
    parser.add_argument("--vae-decoder-steps", type=int, default=0,
                        help="then fine-tune the VAE's decoder alone for N steps (the latents stay as they are)")
    parser.add_argument("--images", type=int, default=10000, help="size of the UNet's (encoded) data set")
    parser.add_argument("--unet-steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=48)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--ema", type=float, default=0.995)
    parser.add_argument("--caption-dropout", type=float, default=0.1)
    parser.add_argument("--snr-gamma", type=float, default=5.0,
                        help="min-SNR loss weighting of the UNet stage (0: plain MSE, as runs before it)")
    parser.add_argument("--checkpoint-every", type=int, default=0,
                        help="also export the EMA weights every N UNet steps to OUT/step-N (0: only at the end)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads (2 on an idle 2-core machine; 1 on a shared one, where two threads stall on each other)")
    args = parser.parse_args()
    if args.vae_steps is None:
        args.vae_steps = 0 if args.resume else 10000

    SEED = args.seed
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    os.makedirs(args.out, exist_ok=True)
    log = Log(os.path.join(args.out, "train.log"))
    import diffusers
    import transformers
    log(f"train-demo: {vars(args)}; torch {torch.__version__}, diffusers {diffusers.__version__}, "
        f"transformers {transformers.__version__}, {torch.get_num_threads()} threads")

    vae, unet, text = build_models(args.vae_groups)
    if args.resume:
        load_weights(vae, unet, text, args.resume)
        log(f"resumed from {args.resume}")
    for name, module in (("vae", vae), ("unet", unet), ("text encoder", text)):
        log(f"{name}: {sum(p.numel() for p in module.parameters()) / 1e6:.3f}M parameters")
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = make_tokenizer(os.path.join(tmp, "tokenizer"))
    if args.vae_steps > 0:
        train_vae(vae, args, log)
        standardise_latents(vae, log)
        check_vae(vae, os.path.join(args.out, "vae-check.png"), log)
    if args.vae_decoder_steps > 0:
        train_vae_decoder(vae, args, log)
        check_vae(vae, os.path.join(args.out, "vae-check.png"), log)
    vae.eval()
    palette_check(vae, log)
    for p in vae.parameters():
        p.requires_grad_(False)
    data = encode_dataset(vae, tokenizer, args, log)
    def checkpoint(step, ema):
        """Exports copies carrying the EMA weights, so training goes on undisturbed."""
        import copy
        unet_copy, text_copy = copy.deepcopy(unet), copy.deepcopy(text)
        with torch.no_grad():
            for e, p in zip(ema, list(unet_copy.parameters()) + list(text_copy.parameters())):
                p.copy_(e)
        zero_unused_tokens(text_copy, tokenizer)
        folder = os.path.join(args.out, f"step-{step}", "diffusers")
        export(vae, unet_copy, text_copy, folder)
        log(f"checkpoint: {folder}")

    if args.unet_steps > 0:
        train_unet(unet, text, data, tokenizer, args, log, on_checkpoint=checkpoint)
    kept = zero_unused_tokens(text, tokenizer)
    log(f"token embedding: kept the {kept} rows of the caption vocabulary, zeroed the rest")
    folder = os.path.join(args.out, "diffusers")
    export(vae, unet, text, folder)
    log(f"exported {folder}")
    preview(vae, unet, text, tokenizer, os.path.join(args.out, "preview.png"), log)
    log("done")


if __name__ == "__main__":
    main()
