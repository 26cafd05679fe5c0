// Elementwise and resampling maths the pipelines do between network calls, in float32 as torch
// does it on CPU tensors (each operation rounded once), so that a seed gives diffusers' latents.
import { Tensor } from './tensor.js';
import { ArgumentRangeError } from './errors.js';

/** `t` · factor. */
export function scale(t: Tensor, factor: number): Tensor {
  const out = new Float32Array(t.size);
  const f = Math.fround(factor);
  for (let i = 0; i < t.size; i++) out[i] = t.data[i]! * f;
  return new Tensor(t.shape, out);
}

/** `t` [b, ...] repeated `times` along the batch: [b · times, ...] (torch's `repeat`). */
export function repeatBatch(t: Tensor, times: number): Tensor {
  if (times === 1) return t;
  const out = new Float32Array(t.size * times);
  for (let i = 0; i < times; i++) out.set(t.data, i * t.size);
  return new Tensor([t.shape[0]! * times, ...t.shape.slice(1)], out);
}

/** Batches `t` to `batch` items by repetition (1 → batch), or returns it when it already has them. */
export function toBatch(t: Tensor, batch: number, name: string): Tensor {
  const have = t.shape[0]!;
  if (have === batch) return t;
  if (have === 1) return repeatBatch(t, batch);
  throw new ArgumentRangeError(`Expected ${name} with 1 or ${batch} (batchSize) items but received ${have}`);
}

export function concatBatch(a: Tensor, b: Tensor): Tensor {
  const out = new Float32Array(a.size + b.size);
  out.set(a.data, 0);
  out.set(b.data, a.size);
  return new Tensor([a.shape[0]! + b.shape[0]!, ...a.shape.slice(1)], out);
}

/** [B, Ca, H, W] and [B, Cb, H, W] → [B, Ca + Cb, H, W] (torch.cat on dim 1). */
export function concatChannels(a: Tensor, b: Tensor): Tensor {
  const [batch, ca, h, w] = a.shape as [number, number, number, number];
  const cb = b.shape[1]!;
  const plane = h * w;
  const out = new Float32Array(batch * (ca + cb) * plane);
  for (let n = 0; n < batch; n++) {
    out.set(a.data.subarray(n * ca * plane, (n + 1) * ca * plane), n * (ca + cb) * plane);
    out.set(b.data.subarray(n * cb * plane, (n + 1) * cb * plane), (n * (ca + cb) + ca) * plane);
  }
  return new Tensor([batch, ca + cb, h, w], out);
}

/** [uncond; cond] → uncond + g · (cond − uncond). */
export function guide(prediction: Tensor, g: number): Tensor {
  const half = prediction.size / 2;
  const out = new Float32Array(half);
  const scaleF = Math.fround(g);
  const d = prediction.data;
  for (let i = 0; i < half; i++) {
    const u = d[i]!;
    const diff = Math.fround(d[half + i]! - u);
    out[i] = u + Math.fround(scaleF * diff);
  }
  return new Tensor([prediction.shape[0]! / 2, ...prediction.shape.slice(1)], out);
}

/** Pixels in [0, 1] → [-1, 1] (2x − 1), what the VAE encoder takes. */
export function toSignedRange(t: Tensor): Tensor {
  const out = new Float32Array(t.size);
  for (let i = 0; i < t.size; i++) out[i] = Math.fround(2 * t.data[i]!) - 1;
  return new Tensor(t.shape, out);
}

/** VAE output in [-1, 1] → (x / 2 + 0.5) clamped to [0, 1]. */
export function toUnitRange(t: Tensor): Tensor {
  const out = new Float32Array(t.size);
  for (let i = 0; i < t.size; i++) {
    const v = Math.fround(Math.fround(t.data[i]! / 2) + 0.5);
    out[i] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
  return new Tensor(t.shape, out);
}

/** A mask in [0, 1] → 0 below 0.5, 1 from 0.5 up (diffusers' mask binarization). */
export function binarize(mask: Tensor): Tensor {
  const out = new Float32Array(mask.size);
  for (let i = 0; i < mask.size; i++) out[i] = mask.data[i]! < 0.5 ? 0 : 1;
  return new Tensor(mask.shape, out);
}

/** image [B, 3, H, W] with the binary mask [Bm, 1, H, W] (Bm 1 or B): kept where the mask is 0, zero where 1. */
export function maskOut(image: Tensor, mask: Tensor): Tensor {
  const [batch, channels, h, w] = image.shape as [number, number, number, number];
  const plane = h * w;
  const out = new Float32Array(image.size);
  for (let n = 0; n < batch; n++) {
    const m = mask.data.subarray((mask.shape[0] === 1 ? 0 : n) * plane);
    for (let c = 0; c < channels; c++) {
      const base = (n * channels + c) * plane;
      for (let i = 0; i < plane; i++) out[base + i] = m[i]! < 0.5 ? image.data[base + i]! : 0;
    }
  }
  return new Tensor(image.shape, out);
}

/** (1 − mask) · kept + mask · generated, the mask [B, 1, h, w] broadcast over channels. */
export function blendMasked(kept: Tensor, generated: Tensor, mask: Tensor): Tensor {
  const [batch, channels, h, w] = kept.shape as [number, number, number, number];
  const plane = h * w;
  const out = new Float32Array(kept.size);
  for (let n = 0; n < batch; n++) {
    for (let c = 0; c < channels; c++) {
      const base = (n * channels + c) * plane;
      for (let i = 0; i < plane; i++) {
        const m = mask.data[n * plane + i]!;
        out[base + i] = Math.fround(Math.fround(1 - m) * kept.data[base + i]!) + Math.fround(m * generated.data[base + i]!);
      }
    }
  }
  return new Tensor(kept.shape, out);
}

/** Each item of [B, ...] mapped linearly from its own [min, max] to [-1, 1] (diffusers' depth normalisation). */
export function normalizePerItem(t: Tensor): Tensor {
  const per = t.size / t.shape[0]!;
  const out = new Float32Array(t.size);
  for (let n = 0; n < t.shape[0]!; n++) {
    const item = t.data.subarray(n * per, (n + 1) * per);
    let min = Infinity;
    let max = -Infinity;
    for (const v of item) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const range = Math.fround(max - min);
    if (!(range > 0) || !Number.isFinite(range)) {
      throw new ArgumentRangeError('Expected a depth map with finite values that are not all equal');
    }
    for (let i = 0; i < per; i++) {
      out[n * per + i] = Math.fround(Math.fround(2 * Math.fround(item[i]! - min)) / range) - 1;
    }
  }
  return new Tensor(t.shape, out);
}
