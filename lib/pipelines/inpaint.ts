// Inpainting: diffusers' StableDiffusionInpaintPipeline, on 9-channel inpainting UNets or by
// latent blending on ordinary 4-channel ones.
import { interpolate } from '../interpolate.js';
import { readImage, readMask, resizeImage } from '../image.js';
import type { Tensor } from '../tensor.js';
import { binarize, concatBatch, concatChannels, maskOut, scale, toBatch, toSignedRange } from '../tensor-ops.js';
import { expectKnownKeys, expectObject } from '../validate.js';
import { denoise, finish, startRun, type LoopExtras } from './denoise.js';
import { encodeSample, prepareImage, timestepsForStrength } from './from-image.js';
import { checkGivenLatents, checkOptions, checkStrength, requireInput, requireUNet } from './options.js';
import { INPAINT_OPTIONS, type GenerationResult, type InpaintOptions, type PipelineModel } from './types.js';
import { ArgumentRangeError } from '../errors.js';

/**
 * diffusers' StableDiffusionInpaintPipeline.__call__. A 9-channel inpainting UNet sees the
 * binarized mask and the masked image's latents beside the latents; a 4-channel UNet denoises
 * everything and after each step the kept area is replaced by the image's latents noised to
 * the next timestep (latent blending).
 */
export async function inpaint(model: PipelineModel, options: InpaintOptions): Promise<GenerationResult> {
  const raw = expectObject(options, 'options');
  expectKnownKeys(raw, 'options', INPAINT_OPTIONS);
  const o = checkOptions(model, raw);
  const strength = checkStrength(raw.strength, 1);
  requireInput(raw, 'image', 'inpaint');
  requireInput(raw, 'mask', 'inpaint');
  requireUNet(model, 'inpaint', [4, 9], 'an inpainting (9-channel) or base (4-channel) model');
  const timesteps = timestepsForStrength(o, strength);
  const original = await readImage(raw.image, 'options.image');
  let mask = await readMask(raw.mask, 'options.mask');
  if (mask.shape[2] !== original.shape[2] || mask.shape[3] !== original.shape[3]) {
    throw new ArgumentRangeError(
      `Expected options.mask to be the image's size ${original.shape[3]}×${original.shape[2]} but received ${mask.shape[3]}×${mask.shape[2]}`,
    );
  }
  if (mask.shape[0] !== 1 && mask.shape[0] !== original.shape[0]) {
    throw new ArgumentRangeError(`Expected options.mask with 1 or ${original.shape[0]} (the image's) items but received ${mask.shape[0]}`);
  }
  const { image, width, height } = await prepareImage(original, o);
  mask = binarize(await resizeImage(mask, width, height));
  toBatch(mask, o.batchSize, 'options.mask');
  const run = await startRun(model, o, width, height);
  const scheduler = o.scheduler;
  const batch = o.batchSize;
  const signedImage = toSignedRange(image);
  const blending = model.unet.inChannels === 4;
  const fromNoise = strength === 1;
  const latentShape = [batch, 4, height / 8, width / 8];
  const given = raw.latents === undefined ? undefined : checkGivenLatents(raw.latents, latentShape);

  // diffusers' prepare_latents, then prepare_mask_latents: the draws in their order. Given
  // latents are the noise, and the start once scaled, whatever the strength.
  let imageLatents: Tensor | undefined;
  if (blending || (!fromNoise && !given)) imageLatents = toBatch(await encodeSample(model, run, signedImage), batch, 'options.image');
  const noise = given ?? (await run.generator.randn(latentShape));
  const latents = fromNoise || given
    ? scale(noise, scheduler.initNoiseSigma)
    : scheduler.addNoise(imageLatents!, noise, Array.from({ length: batch }, () => timesteps[0]!));
  const latentMask = toBatch(interpolate(mask, height / 8, width / 8, 'nearest'), batch, 'options.mask');
  const masked = maskOut(signedImage, mask);
  let extras: LoopExtras;
  if (blending) {
    // diffusers encodes the masked image here even though a 4-channel UNet never sees it; only
    // its draw from the generator matters (to the noise of stochastic schedulers after it).
    await run.generator.randn([masked.shape[0]!, 4, height / 8, width / 8]);
    extras = { blend: { imageLatents: imageLatents!, noise, mask: latentMask } };
  } else {
    const maskedLatents = toBatch(await encodeSample(model, run, masked), batch, 'options.image');
    const conditioning = concatChannels(latentMask, maskedLatents);
    extras = { conditioning: run.guided ? concatBatch(conditioning, conditioning) : conditioning };
  }
  return finish(model, run, await denoise(model, run, latents, timesteps, extras), 'inpaint', strength);
}
