// Resizing [B, C, H, W] tensors as torch.nn.functional.interpolate does (align_corners False):
// the latent upscale of the hires fix, the inpainting mask and the depth map at latent size.
// Every mode is separable, so each is a list of taps (source indices and weights) per output
// row and per output column, applied rows then columns by one loop.
import { Tensor } from './tensor.js';

/**
 * How latents are resized, A1111's latent upscale modes: torch's bilinear and bicubic (each also
 * antialiased: a filter widened to the scale when shrinking, as PIL does), nearest (index
 * ⌊i · in/out⌋) and nearest-exact (index ⌊(i + ½) · in/out⌋).
 */
export const INTERPOLATION_MODES = ['bilinear', 'bilinear-antialiased', 'bicubic', 'bicubic-antialiased', 'nearest', 'nearest-exact'] as const;
/** One of INTERPOLATION_MODES. */
export type InterpolationMode = (typeof INTERPOLATION_MODES)[number];

interface Taps {
  indices: number[];
  weights: number[];
}

/** [B, C, H, W] → [B, C, outH, outW], as F.interpolate(t, size=(outH, outW), mode, antialias). */
export function interpolate(t: Tensor, outH: number, outW: number, mode: InterpolationMode): Tensor {
  const [batch, channels, h, w] = t.shape as [number, number, number, number];
  const rows = taps(mode, h, outH);
  const cols = taps(mode, w, outW);
  const out = new Float32Array(batch * channels * outH * outW);
  let o = 0;
  for (let p = 0; p < batch * channels; p++) {
    const plane = t.data.subarray(p * h * w, (p + 1) * h * w);
    for (const row of rows) {
      for (const col of cols) {
        let sum = 0;
        for (let j = 0; j < row.indices.length; j++) {
          const line = row.indices[j]! * w;
          let partial = 0;
          for (let i = 0; i < col.indices.length; i++) partial += col.weights[i]! * plane[line + col.indices[i]!]!;
          sum += row.weights[j]! * partial;
        }
        out[o++] = sum;
      }
    }
  }
  return new Tensor([batch, channels, outH, outW], out);
}

function taps(mode: InterpolationMode, inSize: number, outSize: number): Taps[] {
  switch (mode) {
    case 'nearest':
    case 'nearest-exact': {
      // torch computes the scale and the source position in float32.
      const scale = Math.fround(inSize / outSize);
      const offset = mode === 'nearest' ? 0 : 0.5;
      return Array.from({ length: outSize }, (_, i) => ({
        indices: [Math.min(Math.floor(Math.fround((i + offset) * scale)), inSize - 1)],
        weights: [1],
      }));
    }
    case 'bilinear':
      return linearTaps(inSize, outSize);
    case 'bicubic':
      return cubicTaps(inSize, outSize);
    case 'bilinear-antialiased':
      return antialiasedTaps(inSize, outSize, 1, triangle);
    case 'bicubic-antialiased':
      return antialiasedTaps(inSize, outSize, 2, (x) => keys(x, -0.5));
  }
}

/** Two taps around the source position (clamped at 0 from below, the last index repeated). */
function linearTaps(inSize: number, outSize: number): Taps[] {
  const scale = inSize / outSize;
  return Array.from({ length: outSize }, (_, i) => {
    const real = Math.max(scale * (i + 0.5) - 0.5, 0);
    const index = Math.floor(real);
    const next = index < inSize - 1 ? index + 1 : index;
    const f = real - index;
    return { indices: [index, next], weights: [1 - f, f] };
  });
}

/** Keys' cubic convolution kernel with parameter a (torch: −0.75 plain, −0.5 antialiased). */
function keys(x: number, a: number): number {
  const d = Math.abs(x);
  if (d < 1) return ((a + 2) * d - (a + 3)) * d * d + 1;
  if (d < 2) return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a;
  return 0;
}

function triangle(x: number): number {
  const d = Math.abs(x);
  return d < 1 ? 1 - d : 0;
}

/** Four taps around the source position, indices clamped at the edges. */
function cubicTaps(inSize: number, outSize: number): Taps[] {
  const scale = inSize / outSize;
  const clamp = (k: number) => Math.min(Math.max(k, 0), inSize - 1);
  return Array.from({ length: outSize }, (_, i) => {
    const real = scale * (i + 0.5) - 0.5;
    const index = Math.floor(real);
    const f = real - index;
    return {
      indices: [clamp(index - 1), clamp(index), clamp(index + 1), clamp(index + 2)],
      weights: [keys(f + 1, -0.75), keys(f, -0.75), keys(1 - f, -0.75), keys(2 - f, -0.75)],
    };
  });
}

/**
 * torch's antialiased kernels (PIL's resampling): the filter of half-width `radius` is stretched
 * by the scale when shrinking, only the source pixels inside the image take part, and the
 * weights are normalised to sum to 1.
 */
function antialiasedTaps(inSize: number, outSize: number, radius: number, filter: (x: number) => number): Taps[] {
  const scale = inSize / outSize;
  const support = scale >= 1 ? radius * scale : radius;
  const invScale = scale >= 1 ? 1 / scale : 1;
  return Array.from({ length: outSize }, (_, i) => {
    const center = scale * (i + 0.5);
    const first = Math.max(Math.trunc(center - support + 0.5), 0);
    const end = Math.min(Math.trunc(center + support + 0.5), inSize);
    const indices: number[] = [];
    const weights: number[] = [];
    for (let k = first; k < end; k++) {
      indices.push(k);
      weights.push(filter((k - center + 0.5) * invScale));
    }
    const total = weights.reduce((a, b) => a + b, 0);
    return { indices, weights: total === 0 ? weights : weights.map((v) => v / total) };
  });
}
