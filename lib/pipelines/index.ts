// The denoising pipelines in TypeScript over the component API (text encoder, UNet, VAE,
// schedulers, torch generator). Each follows its diffusers pipeline on CPU step for step: the
// same random draws from one generator in the same order, the same classifier-free guidance,
// the same scheduler calls, so a seed gives diffusers' latents.
//   txt2img   StableDiffusionPipeline
//   img2img   StableDiffusionImg2ImgPipeline
//   inpaint   StableDiffusionInpaintPipeline (9-channel inpainting UNets, or latent blending
//             on ordinary 4-channel ones)
//   depth2img StableDiffusionDepth2ImgPipeline with a given depth map
import { AbortError } from '../errors.js';
import { readDepthMap, readImage, readMask, resizeImage, type ImageInput } from '../image.js';
import { latentPreview } from '../latent-preview.js';
import { TorchGenerator, toSeed } from '../rng.js';
import { createScheduler, Scheduler, type SchedulerOverrides } from '../scheduler.js';
import { Tensor, type TensorLike } from '../tensor.js';
import {
  binarize, blendMasked, concatBatch, concatChannels, guide, maskOut, normalizePerItem, repeatBatch, resizeBicubic,
  resizeNearest, scale, toBatch, toSignedRange, toUnitRange,
} from '../tensor-ops.js';
import type { EncodePromptOptions, PromptEmbeddings } from '../text-encoder.js';
import type { UNet } from '../unet.js';
import type { GenerationParameters, MemoryUsage, PipelineName, Seed } from '../types.js';
import type { Vae } from '../vae.js';
import {
  describe, expectBoolean, expectInteger, expectNumber, expectObject, expectOneOf, expectString,
} from '../validate.js';

export const OUTPUT_TYPES = ['tensor', 'latent'] as const;
export type OutputType = (typeof OUTPUT_TYPES)[number];

export const PREVIEW_METHODS = ['latent', 'vae'] as const;
/** 'latent': a linear latent → RGB map at 1/8 size (free); 'vae': the VAE decoder at full size (a decode each time). */
export type PreviewMethod = (typeof PREVIEW_METHODS)[number];

/** What `onStep` receives after each denoising step. */
export interface StepInfo {
  /** 1-based: 1 after the first step, `steps` after the last. */
  step: number;
  /** UNet evaluations in this run: the timesteps visited (PNDM takes one more than asked, Heun 2·n − 1; img2img fewer, by strength). */
  steps: number;
  /** The timestep just denoised. */
  timestep: number;
  /** Milliseconds since the generation started. */
  elapsedMs: number;
  /** With `preview`: the current latents as RGB in [0, 1], [B, 3, h, w] (every `previewEvery` steps and at the last). */
  preview?: Tensor;
}

/** Return `false` (or a promise of it) to stop the generation with an AbortError. */
export type StepCallback = (info: StepInfo) => boolean | void | Promise<boolean | void>;

/** Options every pipeline takes. */
export interface GenerationOptions {
  prompt: string;
  /** Default '' (diffusers' unconditional embedding). */
  negativePrompt?: string;
  /**
   * Multiples of 8. txt2img default: the model's image size (`sd.info.imageSize`); the image
   * pipelines default to the input image's size rounded down to a multiple of 8 and resize the
   * image when it differs.
   */
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
  clipSkip?: number;
  /** A1111's attention syntax, default true; false takes the prompt literally, as diffusers does. */
  promptWeighting?: boolean;
  onStep?: StepCallback;
  /** Previews passed to `onStep` (needs `onStep`). */
  preview?: PreviewMethod;
  /** Preview every N steps (default 1 for 'latent', 5 for 'vae'); the last step always has one. */
  previewEvery?: number;
  signal?: AbortSignal;
  /** 'tensor' (default): images [B, 3, H, W] in [0, 1]. 'latent': no VAE decode, `images` is null. */
  outputType?: OutputType;
  /**
   * Measure memory per stage into `result.memory` (default false): each stage's peak host RSS
   * and device buffers. It restarts the model's (and, on Linux, the process's) peak counters.
   */
  memoryReport?: boolean;
}

export interface Txt2ImgOptions extends GenerationOptions {
  /** Initial latents [batchSize, 4, height/8, width/8] instead of random ones (multiplied by initNoiseSigma, as diffusers does). */
  latents?: TensorLike;
}

export interface Img2ImgOptions extends GenerationOptions {
  /** The starting image: a path, an encoded image Buffer, a sharp instance, raw pixels or a tensor [B, 3, H, W] in [0, 1] (lib/image.ts). */
  image: ImageInput;
  /** How much to change the image, 0–1 (default 0.8): the share of the steps that run, from noise level `strength`. */
  strength?: number;
}

