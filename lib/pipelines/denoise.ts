// What every pipeline shares once its options are checked: the start of a run (prompt
// embeddings, the generator), the denoising loop (guidance, scheduler steps, stochastic noise in
// diffusers' order, onStep and previews, cancellation) and the end (VAE decode, the result).
import { AbortError } from '../errors.js';
import { latentPreview } from '../latent-preview.js';
import { blankFlagged } from '../safety-checker.js';
import { TorchGenerator } from '../rng.js';
import type { Tensor } from '../tensor.js';
import { blendMasked, concatBatch, concatChannels, guide, repeatBatch, scale, toUnitRange } from '../tensor-ops.js';
import type { PipelineName } from '../types.js';
import type { CheckedOptions } from './options.js';
import type { GenerationResult, PipelineModel, StageMemory, StepInfo } from './types.js';

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortError('The generation was aborted', { cause: signal.reason });
}

/**
 * Noise for stochastic schedulers from the pipeline's generator, in diffusers' order. The
 * generator's draws are asynchronous and a scheduler asks for noise inside step(), so the noise
 * for a step is drawn before it; if the scheduler does not use it (DDPM and LCM on their last
 * step), it is kept for the next draw, which would have given the same values.
 */
class StepNoise {
  #pending: Tensor | undefined;
  constructor(readonly generator: TorchGenerator) {}

  async prepare(shape: readonly number[]): Promise<void> {
    if (this.#pending === undefined) this.#pending = await this.generator.randn(shape);
  }

  take = (shape: number[]): Tensor => {
    const noise = this.#pending;
    if (noise === undefined || noise.shape.length !== shape.length || noise.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`Internal error: the scheduler asked for noise [${shape.join(', ')}] that was not drawn`);
    }
    this.#pending = undefined;
    return noise;
  };
}

/** One generation in progress: its options, the text conditioning and the random source. */
export interface Run {
  o: CheckedOptions;
  width: number;
  height: number;
  guided: boolean;
  /** [uncond × B; cond × B] when guided, else [cond × B]. */
  context: Tensor;
  generator: TorchGenerator;
  started: number;
  memory: Partial<StageMemory>;
  /** With the hires fix: which pass this is (told to onStep). */
  pass?: 'first' | 'hires';
}

export async function startRun(model: PipelineModel, o: CheckedOptions, width: number, height: number): Promise<Run> {
  const started = performance.now();
  throwIfAborted(o.signal);
  if (o.memoryReport) model.memoryUsage!({ resetPeak: true });
  const guided = o.guidanceScale > 1;
  const embeddings = await model.encodePrompt(o.prompt, {
    negativePrompt: o.negativePrompt,
    promptWeighting: o.promptWeighting,
    ...(o.clipSkip !== undefined && { clipSkip: o.clipSkip }),
  });
  const cond = repeatBatch(embeddings.cond, o.batchSize);
  const context = guided ? concatBatch(repeatBatch(embeddings.uncond, o.batchSize), cond) : cond;
  throwIfAborted(o.signal);
  return { o, width, height, guided, context, generator: new TorchGenerator(o.seed), started, memory: {} };
}

/** Ends a stage for the memory report: its snapshot, then the peaks restart for the next. */
function endStage(model: PipelineModel, run: Run, stage: keyof StageMemory): void {
  if (run.o.memoryReport) run.memory[stage] = model.memoryUsage!({ resetPeak: true });
}

/** What the loop adds to the plain sampler: UNet input channels, or masked blending. */
export interface LoopExtras {
  /** Concatenated after the scaled latents on every UNet call ([2B or B, c, h, w], already doubled when guided). */
  conditioning?: Tensor;
  /** Latent blending for 4-channel inpainting: keep `imageLatents` (noised to the next timestep) where `mask` is 0. */
  blend?: { imageLatents: Tensor; noise: Tensor; mask: Tensor };
}

