// The denoising pipelines in TypeScript over the component API (text encoder, UNet, VAE,
// schedulers, torch generator). txt2img follows diffusers' StableDiffusionPipeline on CPU step
// for step: the same random draws from one generator, the same classifier-free guidance, the
// same scheduler calls, so a seed gives diffusers' latents.
import { AbortError } from './errors.js';
import { TorchGenerator, toSeed, type Seed } from './rng.js';
import { createScheduler, Scheduler, type SchedulerOverrides } from './scheduler.js';
import { Tensor, type TensorLike } from './tensor.js';
import type { EncodePromptOptions, PromptEmbeddings } from './text-encoder.js';
import type { UNet } from './unet.js';
import type { Vae } from './vae.js';
import { describe, expectBoolean, expectInteger, expectNumber, expectObject, expectOneOf, expectString } from './validate.js';

export const OUTPUT_TYPES = ['tensor', 'latent'] as const;
export type OutputType = (typeof OUTPUT_TYPES)[number];

/** What `onStep` receives after each denoising step. */
export interface StepInfo {
  /** 1-based: 1 after the first step, `steps` after the last. */
  step: number;
  /** UNet evaluations in this run: `scheduler.timesteps.length` (PNDM takes one more than asked, Heun 2·n − 1). */
  steps: number;
  /** The timestep just denoised. */
  timestep: number;
  /** Milliseconds since the generation started. */
  elapsedMs: number;
}

/** Return `false` (or a promise of it) to stop the generation with an AbortError. */
export type StepCallback = (info: StepInfo) => boolean | void | Promise<boolean | void>;

export interface Txt2ImgOptions {
  prompt: string;
  /** Default '' (diffusers' unconditional embedding). */
  negativePrompt?: string;
  /** Default: the model's image size (`sd.info.imageSize`); multiples of 8. */
  width?: number;
  height?: number;
  /** Default 50. */
  steps?: number;
  /** Default 7.5; at most 1 runs no unconditional pass (as diffusers). */
  guidanceScale?: number;
  /**
   * A scheduler name (ours or A1111's; default 'pndm'), built with the model's prediction type,
   * or a Scheduler used as given (make it with `sd.createScheduler` to get the model's).
   */
  scheduler?: string | Scheduler;
  /** Overrides for a scheduler given by name (predictionType defaults to the model's). */
  schedulerOptions?: SchedulerOverrides;
  /** The torch CPU generator's seed (default: a random 32-bit one). */
  seed?: Seed;
  /** Images per prompt, default 1. */
  batchSize?: number;
  /** Initial latents [batchSize, 4, height/8, width/8] instead of random ones (multiplied by initNoiseSigma, as diffusers does). */
  latents?: TensorLike;
  clipSkip?: number;
  /** A1111's attention syntax, default true; false takes the prompt literally, as diffusers does. */
  promptWeighting?: boolean;
  onStep?: StepCallback;
  signal?: AbortSignal;
  /** 'tensor' (default): images [B, 3, H, W] in [0, 1]. 'latent': no VAE decode, `images` is null. */
  outputType?: OutputType;
}

export interface GenerationParameters {
  prompt: string;
  negativePrompt: string;
  width: number;
  height: number;
  steps: number;
  guidanceScale: number;
  scheduler: string;
  seed: Seed;
  batchSize: number;
  clipSkip: number | undefined;
  promptWeighting: boolean;
}

export interface Txt2ImgResult {
  /** [B, 3, H, W] in [0, 1] (diffusers' output_type 'pt'), or null with outputType 'latent'. */
  images: Tensor | null;
  /** The final latents [B, 4, H/8, W/8], before 1/scalingFactor (diffusers' output_type 'latent'). */
  latents: Tensor;
  /** The seed of the generator each image's noise came from (one generator for the batch, as diffusers). */
  seeds: Seed[];
  parameters: GenerationParameters;
}

/** What the pipelines need of a loaded model. */
export interface PipelineModel {
  readonly info: { imageSize: number; predictionType: 'epsilon' | 'v_prediction' };
  readonly unet: UNet;
  readonly vae: Vae;
  encodePrompt(prompt: string, options?: EncodePromptOptions): Promise<PromptEmbeddings>;
}

const MAX_SIZE = 8192;
const MAX_BATCH = 32; // the UNet takes 64 with guidance's doubled batch

// The options once checked: the recorded parameters with the scheduler as an object, plus what
// is not recorded.
interface CheckedTxt2Img extends Omit<GenerationParameters, 'scheduler'> {
  scheduler: Scheduler;
  latents: Tensor | undefined;
  onStep: StepCallback | undefined;
  signal: AbortSignal | undefined;
  outputType: OutputType;
}

