// Images in requests (base64, optionally as a data: URL, as A1111 takes them) checked at the edge,
// and what the img2img endpoint does to masks around our inpaint pipeline: A1111's inversion and
// blur, and the original pasted back outside the (blurred) mask.
import sharp, { type Metadata } from 'sharp';

import { Tensor } from '../../tensor.js';
import { fieldName, invalidField } from '../http/errors.js';
import { LIMITS } from '../schemas/generate.js';

/** A request's image: its encoded bytes (decoded when the job runs) and its size. */
export interface EncodedImage {
  data: Buffer;
  width: number;
  height: number;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * A base64 image (or `data:image/…;base64,…`) → its bytes and size; 422 naming `path` when it is
 * not base64, not an image sharp reads, or larger than the input limit.
 */
export async function decodeImage(text: string, path: (string | number)[]): Promise<EncodedImage> {
  const name = fieldName(path);
  let payload = text;
  if (payload.startsWith('data:')) {
    const comma = payload.indexOf(',');
    if (comma < 0 || !/;base64$/i.test(payload.slice(0, comma))) throw invalidField(path, `${name} is a data: URL without base64 data`, 'base64');
    payload = payload.slice(comma + 1);
  }
  if (/^https?:\/\//i.test(payload)) throw invalidField(path, `${name} is a URL; this server takes images as base64 only`, 'base64');
  payload = payload.replace(/\s+/g, '');
  if (payload.length === 0) throw invalidField(path, `${name} is empty`, 'base64');
  if (!BASE64.test(payload) || payload.length % 4 === 1) throw invalidField(path, `${name} is not valid base64`, 'base64');
  const data = Buffer.from(payload, 'base64');
  let meta: Metadata;
  try {
    meta = await sharp(data, { limitInputPixels: LIMITS.inputSide * LIMITS.inputSide }).metadata();
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).split('\n')[0];
    throw invalidField(path, `${name} is not an image this server can read (${reason})`, 'image');
  }
  const { width, height } = orientedSize(meta);
  if (width > LIMITS.inputSide || height > LIMITS.inputSide) {
    throw invalidField(path, `${name} is ${width}×${height}; images may be at most ${LIMITS.inputSide} pixels on a side`, 'image');
  }
  return { data, width, height };
}

/** The size after EXIF orientation, as readImage (autoOrient) will see it. */
function orientedSize(meta: Metadata): { width: number; height: number } {
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  return meta.orientation !== undefined && meta.orientation >= 5 ? { width: h, height: w } : { width: w, height: h };
}

/**
 * A1111's mask handling before generation: inverted when asked, then blurred by a Gaussian of
 * σ = blur on each axis with A1111's kernel width 2·⌊2.5σ + 0.5⌋ + 1 (libvips does the work,
 * off the event loop). Mask [1, 1, H, W] in [0, 1].
 */
export async function prepareMask(mask: Tensor, invert: boolean, blurX: number, blurY: number): Promise<Tensor> {
  const [, , height, width] = mask.shape as [number, number, number, number];
  const bytes = Buffer.alloc(width * height);
  for (let i = 0; i < bytes.length; i++) {
    const v = Math.round(mask.data[i]! * 255);
    bytes[i] = invert ? 255 - v : v;
  }
  let image = sharp(bytes, { raw: { width, height, channels: 1 } });
  for (const [sigma, horizontal] of [[blurX, true], [blurY, false]] as const) {
    if (sigma <= 0) continue;
    const blurred = await image.convolve(kernel(sigma, horizontal)).toColourspace('b-w').raw().toBuffer();
    image = sharp(blurred, { raw: { width, height, channels: 1 } });
  }
  const data = await image.toColourspace('b-w').raw().toBuffer();
  const out = new Float32Array(width * height);
  for (let i = 0; i < out.length; i++) out[i] = data[i]! / 255;
  return new Tensor([1, 1, height, width], out);
}

// libvips takes 2-D kernels of at least 3×3: a 1-D Gaussian goes in the middle row (or column).
function kernel(sigma: number, horizontal: boolean): { width: number; height: number; kernel: number[]; scale: number } {
  const r = Math.floor(2.5 * sigma + 0.5);
  const n = Math.max(3, 2 * r + 1);
  const line = Array.from({ length: n }, (_, i) => Math.exp(-((i - (n - 1) / 2) ** 2) / (2 * sigma * sigma)));
  const values = new Array<number>(3 * n).fill(0);
  for (let i = 0; i < n; i++) values[horizontal ? n + i : i * 3 + 1] = line[i]!;
  return { width: horizontal ? n : 3, height: horizontal ? 3 : n, kernel: values, scale: line.reduce((a, b) => a + b, 0) };
}

/**
 * A1111's overlay: the generated image where the mask is white, the original where it is
 * black, blended by the blurred mask doubled and clipped (as A1111 makes its overlay mask, so
 * the repainted area keeps its full extent). images [1, 3, H, W], mask [1, 1, H, W], in [0, 1].
 */
export function pasteOriginal(generated: Tensor, original: Tensor, mask: Tensor): Tensor {
  const plane = mask.size;
  const out = new Float32Array(generated.size);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < plane; i++) {
      const m = Math.min(1, 2 * mask.data[i]!);
      const j = c * plane + i;
      out[j] = generated.data[j]! * m + original.data[j]! * (1 - m);
    }
  }
  return new Tensor(generated.shape, out);
}
