// Image to image: diffusers' StableDiffusionImg2ImgPipeline.
import { expectKnownKeys, expectObject } from '../validate.js';
import { denoise, finish, startRun } from './denoise.js';
import { noisedImageLatents, prepareImage, timestepsForStrength } from './from-image.js';
import { checkOptions, checkStrength, requireInput, requireUNet } from './options.js';
import { IMG2IMG_OPTIONS, type GenerationResult, type Img2ImgOptions, type PipelineModel } from './types.js';

/** diffusers' StableDiffusionImg2ImgPipeline.__call__: denoise a noised encoding of `image`. */
export async function img2img(model: PipelineModel, options: Img2ImgOptions): Promise<GenerationResult> {
  const raw = expectObject(options, 'options');
  expectKnownKeys(raw, 'options', IMG2IMG_OPTIONS);
  const o = checkOptions(model, raw);
  const strength = checkStrength(raw.strength, 0.8);
  requireInput(raw, 'image', 'img2img');
  requireUNet(model, 'img2img', [4], 'a base model (use inpaint or depth2img for inpainting and depth models)');
  const timesteps = timestepsForStrength(o, strength);
  const { image, width, height } = await prepareImage(raw.image, o);
  const run = await startRun(model, o, width, height);
  const latents = await noisedImageLatents(model, run, image, timesteps[0]!);
  return finish(model, run, await denoise(model, run, latents, timesteps), 'img2img', strength);
}
