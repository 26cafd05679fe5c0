// The options every pipeline takes, checked once at the edge: TypeError for a wrong type,
// RangeError out of range, with diffusers' defaults filled in; and the checks the pipelines make
// of their own inputs and of the model's UNet.
import { toSeed } from '../rng.js';
import { tensorArgument, type Tensor } from '../tensor.js';
import { createScheduler, Scheduler, type SchedulerOverrides } from '../scheduler.js';
import type { GenerationParameters, PipelineName, Seed } from '../types.js';
import { describe, expectBoolean, expectInteger, expectNumber, expectObject, expectOneOf, expectSignal, expectString } from '../validate.js';
import { OUTPUT_TYPES, PREVIEW_METHODS, type OutputType, type PipelineModel, type PreviewMethod, type StepCallback } from './types.js';
import { ArgumentRangeError, ArgumentTypeError } from '../errors.js';

const MAX_SIZE = 8192;
const MAX_BATCH = 32; // the UNet takes 64 with guidance's doubled batch

// The options once checked: the recorded parameters with the scheduler as an object, plus what
// is not recorded. Width and height stay undefined when not given (the image pipelines default
// them from the image).
export interface CheckedOptions extends Omit<GenerationParameters, 'scheduler' | 'width' | 'height' | 'pipeline' | 'strength'> {
  width: number | undefined;
  height: number | undefined;
  scheduler: Scheduler;
  onStep: StepCallback | undefined;
  preview: PreviewMethod | undefined;
  previewEvery: number;
  /** Decode (and encode) with the tiny VAE. */
  tinyVae: boolean;
  signal: AbortSignal | undefined;
  outputType: OutputType;
  memoryReport: boolean;
}

/** A width or height: undefined, or an integer multiple of 8 from 8 to 8192. */
export function checkSide(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  const side = expectInteger(value, name, 8, MAX_SIZE);
  if (side % 8 !== 0) throw new ArgumentRangeError(`Expected ${name} to be a multiple of 8 but received ${side}`);
  return side;
}

export function checkOptions(model: PipelineModel, o: Record<string, unknown>): CheckedOptions {
  const prompt = expectString(o.prompt, 'options.prompt');
  const negativePrompt = o.negativePrompt === undefined ? '' : expectString(o.negativePrompt, 'options.negativePrompt');
  const width = checkSide(o.width, 'width');
  const height = checkSide(o.height, 'height');
  const steps = o.steps === undefined ? 50 : expectInteger(o.steps, 'steps', 1, 1000);
  const guidanceScale = o.guidanceScale === undefined ? 7.5 : expectNumber(o.guidanceScale, 'guidanceScale', 0, 100);
  const batchSize = o.batchSize === undefined ? 1 : expectInteger(o.batchSize, 'batchSize', 1, MAX_BATCH);
  let scheduler: Scheduler;
  if (o.scheduler instanceof Scheduler) {
    if (o.schedulerOptions !== undefined) throw new ArgumentTypeError('options.schedulerOptions apply only to a scheduler given by name');
    scheduler = o.scheduler;
  } else if (o.scheduler === undefined || typeof o.scheduler === 'string') {
    const overrides = o.schedulerOptions === undefined ? {} : (expectObject(o.schedulerOptions, 'options.schedulerOptions') as SchedulerOverrides);
    scheduler = createScheduler(o.scheduler ?? 'pndm', { predictionType: model.info.predictionType, ...overrides });
  } else {
    throw new ArgumentTypeError(`Expected options.scheduler to be a scheduler name or a Scheduler but received ${describe(o.scheduler)}`);
  }
  const seed: Seed = o.seed === undefined ? Math.floor(Math.random() * 2 ** 32) : (toSeed(o.seed, 'seed'), o.seed as Seed);
  const clipSkip = o.clipSkip === undefined ? undefined : expectInteger(o.clipSkip, 'clipSkip', 1, 1000);
  const promptWeighting = o.promptWeighting === undefined ? true : expectBoolean(o.promptWeighting, 'promptWeighting');
  if (o.onStep !== undefined && typeof o.onStep !== 'function') {
    throw new ArgumentTypeError(`Expected options.onStep to be a function but received ${describe(o.onStep)}`);
  }
  const preview = o.preview === undefined ? undefined : expectOneOf(o.preview, 'options.preview', PREVIEW_METHODS);
  if (preview !== undefined && o.onStep === undefined) throw new ArgumentTypeError('options.preview needs options.onStep to receive the previews');
  const previewEvery = o.previewEvery === undefined ? (preview === 'vae' ? 5 : 1) : expectInteger(o.previewEvery, 'previewEvery', 1, 1000);
  const tinyVae = o.tinyVae === undefined ? false : expectBoolean(o.tinyVae, 'options.tinyVae');
  if (preview === 'taesd' || tinyVae) {
    const what = tinyVae ? 'options.tinyVae' : "options.preview 'taesd'";
    if (!model.tinyVae) throw new ArgumentTypeError(`${what} needs a tiny VAE: load the model with { tinyVae: PATH } (a TAESD file or folder)`);
    if (!model.tinyVae.info.hasDecoder) throw new ArgumentTypeError(`${what} needs a tiny VAE with a decoder; ${model.tinyVae.info.path} has only an encoder`);
  }
  if (o.signal !== undefined) expectSignal(o.signal, 'options.signal');
  const outputType = o.outputType === undefined ? 'tensor' : expectOneOf(o.outputType, 'options.outputType', OUTPUT_TYPES);
  const memoryReport = o.memoryReport === undefined ? false : expectBoolean(o.memoryReport, 'memoryReport');
  if (memoryReport && model.memoryUsage === undefined) throw new ArgumentTypeError('options.memoryReport needs a model that reports memory');
  return {
    prompt, negativePrompt, width, height, steps, guidanceScale, scheduler, seed, batchSize, clipSkip, promptWeighting,
    onStep: o.onStep as StepCallback | undefined, preview, previewEvery, tinyVae, signal: o.signal as AbortSignal | undefined, outputType,
    memoryReport,
  };
}

export function checkStrength(value: unknown, fallback: number): number {
  return value === undefined ? fallback : expectNumber(value, 'strength', 0, 1);
}

export function requireInput(o: Record<string, unknown>, key: string, pipeline: PipelineName): void {
  if (o[key] === undefined || o[key] === null) throw new ArgumentTypeError(`${pipeline} needs options.${key}`);
}

export function requireUNet(model: PipelineModel, pipeline: PipelineName, allowed: number[], what: string): void {
  if (!allowed.includes(model.unet.inChannels)) {
    throw new ArgumentRangeError(`${pipeline} needs ${what}; this UNet takes ${model.unet.inChannels} input channels`);
  }
}

/** `options.latents` given to txt2img or inpaint: a finite tensor of exactly the latents' shape. */
export function checkGivenLatents(value: unknown, shape: readonly number[]): Tensor {
  const latents = tensorArgument(value, 'options.latents');
  if (latents.rank !== 4 || latents.shape.some((d, i) => d !== shape[i])) {
    throw new ArgumentRangeError(`Expected options.latents of shape [${shape.join(', ')}] but received [${latents.shape.join(', ')}]`);
  }
  return latents;
}