export interface InpaintOptions extends GenerationOptions {
  image: ImageInput;
  /** White (≥ 0.5) = repaint, black = keep; the image's size. From alpha when not opaque, else luminance. */
  mask: ImageInput;
  /** Default 1: the masked area starts from pure noise. Below 1 it starts from the noised image. */
  strength?: number;
}

export interface Depth2ImgOptions extends GenerationOptions {
  image: ImageInput;
  /**
   * Depth (larger = nearer, as MiDaS gives it), any size and scale: a tensor [H, W], [B, H, W] or
   * [B, 1, H, W], or a grayscale image (16-bit PNGs keep their precision). Resized bicubically
   * to the latents and mapped to [-1, 1] per image, as diffusers does. Required: a built-in
   * depth estimator is not part of this version.
   */
  depthMap: ImageInput;
  /** Default 0.8, as img2img. */
  strength?: number;
}

/** Memory at the end of each stage, with that stage's peaks (`memoryReport: true`). */
export interface StageMemory {
  /** Text encoding, and the VAE encoding of the input image in img2img, inpaint and depth2img. */
  encode: MemoryUsage;
  /** The denoising loop. */
  sample: MemoryUsage;
  /** The VAE decode (absent with outputType 'latent'). */
  decode?: MemoryUsage;
}

export interface GenerationResult {
  /** [B, 3, H, W] in [0, 1] (diffusers' output_type 'pt'), or null with outputType 'latent'. */
  images: Tensor | null;
  /** The final latents [B, 4, H/8, W/8], before 1/scalingFactor (diffusers' output_type 'latent'). */
  latents: Tensor;
  /** The seed of the generator each image's noise came from (one generator for the batch, as diffusers). */
  seeds: Seed[];
  parameters: GenerationParameters;
  /** With `memoryReport: true`. */
  memory?: StageMemory;
}

export type Txt2ImgResult = GenerationResult;

/** What the pipelines need of a loaded model. */
export interface PipelineModel {
  readonly info: { imageSize: number; predictionType: 'epsilon' | 'v_prediction' };
  readonly unet: UNet;
  readonly vae: Vae;
  encodePrompt(prompt: string, options?: EncodePromptOptions): Promise<PromptEmbeddings>;
  memoryUsage?(options?: { resetPeak?: boolean }): MemoryUsage;
}

const MAX_SIZE = 8192;
const MAX_BATCH = 32; // the UNet takes 64 with guidance's doubled batch

// The options once checked: the recorded parameters with the scheduler as an object, plus what
// is not recorded. Width and height stay undefined when not given (the image pipelines default
// them from the image).
interface CheckedOptions extends Omit<GenerationParameters, 'scheduler' | 'width' | 'height' | 'pipeline' | 'strength'> {
  width: number | undefined;
  height: number | undefined;
  scheduler: Scheduler;
  onStep: StepCallback | undefined;
  preview: PreviewMethod | undefined;
  previewEvery: number;
  signal: AbortSignal | undefined;
  outputType: OutputType;
  memoryReport: boolean;
}

function checkSide(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  const side = expectInteger(value, name, 8, MAX_SIZE);
  if (side % 8 !== 0) throw new RangeError(`Expected ${name} to be a multiple of 8 but received ${side}`);
  return side;
}

function checkOptions(model: PipelineModel, o: Record<string, unknown>): CheckedOptions {
  const prompt = expectString(o.prompt, 'options.prompt');
  const negativePrompt = o.negativePrompt === undefined ? '' : expectString(o.negativePrompt, 'options.negativePrompt');
  const width = checkSide(o.width, 'width');
  const height = checkSide(o.height, 'height');
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
  const clipSkip = o.clipSkip === undefined ? undefined : expectInteger(o.clipSkip, 'clipSkip', 1, 1000);
  const promptWeighting = o.promptWeighting === undefined ? true : expectBoolean(o.promptWeighting, 'promptWeighting');
  if (o.onStep !== undefined && typeof o.onStep !== 'function') {
    throw new TypeError(`Expected options.onStep to be a function but received ${describe(o.onStep)}`);
  }
  const preview = o.preview === undefined ? undefined : expectOneOf(o.preview, 'options.preview', PREVIEW_METHODS);
  if (preview !== undefined && o.onStep === undefined) throw new TypeError('options.preview needs options.onStep to receive the previews');
  const previewEvery = o.previewEvery === undefined ? (preview === 'vae' ? 5 : 1) : expectInteger(o.previewEvery, 'previewEvery', 1, 1000);
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw new TypeError(`Expected options.signal to be an AbortSignal but received ${describe(o.signal)}`);
  }
  const outputType = o.outputType === undefined ? 'tensor' : expectOneOf(o.outputType, 'options.outputType', OUTPUT_TYPES);
  const memoryReport = o.memoryReport === undefined ? false : expectBoolean(o.memoryReport, 'memoryReport');
  if (memoryReport && model.memoryUsage === undefined) throw new TypeError('options.memoryReport needs a model that reports memory');
  return {
    prompt, negativePrompt, width, height, steps, guidanceScale, scheduler, seed, batchSize, clipSkip, promptWeighting,
    onStep: o.onStep as StepCallback | undefined, preview, previewEvery, signal: o.signal as AbortSignal | undefined, outputType,
    memoryReport,
  };
}