function checkSide(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const side = expectInteger(value, name, 8, MAX_SIZE);
  if (side % 8 !== 0) throw new RangeError(`Expected ${name} to be a multiple of 8 but received ${side}`);
  return side;
}

function checkTxt2ImgOptions(model: PipelineModel, options: unknown): CheckedTxt2Img {
  const o = expectObject(options, 'options');
  const prompt = expectString(o.prompt, 'options.prompt');
  const negativePrompt = o.negativePrompt === undefined ? '' : expectString(o.negativePrompt, 'options.negativePrompt');
  const width = checkSide(o.width, 'width', model.info.imageSize);
  const height = checkSide(o.height, 'height', model.info.imageSize);
  const steps = o.steps === undefined ? 50 : expectInteger(o.steps, 'steps', 1, 1000);
  const guidanceScale = o.guidanceScale === undefined ? 7.5 : expectNumber(o.guidanceScale, 'guidanceScale', 0, 100);
  const batchSize = o.batchSize === undefined ? 1 : expectInteger(o.batchSize, 'batchSize', 1, MAX_BATCH);
  let scheduler: Scheduler;
  if (o.scheduler instanceof Scheduler) {
    if (o.schedulerOptions !== undefined) throw new TypeError('options.schedulerOptions apply only to a scheduler given by name');
    scheduler = o.scheduler;
  } else if (o.scheduler === undefined || typeof o.scheduler === 'string') {
    const overrides = o.schedulerOptions === undefined ? {} : (expectObject(o.schedulerOptions, 'options.schedulerOptions') as SchedulerOverrides);
    scheduler = createScheduler(o.scheduler ?? 'pndm', { predictionType: model.info.predictionType, ...overrides });
  } else {
    throw new TypeError(`Expected options.scheduler to be a scheduler name or a Scheduler but received ${describe(o.scheduler)}`);
  }
  const seed: Seed = o.seed === undefined ? Math.floor(Math.random() * 2 ** 32) : (toSeed(o.seed, 'seed'), o.seed as Seed);
  let latents: Tensor | undefined;
  if (o.latents !== undefined) {
    const l = o.latents as { shape?: unknown; data?: unknown } | null;
    if (typeof l !== 'object' || l === null || !Array.isArray(l.shape) || !(l.data instanceof Float32Array)) {
      throw new TypeError(`Expected options.latents to be a Tensor but received ${describe(o.latents)}`);
    }
    latents = Tensor.of(l as TensorLike);
    const want = [batchSize, model.unet.outChannels, height / 8, width / 8];
    if (latents.rank !== 4 || latents.shape.some((d, i) => d !== want[i])) {
      throw new RangeError(`Expected options.latents of shape [${want.join(', ')}] but received [${latents.shape.join(', ')}]`);
    }
  }
  const clipSkip = o.clipSkip === undefined ? undefined : expectInteger(o.clipSkip, 'clipSkip', 1, 1000);
  const promptWeighting = o.promptWeighting === undefined ? true : expectBoolean(o.promptWeighting, 'promptWeighting');
  if (o.onStep !== undefined && typeof o.onStep !== 'function') {
    throw new TypeError(`Expected options.onStep to be a function but received ${describe(o.onStep)}`);
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw new TypeError(`Expected options.signal to be an AbortSignal but received ${describe(o.signal)}`);
  }
  const outputType = o.outputType === undefined ? 'tensor' : expectOneOf(o.outputType, 'options.outputType', OUTPUT_TYPES);
  return {
    prompt, negativePrompt, width, height, steps, guidanceScale, scheduler, seed, batchSize, latents, clipSkip,
    promptWeighting, onStep: o.onStep as StepCallback | undefined, signal: o.signal as AbortSignal | undefined, outputType,
  };
}

/** `t` [1, ...] repeated `times` along the batch. */
function repeatBatch(t: Tensor, times: number): Tensor {
  if (times === 1) return t;
  const out = new Float32Array(t.size * times);
  for (let i = 0; i < times; i++) out.set(t.data, i * t.size);
  return new Tensor([t.shape[0]! * times, ...t.shape.slice(1)], out);
}

function concatBatch(a: Tensor, b: Tensor): Tensor {
  const out = new Float32Array(a.size + b.size);
  out.set(a.data, 0);
  out.set(b.data, a.size);
  return new Tensor([a.shape[0]! + b.shape[0]!, ...a.shape.slice(1)], out);
}

