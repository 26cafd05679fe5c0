// A Stable Diffusion model as the engine sees it: every layout (diffusers folder, original
// single-file checkpoint, GGUF) mapped to one canonical naming, plus what detection concludes
// (family, variant, prediction type, shapes). Names are diffusers' state-dict keys with the
// component as prefix: `unet.…`, `vae.…`, `text_encoder.…` (CLIPTextModel keys without
// `text_model.`). See the README's "Model files" section for the rules.
import type { ModelFileFormat } from './model-file.js';
import { native, type NativeAddon } from './native.js';
import { PREDICTION_TYPES, type ModelInfo, type PredictionType } from './stable-diffusion.js';
import { Tensor, type TensorLike } from './tensor.js';
import { describe, expectObject, expectOneOf, expectPath, expectString } from './validate.js';

/** `diffusers`: a pipeline folder; `ldm`: the original checkpoint names; `canonical`: our GGUF. */
export type ModelLayout = 'diffusers' | 'ldm' | 'canonical';

export interface UNetDetails {
  /** 4 text-to-image, 9 inpainting, 5 depth. */
  inChannels: number;
  outChannels: number;
  /** Per level, e.g. [320, 640, 1280, 1280]. */
  blockChannels: number[];
  /** Per level (down order): whether it has cross-attention transformer blocks. */
  crossAttention: boolean[];
  /** Attention heads per level; the mid block uses the last. */
  heads: number[];
  layersPerBlock: number;
  transformerDepth: number;
  contextDim: number;
  timeEmbedDim: number;
  /** SD2: linear proj_in/proj_out; SD1: 1x1 convolutions. */
  linearProjection: boolean;
}

export interface VaeDetails {
  blockChannels: number[];
  layersPerBlock: number;
  latentChannels: number;
  scalingFactor: number;
}

export interface TextEncoderDetails {
  vocabSize: number;
  maxPositions: number;
  hidden: number;
  intermediate: number;
  heads: number;
  /** Layers stored in the file. */
  layers: number;
  /** Layers SD runs: one fewer than stored for SD2's original checkpoints (SD uses the penultimate). */
  layersUsed: number;
  activation: 'quick_gelu' | 'gelu';
  layerNormEps: number;
  /** `<|endoftext|>` for SD1, `!` for SD2, or what the folder's tokenizer config says. */
  padToken: string;
}

export interface ModelDetails extends ModelInfo {
  /** Where `predictionType` came from: `option`, `scheduler config`, `metadata …`, `heuristic: …`. */
  predictionTypeSource: string;
  /** Default width and height: 768 for SD2 v-prediction, 512 otherwise (or the folder's config). */
  imageSize: number;
  contextDim: number;
  layout: ModelLayout;
  format: ModelFileFormat;
  path: string;
  /** Tensors in the source that belong to no component (EMA copies, DDPM buffers, …). */
  ignoredTensors: number;
  /** Canonical tensors the networks do not read (e.g. SD2's last OpenCLIP layer). */
  unusedTensors: string[];
  unet: UNetDetails;
  vae: VaeDetails;
  textEncoder: TextEncoderDetails;
}

export interface CanonicalTensorInfo {
  /** Canonical name, e.g. `unet.down_blocks.0.attentions.0.proj_in.weight`. */
  name: string;
  /** Outermost first, as PyTorch lists it. */
  shape: number[];
  /** Storage type in the file: `f32`, `f16`, `bf16`, `q8_0`, … */
  type: string;
}

export interface ModelInspection {
  info: ModelDetails;
  tensors: CanonicalTensorInfo[];
}

export interface InspectModelOptions {
  /** Overrides what the files say (or what detection guesses for single files). */
  predictionType?: PredictionType;
}

interface ModelAddon {
  inspectModel(path: string, predictionType: PredictionType | undefined): Promise<ModelInspection>;
  readCanonicalTensors(path: string, names: string[]): Promise<TensorLike[]>;
}

// Registered by native/addon/model_binding.cpp.
function addon(): NativeAddon & ModelAddon {
  return native() as NativeAddon & ModelAddon;
}

/**
 * Maps a model (a .safetensors/.ckpt/.gguf file or a diffusers folder) to canonical names,
 * detects what it is and checks that every tensor its networks need is there with the right
 * shape. Rejects with `ERR_MODEL_INCOMPLETE` (missing tensors, named) or `ERR_MODEL_FORMAT`.
 */
export async function inspectModel(path: string, options: InspectModelOptions = {}): Promise<ModelInspection> {
  const file = expectPath(path, 'path');
  const o = expectObject(options, 'options');
  const predictionType =
    o.predictionType === undefined ? undefined : expectOneOf(o.predictionType, 'options.predictionType', PREDICTION_TYPES);
  return addon().inspectModel(file, predictionType);
}

/** Reads one tensor of a model by its canonical name, as float32. */
export async function readCanonicalTensor(path: string, name: string): Promise<Tensor> {
  const [tensor] = await readCanonicalTensors(path, [expectString(name, 'name')]);
  return tensor!;
}

/** Reads several tensors of a model by canonical name, as float32 (the model is mapped once). */
export async function readCanonicalTensors(path: string, names: readonly string[]): Promise<Tensor[]> {
  const file = expectPath(path, 'path');
  if (!Array.isArray(names)) throw new TypeError(`Expected names to be an array of strings but received ${describe(names)}`);
  const list = names.map((name, i) => expectString(name, `names[${i}]`));
  return (await addon().readCanonicalTensors(file, list)).map((t) => Tensor.of(t));
}