function checkStrength(value: unknown, fallback: number): number {
  return value === undefined ? fallback : expectNumber(value, 'strength', 0, 1);
}

function requireInput(o: Record<string, unknown>, key: string, pipeline: PipelineName): void {
  if (o[key] === undefined || o[key] === null) throw new TypeError(`${pipeline} needs options.${key}`);
}

function requireUNet(model: PipelineModel, pipeline: PipelineName, allowed: number[], what: string): void {
  if (!allowed.includes(model.unet.inChannels)) {
    throw new RangeError(`${pipeline} needs ${what}; this UNet takes ${model.unet.inChannels} input channels`);
  }
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

/** One generation in progress: its options, the text conditioning and the random source. */
interface Run {
  o: CheckedOptions;
  width: number;
  height: number;
  guided: boolean;
  /** [uncond × B; cond × B] when guided, else [cond × B]. */
  context: Tensor;
  generator: TorchGenerator;
  started: number;
  memory: Partial<StageMemory>;
}

async function startRun(model: PipelineModel, o: CheckedOptions, width: number, height: number): Promise<Run> {
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
interface LoopExtras {
  /** Concatenated after the scaled latents on every UNet call ([2B or B, c, h, w], already doubled when guided). */
  conditioning?: Tensor;
  /** Latent blending for 4-channel inpainting: keep `imageLatents` (noised to the next timestep) where `mask` is 0. */
  blend?: { imageLatents: Tensor; noise: Tensor; mask: Tensor };
}

/** The denoising loop shared by every pipeline: scheduler steps over `timesteps` from `latents`. */
async function denoise(model: PipelineModel, run: Run, latents: Tensor, timesteps: number[], extras: LoopExtras = {}): Promise<Tensor> {
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
      const info: StepInfo = { step: i + 1, steps: timesteps.length, timestep: t, elapsedMs: performance.now() - run.started };
      if (o.preview && ((i + 1) % o.previewEvery === 0 || i === timesteps.length - 1)) {
        info.preview = o.preview === 'latent' ? latentPreview(latents) : await decodeImages(model, latents);
      }
      const more = await o.onStep(info);
      if (more === false) throw new AbortError('The generation was stopped by onStep');
    }
  }
  throwIfAborted(run.o.signal);
  endStage(model, run, 'sample');
  return latents;
}

async function decodeImages(model: PipelineModel, latents: Tensor): Promise<Tensor> {
  return toUnitRange(await model.vae.decode(scale(latents, 1 / model.vae.scalingFactor)));
}

async function finish(
  model: PipelineModel, run: Run, latents: Tensor, pipeline: PipelineName, strength?: number,
): Promise<GenerationResult> {
  const { o } = run;
  let images: Tensor | null = null;
  if (o.outputType === 'tensor') {
    images = await decodeImages(model, latents);
    throwIfAborted(o.signal);
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
  };
}

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
    const l = raw.latents as { shape?: unknown; data?: unknown } | null;
    if (typeof l !== 'object' || l === null || !Array.isArray(l.shape) || !(l.data instanceof Float32Array)) {
      throw new TypeError(`Expected options.latents to be a Tensor but received ${describe(raw.latents)}`);
    }
    injected = Tensor.of(l as TensorLike);
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

/** The image at the requested size (default: its own, rounded down to a multiple of 8), batched. */
async function prepareImage(input: unknown, o: CheckedOptions): Promise<{ image: Tensor; width: number; height: number }> {
  let image = await readImage(input, 'options.image');
  const width = o.width ?? Math.floor(image.shape[3]! / 8) * 8;
  const height = o.height ?? Math.floor(image.shape[2]! / 8) * 8;
  if (width < 8 || height < 8) {
    throw new RangeError(`Expected an image at least 8×8 pixels but received ${image.shape[3]}×${image.shape[2]}`);
  }
  image = await resizeImage(image, width, height);
  toBatch(image, o.batchSize, 'options.image'); // checks the count before any network call
  return { image, width, height };
}

/**
 * diffusers' get_timesteps: the last ⌊steps · strength⌋ steps of the schedule. Schedulers with
 * a step index are told where the loop begins.
 */
