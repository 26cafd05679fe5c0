// Loads sd_node.node once and describes everything it exports (NativeAddon, after
// node-llama-cpp's AddonTypes.ts). Everything else in lib/ reaches the native engine through
// `native()`, typed by it: no module declares or casts to a part of the addon of its own.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { loadBinary, type BinaryAddon, type LoadedBinary } from './binary/load.js';
import { StableDiffusionError, type ErrorCode } from './errors.js';
import type { TensorLike } from './tensor.js';
import type {
  Backend, ConvertOptions, ConvertResult, DeviceChoice, GgufWriteResult, GgufWriteType, LoadedModelInfo, LoraFileReport, LoraStatus,
  MemoryUsage, ModelDevice, ModelFileInfo, ModelInspection, ModelMemory, NativeLoraRequest, Network, PredictionType, PromptChunk,
  PromptMode, TokenizedPrompt, TorchKernel, WeightInfo, WeightType, EmbeddingTrigger,
} from './types.js';

export interface NativeSystemInfo {
  version: string;
  ggmlVersion: string;
  ggmlCommit: string;
  backendDir: string;
  backends: string[];
  /** The module file each of `backends` was loaded from. */
  backendPaths: string[];
  cpuFeatures: Record<string, string>;
  defaultThreads: number;
}

export interface NativeDevice {
  name: string;
  description: string;
  type: 'cpu' | 'gpu' | 'igpu' | 'accel' | 'unknown';
  backend: string;
  memoryFree: number;
  memoryTotal: number;
}

/** The core's scheduler table (native/core/sched/scheduler_catalog.cpp): the one source of scheduler names, A1111 names and override ranges. */
export interface NativeSchedulerCatalog {
  /** Our schedulers, in listing order: whether each takes useKarrasSigmas, has a begin index, and its model calls per step. */
  schedulers: Array<{ name: string; karrasSigmas: boolean; beginIndex: boolean; order: number }>;
  /** AUTOMATIC1111's names and the scheduler each stands for, in A1111's order. */
  a1111: Array<{ name: string; scheduler: string }>;
  /** The overrides createScheduler takes: the names a 'oneOf' takes, the inclusive range of an 'integer' or 'number'. */
  overrides: Array<{ name: string; type: 'oneOf' | 'boolean' | 'integer' | 'number'; values?: string[]; min?: number; max?: number }>;
}


/** A loaded model (native/addon/sd_model_binding.cpp's NativeModel): the native half of `StableDiffusion`. */
export interface NativeModel extends TextEncoderNative, UNetNative, VaeNative {
  info(): LoadedModelInfo;
  weights(): WeightInfo[];
  /** The weight as loaded (with `loras` applied as a network call applies them), dequantized to float32. */
  readWeight(name: string, loras?: NativeLoraRequest[]): Promise<TensorLike>;
  memory(): ModelMemory;
  memoryUsage(resetPeak?: boolean): MemoryUsage;
  devices(): Record<Network, ModelDevice>;
  /** Reads (or takes from the model's cache), maps and checks LoRA files; nothing changes in the model. */
  prepareLoras(loras: NativeLoraRequest[]): Promise<LoraFileReport[]>;
  /** How the LoRAs now applied are held. */
  loraStatus(): LoraStatus;
  /** Frees the weights; a worker still running keeps its own reference until it finishes. */
  dispose(): void;
}

/** The model's text-encoder methods (native/addon/text_encoder_binding.h). */
export interface TextEncoderNative {
  encodeText(ids: Int32Array, batch: number, clipSkip: number, loras?: NativeLoraRequest[], embeddings?: TensorLike): Promise<TensorLike>;
  encodePrompt(
    cond: PromptChunk[],
    uncond: PromptChunk[],
    options: { clipSkip: number; weighting: boolean; padId: number; loras?: NativeLoraRequest[]; embeddings?: TensorLike },
  ): Promise<{ cond: TensorLike; uncond: TensorLike }>;
}

/** The model's UNet method. */
export interface UNetNative {
  unetPredict(
    sample: TensorLike,
    timestep: number | number[],
    context: TensorLike,
    options?: { flashAttention?: boolean; loras?: NativeLoraRequest[] },
  ): Promise<TensorLike>;
}

