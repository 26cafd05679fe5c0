// Depth-guided image to image: diffusers' StableDiffusionDepth2ImgPipeline, with a given depth map
// or one from the depth estimator.
import { interpolate } from '../interpolate.js';
import { readDepthMap } from '../image.js';
import { concatBatch, normalizePerItem, toBatch } from '../tensor-ops.js';
import { expectKnownKeys, expectObject } from '../validate.js';
import { denoise, finish, startRun } from './denoise.js';
import { noisedImageLatents, prepareImage, timestepsForStrength } from './from-image.js';
import { checkOptions, checkStrength, requireInput, requireUNet } from './options.js';
import { DEPTH2IMG_OPTIONS, type Depth2ImgOptions, type GenerationResult, type PipelineModel } from './types.js';
import { StableDiffusionError } from '../errors.js';
import type { ImageInput } from '../image.js';
import type { Tensor } from '../tensor.js';

function estimateDepth(model: PipelineModel, image: ImageInput): Promise<Tensor> {
  if (model.estimateDepth === undefined) {
    throw new StableDiffusionError('ERR_NO_DEPTH_ESTIMATOR', 'depth2img without options.depthMap needs a depth estimator, and this model has none');
  }
  // [B, S, S] → [B, 1, S, S], as readDepthMap gives a map.
  return model.estimateDepth(image).then((depth) => depth.reshape([depth.shape[0]!, 1, depth.shape[1]!, depth.shape[2]!]));
}

/**
 * diffusers' StableDiffusionDepth2ImgPipeline.__call__ with a given or estimated depth map: img2img on a
 * depth model whose UNet sees the normalised depth beside the latents.
 */
export async function depth2img(model: PipelineModel, options: Depth2ImgOptions): Promise<GenerationResult> {
  const raw = expectObject(options, 'options');
  expectKnownKeys(raw, 'options', DEPTH2IMG_OPTIONS);
  const o = checkOptions(model, raw);
  const strength = checkStrength(raw.strength, 0.8);
  requireInput(raw, 'image', 'depth2img');
  requireUNet(model, 'depth2img', [5], 'a depth model (SD 2 depth)');
  const timesteps = timestepsForStrength(o, strength);
  const { image, width, height } = await prepareImage(raw.image, o);
  // A given map wins; otherwise the estimator on the image as given (diffusers' prepare_depth_map
  // hands the feature extractor the caller's image, not the resized one).
  const depth = raw.depthMap === undefined || raw.depthMap === null
    ? await estimateDepth(model, raw.image as ImageInput)
    : await readDepthMap(raw.depthMap, 'options.depthMap');
  const depthLatent = toBatch(normalizePerItem(interpolate(depth, height / 8, width / 8, 'bicubic')), o.batchSize, 'options.depthMap');
  const run = await startRun(model, o, width, height);
  const latents = await noisedImageLatents(model, run, image, timesteps[0]!);
  const conditioning = run.guided ? concatBatch(depthLatent, depthLatent) : depthLatent;
  return finish(model, run, await denoise(model, run, latents, timesteps, { conditioning }), 'depth2img', strength);
}