function timestepsForStrength(o: CheckedOptions, strength: number): number[] {
  const scheduler = o.scheduler;
  scheduler.setTimesteps(o.steps);
  const kept = Math.min(Math.floor(o.steps * strength), o.steps);
  const start = Math.max(o.steps - kept, 0) * scheduler.order;
  const timesteps = scheduler.timesteps.slice(start);
  if (kept < 1 || timesteps.length === 0) {
    throw new RangeError(
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
async function encodeSample(model: PipelineModel, run: Run, signedImage: Tensor): Promise<Tensor> {
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
async function noisedImageLatents(model: PipelineModel, run: Run, image: Tensor, firstTimestep: number): Promise<Tensor> {
  const imageLatents = toBatch(await encodeSample(model, run, toSignedRange(image)), run.o.batchSize, 'options.image');
  const noise = await run.generator.randn(imageLatents.shape);
  return run.o.scheduler.addNoise(imageLatents, noise, Array.from({ length: run.o.batchSize }, () => firstTimestep));
}

/** diffusers' StableDiffusionImg2ImgPipeline.__call__: denoise a noised encoding of `image`. */
export async function img2img(model: PipelineModel, options: Img2ImgOptions): Promise<GenerationResult> {
  const raw = expectObject(options, 'options');
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

/**
 * diffusers' StableDiffusionInpaintPipeline.__call__. A 9-channel inpainting UNet sees the
 * binarized mask and the masked image's latents beside the latents; a 4-channel UNet denoises
 * everything and after each step the kept area is replaced by the image's latents noised to
 * the next timestep (latent blending).
 */
export async function inpaint(model: PipelineModel, options: InpaintOptions): Promise<GenerationResult> {
  const raw = expectObject(options, 'options');
  const o = checkOptions(model, raw);
  const strength = checkStrength(raw.strength, 1);
  requireInput(raw, 'image', 'inpaint');
  requireInput(raw, 'mask', 'inpaint');
  requireUNet(model, 'inpaint', [4, 9], 'an inpainting (9-channel) or base (4-channel) model');
  const timesteps = timestepsForStrength(o, strength);
  const original = await readImage(raw.image, 'options.image');
  let mask = await readMask(raw.mask, 'options.mask');
  if (mask.shape[2] !== original.shape[2] || mask.shape[3] !== original.shape[3]) {
    throw new RangeError(
      `Expected options.mask to be the image's size ${original.shape[3]}×${original.shape[2]} but received ${mask.shape[3]}×${mask.shape[2]}`,
    );
  }
  if (mask.shape[0] !== 1 && mask.shape[0] !== original.shape[0]) {
    throw new RangeError(`Expected options.mask with 1 or ${original.shape[0]} (the image's) items but received ${mask.shape[0]}`);
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

  // diffusers' prepare_latents, then prepare_mask_latents: the draws in their order.
  let imageLatents: Tensor | undefined;
  if (blending || !fromNoise) imageLatents = toBatch(await encodeSample(model, run, signedImage), batch, 'options.image');
  const noise = await run.generator.randn(latentShape);
  const latents = fromNoise
    ? scale(noise, scheduler.initNoiseSigma)
    : scheduler.addNoise(imageLatents!, noise, Array.from({ length: batch }, () => timesteps[0]!));
  const latentMask = toBatch(resizeNearest(mask, height / 8, width / 8), batch, 'options.mask');
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

/**
 * diffusers' StableDiffusionDepth2ImgPipeline.__call__ with a given depth map: img2img on a
 * depth model whose UNet sees the normalised depth beside the latents.
 */
export async function depth2img(model: PipelineModel, options: Depth2ImgOptions): Promise<GenerationResult> {
  const raw = expectObject(options, 'options');
  const o = checkOptions(model, raw);
  const strength = checkStrength(raw.strength, 0.8);
  requireInput(raw, 'image', 'depth2img');
  if (raw.depthMap === undefined || raw.depthMap === null) {
    throw new TypeError('depth2img needs options.depthMap: a built-in depth estimator is not part of this version');
  }
  requireUNet(model, 'depth2img', [5], 'a depth model (SD 2 depth)');
  const timesteps = timestepsForStrength(o, strength);
  const { image, width, height } = await prepareImage(raw.image, o);
  const depth = await readDepthMap(raw.depthMap, 'options.depthMap');
  const depthLatent = toBatch(normalizePerItem(resizeBicubic(depth, height / 8, width / 8)), o.batchSize, 'options.depthMap');
  const run = await startRun(model, o, width, height);
  const latents = await noisedImageLatents(model, run, image, timesteps[0]!);
  const conditioning = run.guided ? concatBatch(depthLatent, depthLatent) : depthLatent;
  return finish(model, run, await denoise(model, run, latents, timesteps, { conditioning }), 'depth2img', strength);
}
