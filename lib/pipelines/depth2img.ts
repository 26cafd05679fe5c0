// Depth-guided image to image: diffusers' StableDiffusionDepth2ImgPipeline with a given depth map.
import { interpolate } from '../interpolate.js';
import { readDepthMap } from '../image.js';
import { concatBatch, normalizePerItem, toBatch } from '../tensor-ops.js';
import { expectKnownKeys, expectObject } from '../validate.js';
import { denoise, finish, startRun } from './denoise.js';
import { noisedImageLatents, prepareImage, timestepsForStrength } from './from-image.js';
import { checkOptions, checkStrength, requireInput, requireUNet } from './options.js';
import { DEPTH2IMG_OPTIONS, type Depth2ImgOptions, type GenerationResult, type PipelineModel } from './types.js';
import { ArgumentTypeError } from '../errors.js';

/**
 * diffusers' StableDiffusionDepth2ImgPipeline.__call__ with a given depth map: img2img on a
 * depth model whose UNet sees the normalised depth beside the latents.
 */
export async function depth2img(model: PipelineModel, options: Depth2ImgOptions): Promise<GenerationResult> {
  const raw = expectObject(options, 'options');
  expectKnownKeys(raw, 'options', DEPTH2IMG_OPTIONS);
  const o = checkOptions(model, raw);
  const strength = checkStrength(raw.strength, 0.8);
  requireInput(raw, 'image', 'depth2img');
  if (raw.depthMap === undefined || raw.depthMap === null) {
    throw new ArgumentTypeError('depth2img needs options.depthMap: a built-in depth estimator is not part of this version');
  }
  requireUNet(model, 'depth2img', [5], 'a depth model (SD 2 depth)');
  const timesteps = timestepsForStrength(o, strength);
  const { image, width, height } = await prepareImage(raw.image, o);
  const depth = await readDepthMap(raw.depthMap, 'options.depthMap');
  const depthLatent = toBatch(normalizePerItem(interpolate(depth, height / 8, width / 8, 'bicubic')), o.batchSize, 'options.depthMap');
  const run = await startRun(model, o, width, height);
  const latents = await noisedImageLatents(model, run, image, timesteps[0]!);
  const conditioning = run.guided ? concatBatch(depthLatent, depthLatent) : depthLatent;
  return finish(model, run, await denoise(model, run, latents, timesteps, { conditioning }), 'depth2img', strength);
}