/** The model's VAE methods. */
export interface VaeNative {
  vaeDecode(latents: TensorLike): Promise<TensorLike>;
  vaeEncode(image: TensorLike): Promise<TensorLike>;
}

/** native/addon/tiny_vae_binding.h's NativeTinyVae: TAESD beside a model. */
export interface NativeTinyVae {
  info(): {
    path: string; layout: string; files: string[]; hasEncoder: boolean; hasDecoder: boolean; latentChannels: number;
    downscaleFactor: number; device: string;
  };
  decode(latents: TensorLike): Promise<TensorLike>;
  encode(image: TensorLike): Promise<TensorLike>;
  dispose(): void;
}

/** native/addon/upscaler_binding.h's NativeUpscaler: Real-ESRGAN's RRDBNet on its own. */
export interface NativeUpscaler {
  info(): {
    path: string; format: string; architecture: string; stateDict: string; scale: number; features: number; growth: number;
    blocks: number; inputMultiple: number; device: string;
  };
  /** One tile: image [B, 3, H, W] in [0, 1] → [B, 3, scale·H, scale·W], not clamped. */
  run(image: TensorLike): Promise<TensorLike>;
  dispose(): void;
}

/** native/addon/safety_checker_binding.h's NativeSafetyChecker: diffusers' safety checker beside a model. */
export interface NativeSafetyChecker {
  info(): {
    path: string; files: string[]; imageSize: number; patchSize: number; hidden: number; layers: number; heads: number;
    projectionDim: number; concepts: number; specialConcepts: number; device: string;
  };
  /** Pixel values [B, 3, S, S] (CLIP-normalised) → per image: embeddings, cosines, diffusers' rounded scores, flags. */
  check(pixels: TensorLike): Promise<{
    imageEmbeds: TensorLike; conceptCosine: TensorLike; specialCosine: TensorLike; conceptScores: TensorLike;
    specialScores: TensorLike; nsfw: boolean[];
  }>;
  dispose(): void;
}

/** native/addon/depth_estimator_binding.h's NativeDepthEstimator: DPT-Hybrid beside a depth model. */
export interface NativeDepthEstimator {
  info(): {
    path: string; layout: string; files: string[]; imageSize: number; hidden: number; layers: number; heads: number; fusion: number;
    device: string;
  };
  /** Pixel values [B, 3, S, S] (as DPTImageProcessor gives them) → predicted depth [B, S, S]. */
  estimate(pixels: TensorLike): Promise<TensorLike>;
  dispose(): void;
}

/** `loadModel`'s options: `LoadOptions` checked, less what lib/ applies itself. */
export interface NativeLoadOptions {
  backend: Backend;
  devices?: Partial<Record<Network, DeviceChoice>>;
  weightType?: WeightType;
  predictionType?: PredictionType;
  vae?: string;
  threads?: number;
  offload?: boolean;
}

/** native/addon/tokenizer_binding.cpp's Tokenizer. */
export interface NativeTokenizer {
  encode(text: string): number[];
  tokenize(text: string): string[];
  decode(ids: number[], skipSpecialTokens: boolean): string;
  convertIdsToTokens(ids: number[]): string[];
  tokenizePrompt(
    prompt: string,
    options: { mode: PromptMode; weighting: boolean; padId: number; embeddings?: EmbeddingTrigger[] },
  ): TokenizedPrompt;
}

/** native/addon/rng_binding.cpp's TorchGenerator. */
export interface NativeTorchGenerator {
  randn(shape: number[]): Promise<TensorLike>;
  manualSeed(seed: bigint): void;
  initialSeed(): bigint;
  kernel(): TorchKernel;
}

/** The scheduler config overrides the native Scheduler reads (lib/scheduler.ts checks them first). */
export interface NativeSchedulerOverrides {
  timestepSpacing?: string;
  useKarrasSigmas?: boolean;
  predictionType?: string;
  stepsOffset?: number;
  eta?: number;
}