/** The denoising loop shared by every pipeline: scheduler steps over `timesteps` from `latents`. */
export async function denoise(model: PipelineModel, run: Run, latents: Tensor, timesteps: number[], extras: LoopExtras = {}): Promise<Tensor> {
  const { o, guided } = run;
  endStage(model, run, 'encode');
  const scheduler = o.scheduler;
  const noise = new StepNoise(run.generator);
  for (let i = 0; i < timesteps.length; i++) {
    throwIfAborted(o.signal);
    const t = timesteps[i]!;
    const scaled = scheduler.scaleModelInput(latents, t);
    let input = guided ? concatBatch(scaled, scaled) : scaled;
    if (extras.conditioning) input = concatChannels(input, extras.conditioning);
    const prediction = await model.unet.predict(input, t, run.context);
    const guidedPrediction = guided ? guide(prediction, o.guidanceScale) : prediction;
    if (scheduler.stochastic) await noise.prepare(latents.shape);
    throwIfAborted(o.signal);
    latents = scheduler.step(guidedPrediction, t, latents, scheduler.stochastic ? noise.take : undefined).prevSample;
    if (extras.blend) {
      const { imageLatents, noise: imageNoise, mask } = extras.blend;
      const kept = i < timesteps.length - 1 ? scheduler.addNoise(imageLatents, imageNoise, [timesteps[i + 1]!]) : imageLatents;
      latents = blendMasked(kept, latents, mask);
    }
    if (o.onStep) {
      const info: StepInfo = {
        step: i + 1, steps: timesteps.length, timestep: t, elapsedMs: performance.now() - run.started, latents, ...(run.pass && { pass: run.pass }),
      };
      if (o.preview && ((i + 1) % o.previewEvery === 0 || i === timesteps.length - 1)) {
        info.preview = o.preview === 'latent' ? latentPreview(latents) : await decodeImages(model, latents, o.preview === 'taesd');
      }
      const more = await o.onStep(info);
      if (more === false) throw new AbortError('The generation was stopped by onStep');
    }
  }
  throwIfAborted(run.o.signal);
  endStage(model, run, 'sample');
  return latents;
}

/** latents → images in [0, 1], by the VAE or (`tiny`) by TAESD, which takes the sampler's latents as they are. */
async function decodeImages(model: PipelineModel, latents: Tensor, tiny = false): Promise<Tensor> {
  if (tiny) return toUnitRange(await model.tinyVae!.decode(latents));
  return toUnitRange(await model.vae.decode(scale(latents, 1 / model.vae.scalingFactor)));
}

export async function finish(
  model: PipelineModel, run: Run, latents: Tensor, pipeline: PipelineName, strength?: number,
): Promise<GenerationResult> {
  const { o } = run;
  let images: Tensor | null = null;
  let nsfw: boolean[] | undefined;
  if (o.outputType === 'tensor') {
    images = await decodeImages(model, latents, o.tinyVae);
    throwIfAborted(o.signal);
    if (model.safetyChecker) {
      // As diffusers: the decoded images are checked and the flagged ones replaced by black.
      nsfw = (await model.safetyChecker.check(images)).map((r) => r.nsfw);
      images = blankFlagged(images, nsfw);
      throwIfAborted(o.signal);
    }
    endStage(model, run, 'decode');
  }
  return {
    images,
    latents,
    seeds: Array.from({ length: o.batchSize }, () => o.seed),
    parameters: {
      pipeline,
      prompt: o.prompt,
      negativePrompt: o.negativePrompt,
      width: run.width,
      height: run.height,
      steps: o.steps,
      guidanceScale: o.guidanceScale,
      scheduler: o.scheduler.name,
      seed: o.seed,
      batchSize: o.batchSize,
      clipSkip: o.clipSkip,
      promptWeighting: o.promptWeighting,
      ...(strength !== undefined && { strength }),
    },
    ...(o.memoryReport && { memory: run.memory as StageMemory }),
    ...(nsfw && { nsfwContentDetected: nsfw }),
  };
}
