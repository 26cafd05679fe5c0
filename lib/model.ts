// A Stable Diffusion model as the engine sees it: every layout (diffusers folder, original
// single-file checkpoint, GGUF) mapped to one canonical naming, plus what detection concludes
// (family, variant, prediction type, shapes). Names are diffusers' state-dict keys with the
// component as prefix: `unet.…`, `vae.…`, `text_encoder.…` (CLIPTextModel keys without
// `text_model.`). See the README's "Model files" section for the rules.
import { native } from './native.js';
import { Tensor } from './tensor.js';
import { PREDICTION_TYPES, type ModelInspection, type PredictionType } from './types.js';
import { describe, expectKnownKeys, expectObject, expectOneOf, expectPath, expectString, optionNames } from './validate.js';
import { ArgumentTypeError } from './errors.js';

/** Options of `inspectModel`. */
export interface InspectModelOptions {
  /** Overrides what the files say (or what detection guesses for single files). */
  predictionType?: PredictionType;
}

/**
 * Maps a model (a .safetensors/.ckpt/.gguf file or a diffusers folder) to canonical names,
 * detects what it is and checks that every tensor its networks need is there with the right
 * shape. Rejects with `ERR_MODEL_INCOMPLETE` (missing tensors, named) or `ERR_MODEL_FORMAT`.
 */
export async function inspectModel(path: string, options: InspectModelOptions = {}): Promise<ModelInspection> {
  const file = expectPath(path, 'path');
  const o = expectObject(options, 'options');
  expectKnownKeys(o, 'options', optionNames<InspectModelOptions>({ predictionType: true }));
  const predictionType =
    o.predictionType === undefined ? undefined : expectOneOf(o.predictionType, 'options.predictionType', PREDICTION_TYPES);
  return native().inspectModel(file, predictionType);
}

/** Reads one tensor of a model by its canonical name, as float32. */
export async function readCanonicalTensor(path: string, name: string): Promise<Tensor> {
  const [tensor] = await readCanonicalTensors(path, [expectString(name, 'name')]);
  return tensor!;
}

/** Reads several tensors of a model by canonical name, as float32 (the model is mapped once). */
export async function readCanonicalTensors(path: string, names: readonly string[]): Promise<Tensor[]> {
  const file = expectPath(path, 'path');
  if (!Array.isArray(names)) throw new ArgumentTypeError(`Expected names to be an array of strings but received ${describe(names)}`);
  const list = names.map((name, i) => expectString(name, `names[${i}]`));
  return (await native().readCanonicalTensors(file, list)).map((t) => Tensor.of(t));
}