/** native/addon/scheduler_binding.cpp's Scheduler. */
export interface NativeScheduler {
  readonly name: string;
  readonly stochastic: boolean;
  readonly timesteps: number[];
  readonly sigmas: Float32Array | null;
  readonly initNoiseSigma: number;
  setTimesteps(steps: number): void;
  setBeginIndex(index: number): void;
  scaleModelInput(sample: TensorLike, timestep: number): TensorLike;
  /** `noise`: a tensor, or a function the scheduler calls with the shape each time it draws. */
  step(
    output: TensorLike,
    timestep: number,
    sample: TensorLike,
    noise?: TensorLike | ((shape: number[]) => TensorLike | Float32Array),
  ): { prevSample: TensorLike };
  addNoise(original: TensorLike, noise: TensorLike, timesteps: number | number[]): TensorLike;
}

/**
 * Everything sd_node.node exports, by the binding file that registers it. Asynchronous functions
 * run on a worker thread. test/native-surface.test.ts checks this against the loaded addon.
 */
export interface NativeAddon extends BinaryAddon {
  // js_errors.cpp: how engine errors become StableDiffusionErrors (set once, by native())
  setErrorFactory(factory: (code: string, message: string, path?: string) => Error): void;
  // system_binding.cpp (init and probeLibrary: BinaryAddon)
  systemInfo(): NativeSystemInfo;
  returnFreeMemory(): void;
  listDevices(): NativeDevice[];
  deviceCheck(device: string, a: TensorLike, b: TensorLike, threads: number): Promise<TensorLike>;

  // model_file_binding.cpp
  inspectModelFile(path: string): Promise<ModelFileInfo>;
  readModelTensor(path: string, name: string): Promise<TensorLike>;
  writeGguf(
    path: string,
    tensors: { name: string; type: GgufWriteType; tensor: TensorLike }[],
    metadata: Record<string, string>,
  ): Promise<GgufWriteResult>;

  // model_binding.cpp
  inspectModel(path: string, predictionType: PredictionType | undefined): Promise<ModelInspection>;
  readCanonicalTensors(path: string, names: string[]): Promise<TensorLike[]>;

  // sd_model_binding.cpp
  loadModel(path: string, options: NativeLoadOptions): Promise<NativeModel>;
  convertModel(input: string, output: string, options: ConvertOptions): Promise<ConvertResult>;
  /** The process's host memory; `resetPeak` restarts the peak after reading it (Linux). */
  memoryStats(resetPeak?: boolean): MemoryUsage['host'];

  // tiny_vae_binding.cpp
  loadTinyVae(path: string, options: { backend: string; weightType?: WeightType; threads?: number }): Promise<NativeTinyVae>;

  // depth_estimator_binding.cpp
  loadDepthEstimator(path: string, options: { backend: string; weightType?: WeightType; threads?: number }): Promise<NativeDepthEstimator>;
  // safety_checker_binding.cpp
  loadSafetyChecker(path: string, options: { backend: string; weightType?: WeightType; threads?: number }): Promise<NativeSafetyChecker>;

  // upscaler_binding.cpp
  loadUpscaler(path: string, options: { backend: string; weightType?: WeightType; threads?: number }): Promise<NativeUpscaler>;

  // tokenizer_binding.cpp
  Tokenizer: new (mergesText: string) => NativeTokenizer;
  parsePromptAttention(prompt: string): [string, number][];

  // rng_binding.cpp
  torchRandn(shape: number[], seed: bigint, kernel: TorchKernel): Promise<TensorLike>;
  TorchGenerator: new (seed: bigint, kernel: TorchKernel) => NativeTorchGenerator;

  // scheduler_binding.cpp
  Scheduler: new (name: string, overrides: NativeSchedulerOverrides) => NativeScheduler;
  schedulerCatalog(): NativeSchedulerCatalog;
}

export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

let loaded: LoadedBinary<NativeAddon> | undefined;

function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
}

/** The loaded addon, loading it (and ggml's backends) on first use. */
export function native(): NativeAddon {
  if (loaded === undefined) {
    loaded = loadBinary<NativeAddon>(packageRoot, packageVersion());
    loaded.addon.setErrorFactory(
      (code, message, path) => new StableDiffusionError(code as ErrorCode, message, path === undefined ? {} : { path }),
    );
  }
  return loaded.addon;
}

/** Which binary and GPU variants were loaded, and why others were not. */
export function loadedBinary(): LoadedBinary<NativeAddon> {
  native();
  return loaded!;
}
