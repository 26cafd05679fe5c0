// A1111's hires fix as a composition of our pieces: the first pass's latents are enlarged (in
// latent space by torch's interpolation, or decoded, enlarged in pixels and encoded again),
// cropped to the target when both sides were given, and denoised again as img2img does with a
// generator seeded afresh with the same seed (A1111 draws the second pass's noise from the same
// seeds). diffusers' StableDiffusionImg2ImgPipeline given those latents (or that image) with
// strength = denoising strength is the reference (tools/goldens/make_hires_goldens.py).
import { ArgumentRangeError, ArgumentTypeError } from '../errors.js';
import { resizeImage } from '../image.js';
import { interpolate, type InterpolationMode } from '../interpolate.js';
import { TorchGenerator } from '../rng.js';
import { Tensor } from '../tensor.js';
import { scale, toSignedRange, toUnitRange } from '../tensor-ops.js';
import type { HiresParameters } from '../types.js';
import { Upscaler } from '../upscaler.js';
import { describe, expectInteger, expectKnownKeys, expectNumber, expectObject, expectOneOf } from '../validate.js';
import { denoise, finish, throwIfAborted, type Run } from './denoise.js';
import { encodeSample, timestepsForStrength } from './from-image.js';
import { checkSide, type CheckedOptions } from './options.js';
import { HIRES_OPTIONS, HIRES_UPSCALERS, type GenerationResult, type HiresUpscalerName, type PipelineModel } from './types.js';

const MAX_SCALE = 8;
const MAX_SIDE = 8192;

const LATENT_MODES: Partial<Record<HiresUpscalerName, InterpolationMode>> = {
  'latent': 'bilinear',
  'latent-antialiased': 'bilinear-antialiased',
  'latent-bicubic': 'bicubic',
  'latent-bicubic-antialiased': 'bicubic-antialiased',
  'latent-nearest': 'nearest',
  'latent-nearest-exact': 'nearest-exact',
};

/** A1111's names of the upscalers, as its infotext and /sdapi/v1/latent-upscale-modes write them. */
export const A1111_HIRES_UPSCALER_NAMES: Record<HiresUpscalerName, string> = {
  'latent': 'Latent',
  'latent-antialiased': 'Latent (antialiased)',
  'latent-bicubic': 'Latent (bicubic)',
  'latent-bicubic-antialiased': 'Latent (bicubic antialiased)',
  'latent-nearest': 'Latent (nearest)',
  'latent-nearest-exact': 'Latent (nearest-exact)',
  'lanczos': 'Lanczos',
  'nearest': 'Nearest',
};

/** The hires options once checked. */
export interface CheckedHires {
  scale: number | undefined;
  width: number | undefined;
  height: number | undefined;
  upscaler: HiresUpscalerName | Upscaler;
  steps: number;
  denoisingStrength: number;
}

/** options.hires checked, with the target size and the second pass's steps, before any work. */
export function checkHires(value: unknown, o: CheckedOptions, firstWidth: number, firstHeight: number): CheckedHires {
  const h = expectObject(value, 'options.hires');
  expectKnownKeys(h, 'options.hires', HIRES_OPTIONS);
  const width = checkSide(h.width, 'hires.width');
  const height = checkSide(h.height, 'hires.height');
  if (h.scale !== undefined && (width !== undefined || height !== undefined)) {
    throw new ArgumentTypeError('options.hires takes either scale or a target width/height, not both');
  }
  let upscaler: HiresUpscalerName | Upscaler = 'latent';
  if (h.upscaler instanceof Upscaler) upscaler = h.upscaler;
  else if (typeof h.upscaler === 'string') upscaler = expectOneOf(h.upscaler, 'options.hires.upscaler', HIRES_UPSCALERS);
  else if (h.upscaler !== undefined) {
    throw new ArgumentTypeError(`Expected options.hires.upscaler to be one of ${HIRES_UPSCALERS.join(', ')} or an Upscaler but received ${describe(h.upscaler)}`);
  }
  const checked: CheckedHires = {
    scale: h.scale === undefined ? (width === undefined && height === undefined ? 2 : undefined) : expectNumber(h.scale, 'hires.scale', 1, MAX_SCALE),
    width,
    height,
    upscaler,
    steps: h.steps === undefined ? o.steps : expectInteger(h.steps, 'hires.steps', 1, 1000),
    denoisingStrength: h.denoisingStrength === undefined ? 0.7 : expectNumber(h.denoisingStrength, 'hires.denoisingStrength', 0, 1),
  };
  if (Math.floor(checked.steps * checked.denoisingStrength) < 1) {
    throw new ArgumentRangeError(
      `Expected hires steps × denoisingStrength to leave at least one step but ${checked.steps} × ${checked.denoisingStrength} leaves none`,
    );
  }
  const size = latentSize(hiresTarget(firstWidth, firstHeight, checked));
  if (size.width < 1 || size.height < 1 || size.width * 8 > MAX_SIDE || size.height * 8 > MAX_SIDE) {
    throw new ArgumentRangeError(`Expected a hires size between 8 and ${MAX_SIDE} pixels a side but ${firstWidth}×${firstHeight} makes ${size.width * 8}×${size.height * 8}`);
  }
  return checked;
}

/** The latents' size after enlarging and cropping. */
function latentSize(t: HiresTarget): { width: number; height: number } {
  return { width: Math.floor(t.upscaleWidth / 8) - t.cropX, height: Math.floor(t.upscaleHeight / 8) - t.cropY };
}

