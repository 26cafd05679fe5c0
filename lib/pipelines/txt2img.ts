// Text to image: diffusers' StableDiffusionPipeline, and A1111's hires fix after it (hires.ts).
import { scale } from '../tensor-ops.js';
import { expectKnownKeys, expectObject } from '../validate.js';
import { denoise, finish, startRun } from './denoise.js';
import { checkHires, hiresPass } from './hires.js';
import { checkGivenLatents, checkOptions, requireUNet } from './options.js';
import { TXT2IMG_OPTIONS, type GenerationResult, type PipelineModel, type Txt2ImgOptions } from './types.js';

/** diffusers' StableDiffusionPipeline.__call__ (text to image) on the component API. */
export async function txt2img(model: PipelineModel, options: Txt2ImgOptions): Promise<GenerationResult> {
  const raw = expectObject(options, 'options');
  expectKnownKeys(raw, 'options', TXT2IMG_OPTIONS);
  const o = checkOptions(model, raw);
  requireUNet(model, 'txt2img', [4], 'a base model (an inpainting or depth model has more)');
  const width = o.width ?? model.info.imageSize;
  const height = o.height ?? model.info.imageSize;
  const hires = raw.hires === undefined ? undefined : checkHires(raw.hires, o, width, height);
  const shape = [o.batchSize, model.unet.outChannels, height / 8, width / 8];
  const injected = raw.latents === undefined ? undefined : checkGivenLatents(raw.latents, shape);
  const run = await startRun(model, o, width, height);
  if (hires) run.pass = 'first';
  const scheduler = o.scheduler;
  scheduler.setTimesteps(o.steps); // before initNoiseSigma, which depends on the sigmas
  const initial = injected ?? (await run.generator.randn(shape));
  const latents = await denoise(model, run, scale(initial, scheduler.initNoiseSigma), scheduler.timesteps);
  return hires ? hiresPass(model, run, latents, hires) : finish(model, run, latents, 'txt2img');
}
