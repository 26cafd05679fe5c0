// Text to image: diffusers' StableDiffusionPipeline.
import { tensorArgument, type Tensor } from '../tensor.js';
import { scale } from '../tensor-ops.js';
import { expectObject } from '../validate.js';
import { denoise, finish, startRun } from './denoise.js';
import { checkOptions, requireUNet } from './options.js';
import type { GenerationResult, PipelineModel, Txt2ImgOptions } from './types.js';

/** diffusers' StableDiffusionPipeline.__call__ (text to image) on the component API. */
export async function txt2img(model: PipelineModel, options: Txt2ImgOptions): Promise<GenerationResult> {
  const raw = expectObject(options, 'options');
  const o = checkOptions(model, raw);
  requireUNet(model, 'txt2img', [4], 'a base model (an inpainting or depth model has more)');
  const width = o.width ?? model.info.imageSize;
  const height = o.height ?? model.info.imageSize;
  const shape = [o.batchSize, model.unet.outChannels, height / 8, width / 8];
  let injected: Tensor | undefined;
  if (raw.latents !== undefined) {
    injected = tensorArgument(raw.latents, 'options.latents');
    if (injected.rank !== 4 || injected.shape.some((d, i) => d !== shape[i])) {
      throw new RangeError(`Expected options.latents of shape [${shape.join(', ')}] but received [${injected.shape.join(', ')}]`);
    }
  }
  const run = await startRun(model, o, width, height);
  const scheduler = o.scheduler;
  scheduler.setTimesteps(o.steps); // before initNoiseSigma, which depends on the sigmas
  const initial = injected ?? (await run.generator.randn(shape));
  const latents = await denoise(model, run, scale(initial, scheduler.initNoiseSigma), scheduler.timesteps);
  return finish(model, run, latents, 'txt2img');
}
