// transformers' DPTImageProcessor as diffusers' depth pipeline runs it (its feature_extractor) on
// 8-bit images: resize to the configured height × width with PIL's resampling (bicubic in every
// depth model; the aspect ratio is not kept), then (x / 255 − mean) / std, mean and std 0.5 unless
// the config says otherwise. The resampling is Pillow's (lib/clip-image-processor.ts), so the
// pixel values match transformers' to the byte before rescaling.
import { readFileSync } from 'node:fs';

import { resizeBicubicLikePil } from './clip-image-processor.js';
import { StableDiffusionError } from './errors.js';
import { Tensor } from './tensor.js';

/** The settings of a DPT feature extractor that the depth pipeline uses. */
export interface DptProcessorConfig {
  /** The network's input side, [height, width]. */
  size: [number, number];
  /** Per-channel mean (RGB) subtracted after rescaling. */
  mean: [number, number, number];
  /** Per-channel standard deviation (RGB). */
  std: [number, number, number];
  /** The factor from 8-bit values to [0, 1] (1/255). */
  rescaleFactor: number;
}

/** transformers' defaults (DPTImageProcessor, IMAGENET_STANDARD mean and std) at `imageSize`. */
export function defaultDptProcessor(imageSize: number): DptProcessorConfig {
  return { size: [imageSize, imageSize], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], rescaleFactor: 1 / 255 };
}

function bad(path: string, why: string): never {
  throw new StableDiffusionError('ERR_DEPTH_ESTIMATOR_FORMAT', `Unsupported depth feature extractor config ${path}: ${why}`, { path });
}

function triple(value: unknown, path: string, key: string, fallback: [number, number, number]): [number, number, number] {
  if (value === undefined || value === null) return fallback;
  if (typeof value === 'number' && Number.isFinite(value)) return [value, value, value];
  if (Array.isArray(value) && value.length === 3 && value.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    return value as [number, number, number];
  }
  return bad(path, `${key} is not a number or a list of 3`);
}

/**
 * A diffusers depth folder's feature_extractor/preprocessor_config.json, read with the defaults
 * of transformers' DPTImageProcessor for what it leaves out. Settings the depth pipeline never
 * meets (kept aspect ratio, padding, resampling other than bicubic) are refused with
 * ERR_DEPTH_ESTIMATOR_FORMAT rather than computed differently.
 */
export function readDptProcessorConfig(path: string, imageSize: number): DptProcessorConfig {
  let json: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return bad(path, 'not a JSON object');
    json = parsed as Record<string, unknown>;
  } catch (error) {
    if (error instanceof StableDiffusionError) throw error;
    return bad(path, (error as Error).message);
  }
  const out = defaultDptProcessor(imageSize);
  const size = json.size;
  if (typeof size === 'number' && Number.isInteger(size) && size > 0) out.size = [size, size];
  else if (size !== undefined && size !== null) {
    const s = size as { height?: unknown; width?: unknown };
    if (typeof s !== 'object' || !Number.isInteger(s.height) || !Number.isInteger(s.width)) return bad(path, 'size is not {height, width}');
    out.size = [s.height as number, s.width as number];
  }
  out.mean = triple(json.image_mean, path, 'image_mean', out.mean);
  out.std = triple(json.image_std, path, 'image_std', out.std);
  if (out.std.some((v) => v === 0)) bad(path, 'image_std has a 0');
  if (json.rescale_factor !== undefined) {
    if (typeof json.rescale_factor !== 'number' || !Number.isFinite(json.rescale_factor)) return bad(path, 'rescale_factor is not a number');
    out.rescaleFactor = json.rescale_factor;
  }
  if (json.do_rescale === false) out.rescaleFactor = 1;
  if (json.do_normalize === false) {
    out.mean = [0, 0, 0];
    out.std = [1, 1, 1];
  }
  if (json.do_resize === false) bad(path, 'do_resize is false (the network takes one size)');
  if (json.keep_aspect_ratio === true) bad(path, 'keep_aspect_ratio is not supported');
  if (json.do_pad === true) bad(path, 'do_pad is not supported');
  if (json.ensure_multiple_of !== undefined && json.ensure_multiple_of !== 1) bad(path, 'ensure_multiple_of other than 1 is not supported');
  if (json.resample !== undefined && json.resample !== 3) bad(path, 'resample is not 3 (bicubic)');
  if (out.size[0] !== imageSize || out.size[1] !== imageSize) {
    bad(path, `size ${out.size[0]}×${out.size[1]} is not the network's ${imageSize}×${imageSize}`);
  }
  return out;
}

/**
 * One image's interleaved RGB bytes → pixel values [1, 3, H, W] as DPTImageProcessor gives them
 * (float32, as numpy computes them).
 */
export function dptPixelValues(rgb: Uint8Array, width: number, height: number, config: DptProcessorConfig): Tensor {
  const [toHeight, toWidth] = config.size;
  const resized = resizeBicubicLikePil(rgb, width, height, toWidth, toHeight);
  const plane = toWidth * toHeight;
  const out = new Float32Array(3 * plane);
  const factor = Math.fround(config.rescaleFactor);
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(config.mean[c]!);
    const std = Math.fround(config.std[c]!);
    for (let i = 0; i < plane; i++) {
      const v = Math.fround(resized[i * 3 + c]! * factor);
      out[c * plane + i] = Math.fround(Math.fround(v - mean) / std);
    }
  }
  return new Tensor([1, 3, toHeight, toWidth], out);
}
