// What img2img, inpaint and depth2img share: the input image at the generation's size, the
// timesteps that strength leaves, and the VAE's latent distribution sampled with the run's
// generator.
import { readImage, resizeImage } from '../image.js';
import { Tensor } from '../tensor.js';
import { toBatch, toSignedRange } from '../tensor-ops.js';
import { throwIfAborted, type Run } from './denoise.js';
import type { CheckedOptions } from './options.js';
import type { PipelineModel } from './types.js';
import { ArgumentRangeError, ArgumentTypeError } from '../errors.js';

/** The image at the requested size (default: its own, rounded down to a multiple of 8), batched. */
export async function prepareImage(input: unknown, o: CheckedOptions): Promise<{ image: Tensor; width: number; height: number }> {
  let image = await readImage(input, 'options.image');
  const width = o.width ?? Math.floor(image.shape[3]! / 8) * 8;
  const height = o.height ?? Math.floor(image.shape[2]! / 8) * 8;
  if (width < 8 || height < 8) {
    throw new ArgumentRangeError(`Expected an image at least 8×8 pixels but received ${image.shape[3]}×${image.shape[2]}`);
  }
  image = await resizeImage(image, width, height);
  toBatch(image, o.batchSize, 'options.image'); // checks the count before any network call
  return { image, width, height };
}

/**
 * diffusers' get_timesteps: the last ⌊steps · strength⌋ steps of the schedule. Schedulers with
 * a step index are told where the loop begins.
 */
export function timestepsForStrength(o: CheckedOptions, strength: number): number[] {
  const scheduler = o.scheduler;
  scheduler.setTimesteps(o.steps);
  const kept = Math.min(Math.floor(o.steps * strength), o.steps);
  const start = Math.max(o.steps - kept, 0) * scheduler.order;
  const timesteps = scheduler.timesteps.slice(start);
  if (kept < 1 || timesteps.length === 0) {
    throw new ArgumentRangeError(
      `Expected strength × steps to leave at least one denoising step but strength ${strength} with ${o.steps} steps leaves none`,
    );
  }
  if (scheduler.hasBeginIndex) scheduler.setBeginIndex(start);
  return timesteps;
}

/**
 * The VAE's latent distribution sampled with the run's generator and scaled by the scaling
 * factor (diffusers' retrieve_latents(vae.encode(image), generator) · scaling_factor).
 */
export async function encodeSample(model: PipelineModel, run: Run, signedImage: Tensor): Promise<Tensor> {
  if (run.o.tinyVae) {
    // TAESD's encoder gives latents, not a distribution: nothing is drawn (diffusers' retrieve_latents).
    const tiny = model.tinyVae!;
    if (!tiny.info.hasEncoder) throw new ArgumentTypeError(`options.tinyVae needs a tiny VAE with an encoder here; ${tiny.info.path} has only a decoder`);
    const latents = await tiny.encode(signedImage);
    throwIfAborted(run.o.signal);
    return latents;
  }
  const { mean, logvar } = await model.vae.encodeDistribution(signedImage);
  const noise = await run.generator.randn(mean.shape);
  const out = new Float32Array(mean.size);
  const factor = Math.fround(model.vae.scalingFactor);
  for (let i = 0; i < out.length; i++) {
    const std = Math.fround(Math.exp(Math.fround(0.5 * logvar.data[i]!)));
    out[i] = factor * Math.fround(mean.data[i]! + Math.fround(std * noise.data[i]!));
  }
  throwIfAborted(run.o.signal);
  return new Tensor(mean.shape, out);
}

/** img2img's start: the encoded image noised to the first kept timestep. */
export async function noisedImageLatents(model: PipelineModel, run: Run, image: Tensor, firstTimestep: number): Promise<Tensor> {
  const imageLatents = toBatch(await encodeSample(model, run, toSignedRange(image)), run.o.batchSize, 'options.image');
  const noise = await run.generator.randn(imageLatents.shape);
  return run.o.scheduler.addNoise(imageLatents, noise, Array.from({ length: run.o.batchSize }, () => firstTimestep));
}