/** Where the hires fix goes: the size it enlarges to, and the latent rows and columns then cropped. */
export interface HiresTarget {
  upscaleWidth: number;
  upscaleHeight: number;
  cropX: number;
  cropY: number;
}

/** A1111's target: ⌊side · scale⌋, or the given side(s) with the aspect kept, covering both when both are given. */
export function hiresTarget(width: number, height: number, h: Pick<CheckedHires, 'scale' | 'width' | 'height'>): HiresTarget {
  const rx = h.width ?? 0;
  const ry = h.height ?? 0;
  if (rx === 0 && ry === 0) {
    return { upscaleWidth: Math.floor(width * h.scale!), upscaleHeight: Math.floor(height * h.scale!), cropX: 0, cropY: 0 };
  }
  if (ry === 0) return { upscaleWidth: rx, upscaleHeight: Math.floor((rx * height) / width), cropX: 0, cropY: 0 };
  if (rx === 0) return { upscaleWidth: Math.floor((ry * width) / height), upscaleHeight: ry, cropX: 0, cropY: 0 };
  const wider = width / height < rx / ry;
  const upscaleWidth = wider ? rx : Math.floor((ry * width) / height);
  const upscaleHeight = wider ? Math.floor((rx * height) / width) : ry;
  return { upscaleWidth, upscaleHeight, cropX: Math.floor((upscaleWidth - rx) / 8), cropY: Math.floor((upscaleHeight - ry) / 8) };
}

/** The centre of [B, C, H, W] with `cropY` rows and `cropX` columns removed (the extra one at the end). */
function cropLatents(t: Tensor, cropX: number, cropY: number): Tensor {
  if (cropX === 0 && cropY === 0) return t;
  const [batch, channels, h, w] = t.shape as [number, number, number, number];
  const top = Math.floor(cropY / 2);
  const left = Math.floor(cropX / 2);
  const outH = h - cropY;
  const outW = w - cropX;
  const out = new Float32Array(batch * channels * outH * outW);
  for (let p = 0; p < batch * channels; p++) {
    for (let y = 0; y < outH; y++) {
      const from = p * h * w + (top + y) * w + left;
      out.set(t.data.subarray(from, from + outW), (p * outH + y) * outW);
    }
  }
  return new Tensor([batch, channels, outH, outW], out);
}

function upscalerLabel(upscaler: HiresUpscalerName | Upscaler): string {
  if (typeof upscaler === 'string') return A1111_HIRES_UPSCALER_NAMES[upscaler];
  return upscaler.info.path.replace(/^.*[\\/]/, '').replace(/\.[^.]*$/, '');
}

/** The first pass's latents enlarged in pixels (decode, resize or upscale, encode with the second run's generator). */
async function enlargeInPixels(model: PipelineModel, run: Run, latents: Tensor, upscaler: 'lanczos' | 'nearest' | Upscaler, width: number, height: number): Promise<Tensor> {
  const decoded = run.o.tinyVae ? await model.tinyVae!.decode(latents) : await model.vae.decode(scale(latents, 1 / model.vae.scalingFactor));
  let image = toUnitRange(decoded);
  throwIfAborted(run.o.signal);
  if (upscaler instanceof Upscaler) {
    const factor = Math.min(Math.max(width / image.shape[3]!, height / image.shape[2]!), MAX_SCALE);
    image = (await upscaler.upscale(image, { scale: Math.max(factor, 1), ...(run.o.signal && { signal: run.o.signal }) })).images;
  }
  image = await resizeImage(image, width, height, upscaler === 'nearest' ? 'nearest' : 'lanczos3');
  return encodeSample(model, run, toSignedRange(image));
}

/** The second pass of the hires fix, after the first pass (`first`, with its run) at width × height. */
export async function hiresPass(model: PipelineModel, first: Run, latents: Tensor, h: CheckedHires): Promise<GenerationResult> {
  const target = hiresTarget(first.width, first.height, h);
  const latentWidth = Math.floor(target.upscaleWidth / 8);
  const latentHeight = Math.floor(target.upscaleHeight / 8);
  const o: CheckedOptions = { ...first.o, steps: h.steps };
  const timesteps = timestepsForStrength(o, h.denoisingStrength);
  const { width, height } = latentSize(target);
  const run: Run = { ...first, o, width: width * 8, height: height * 8, generator: new TorchGenerator(o.seed), pass: 'hires' };
  const mode = typeof h.upscaler === 'string' ? LATENT_MODES[h.upscaler] : undefined;
  const enlarged = mode !== undefined
    ? interpolate(latents, latentHeight, latentWidth, mode)
    : await enlargeInPixels(model, run, latents, h.upscaler as 'lanczos' | 'nearest' | Upscaler, latentWidth * 8, latentHeight * 8);
  const start = cropLatents(enlarged, target.cropX, target.cropY);
  const noise = await run.generator.randn(start.shape);
  const noised = o.scheduler.addNoise(start, noise, Array.from({ length: o.batchSize }, () => timesteps[0]!));
  const result = await finish(model, run, await denoise(model, run, noised, timesteps), 'txt2img', h.denoisingStrength);
  const hires: HiresParameters = {
    firstWidth: first.width,
    firstHeight: first.height,
    ...(h.scale !== undefined ? { scale: h.scale } : { resizeWidth: h.width ?? 0, resizeHeight: h.height ?? 0 }),
    upscaler: upscalerLabel(h.upscaler),
    steps: h.steps,
  };
  result.parameters.steps = first.o.steps;
  result.parameters.hires = hires;
  return result;
}
