import { StableDiffusionError } from './errors.js';
import { expectBoolean, expectInteger, expectObject, expectOneOf, expectString } from './validate.js';

export const BACKENDS = ['auto', 'cpu', 'vulkan', 'cuda'] as const;
export type Backend = (typeof BACKENDS)[number];

export const WEIGHT_TYPES = ['f32', 'f16', 'q8_0', 'q5_0', 'q5_1', 'q4_0', 'q4_1'] as const;
export type WeightType = (typeof WEIGHT_TYPES)[number];

export const PREDICTION_TYPES = ['epsilon', 'v_prediction'] as const;
export type PredictionType = (typeof PREDICTION_TYPES)[number];

export interface LoadOptions {
  /** A single-file checkpoint (.safetensors, .ckpt, .gguf) or a diffusers folder. */
  model: string;
  backend?: Backend;
  /** Convert weights to this type at load time (norms and biases stay in float). */
  weightType?: WeightType;
  /** A separate VAE file to use instead of the model's own. */
  vae?: string;
  /** CPU threads; defaults to `systemInfo().defaultThreads`. */
  threads?: number;
  /** Overrides what the model files say (or what detection guesses for single files). */
  predictionType?: PredictionType;
  flashAttention?: boolean;
  vaeTiling?: boolean;
  offload?: boolean;
}

export interface ModelInfo {
  family: 'sd1' | 'sd2';
  variant: 'base' | 'inpaint' | 'depth';
  predictionType: PredictionType;
}

/** Checks `LoadOptions` and returns them with defaults filled in. */
export function checkLoadOptions(options: unknown): Required<Pick<LoadOptions, 'model' | 'backend'>> & LoadOptions {
  const o = expectObject(options, 'options');
  const checked: LoadOptions & { backend: Backend } = {
    model: expectString(o.model, 'options.model'),
    backend: o.backend === undefined ? 'auto' : expectOneOf(o.backend, 'options.backend', BACKENDS),
  };
  if (checked.model.length === 0) throw new RangeError('Expected options.model to be a path but received ""');
  if (o.weightType !== undefined) checked.weightType = expectOneOf(o.weightType, 'options.weightType', WEIGHT_TYPES);
  if (o.vae !== undefined) checked.vae = expectString(o.vae, 'options.vae');
  if (o.threads !== undefined) checked.threads = expectInteger(o.threads, 'options.threads', 1, 1024);
  if (o.predictionType !== undefined) {
    checked.predictionType = expectOneOf(o.predictionType, 'options.predictionType', PREDICTION_TYPES);
  }
  for (const key of ['flashAttention', 'vaeTiling', 'offload'] as const) {
    if (o[key] !== undefined) checked[key] = expectBoolean(o[key], `options.${key}`);
  }
  return checked;
}

/**
 * A loaded Stable Diffusion model. Model loading, the networks and the pipelines are not built
 * yet (see the README's status table): `load` checks its options, then rejects with
 * ERR_NOT_IMPLEMENTED.
 */
export class StableDiffusion {
  private constructor() {}

  static async load(options: LoadOptions): Promise<StableDiffusion> {
    checkLoadOptions(options);
    throw new StableDiffusionError('ERR_NOT_IMPLEMENTED', 'Loading models is not implemented yet in this version');
  }
}