function throwIfAborted(signal: AbortSignal | undefined): void {
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

/** diffusers' StableDiffusionPipeline.__call__ (text to image) on the component API. */
export async function txt2img(model: PipelineModel, options: Txt2ImgOptions): Promise<Txt2ImgResult> {
  const o = checkTxt2ImgOptions(model, options);
  if (model.unet.inChannels !== model.unet.outChannels) {
    throw new RangeError(`txt2img needs a base model; this UNet takes ${model.unet.inChannels} input channels (an inpainting or depth model)`);
  }
  const started = performance.now();
  throwIfAborted(o.signal);
  const guided = o.guidanceScale > 1;
  const batch = o.batchSize;

  const embeddings = await model.encodePrompt(o.prompt, {
    negativePrompt: o.negativePrompt,
    promptWeighting: o.promptWeighting,
    ...(o.clipSkip !== undefined && { clipSkip: o.clipSkip }),
  });
  const cond = repeatBatch(embeddings.cond, batch);
  const context = guided ? concatBatch(repeatBatch(embeddings.uncond, batch), cond) : cond;
  throwIfAborted(o.signal);

  const scheduler = o.scheduler;
  const generator = new TorchGenerator(o.seed);
  const shape = [batch, model.unet.outChannels, o.height / 8, o.width / 8];
  scheduler.setTimesteps(o.steps); // before initNoiseSigma, which depends on the sigmas
  const initial = o.latents ?? (await generator.randn(shape));
  let latents = scale(initial, scheduler.initNoiseSigma);
  const timesteps = scheduler.timesteps;
  const noise = new StepNoise(generator);

  for (let i = 0; i < timesteps.length; i++) {
    throwIfAborted(o.signal);
    const t = timesteps[i]!;
    const input = scheduler.scaleModelInput(latents, t);
    const prediction = await model.unet.predict(guided ? concatBatch(input, input) : input, t, context);
    const guidedPrediction = guided ? guide(prediction, o.guidanceScale) : prediction;
    if (scheduler.stochastic) await noise.prepare(latents.shape);
    throwIfAborted(o.signal);
    latents = scheduler.step(guidedPrediction, t, latents, scheduler.stochastic ? noise.take : undefined).prevSample;
    if (o.onStep) {
      const more = await o.onStep({ step: i + 1, steps: timesteps.length, timestep: t, elapsedMs: performance.now() - started });
      if (more === false) throw new AbortError('The generation was stopped by onStep');
    }
  }
  throwIfAborted(o.signal);

  let images: Tensor | null = null;
  if (o.outputType === 'tensor') {
    const decoded = await model.vae.decode(scale(latents, 1 / model.vae.scalingFactor));
    images = toUnitRange(decoded);
    throwIfAborted(o.signal);
  }
  return {
    images,
    latents,
    seeds: Array.from({ length: batch }, () => o.seed),
    parameters: {
      prompt: o.prompt,
      negativePrompt: o.negativePrompt,
      width: o.width,
      height: o.height,
      steps: o.steps,
      guidanceScale: o.guidanceScale,
      scheduler: scheduler.name,
      seed: o.seed,
      batchSize: batch,
      clipSkip: o.clipSkip,
      promptWeighting: o.promptWeighting,
    },
  };
}

function scale(t: Tensor, factor: number): Tensor {
  const out = new Float32Array(t.size);
  const f = Math.fround(factor);
  for (let i = 0; i < t.size; i++) out[i] = t.data[i]! * f;
  return new Tensor(t.shape, out);
}

/** [uncond; cond] → uncond + g · (cond − uncond), in float32 as torch computes it. */
function guide(prediction: Tensor, g: number): Tensor {
  const half = prediction.size / 2;
  const out = new Float32Array(half);
  const scaleF = Math.fround(g);
  const d = prediction.data;
  for (let i = 0; i < half; i++) {
    const u = d[i]!;
    const diff = Math.fround(d[half + i]! - u);
    out[i] = u + Math.fround(scaleF * diff);
  }
  return new Tensor([prediction.shape[0]! / 2, ...prediction.shape.slice(1)], out);
}

/** VAE output in [-1, 1] → (x / 2 + 0.5).clamp(0, 1). */
function toUnitRange(t: Tensor): Tensor {
  const out = new Float32Array(t.size);
  for (let i = 0; i < t.size; i++) {
    const v = Math.fround(Math.fround(t.data[i]! / 2) + 0.5);
    out[i] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
  return new Tensor(t.shape, out);
}
