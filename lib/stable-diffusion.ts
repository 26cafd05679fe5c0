import { basename, extname, resolve } from 'node:path';

import { EmbeddingTable, type SkippedEmbedding, type TextualInversion } from './embeddings.js';
import { AbortError, ArgumentRangeError, ArgumentTypeError, StableDiffusionError } from './errors.js';
import type { ImageInput } from './image.js';
import { checkDirs, checkLoraSpecs, LORA_EXTENSIONS, NamedFiles, parseLoraTags, type LoraTag } from './lora.js';
import { native, type NativeModel } from './native.js';
import {
  depth2img, img2img, inpaint, txt2img, type Depth2ImgOptions, type GenerationResult, type Img2ImgOptions,
  type InpaintOptions, type PipelineModel, type Txt2ImgOptions,
} from './pipelines/index.js';
import { DepthEstimator, depthEstimatorSource, type DepthEstimatorSource } from './depth-estimator.js';
import { folderSafetyChecker, readImagesForCheck, SafetyChecker, type SafetyCheckResult } from './safety-checker.js';
import { createScheduler, type Scheduler, type SchedulerOverrides } from './scheduler.js';
import { Tensor } from './tensor.js';
import { TinyVae } from './tiny-vae.js';
import { Tokenizer } from './tokenizer.js';
import { ClipTextEncoder, encodePrompt, type EncodePromptOptions, type PromptEmbeddings } from './text-encoder.js';
import { UNet } from './unet.js';
import { checkTileSize, Vae } from './vae.js';
import {
  BACKENDS, NETWORKS, PREDICTION_TYPES, WEIGHT_TYPES, type AppliedLora, type Backend, type ConvertOptions, type ConvertResult,
  type DeviceChoice, type LoadedModelInfo, type LoraFileReport, type LoraSpec, type LoraStatus, type MemoryUsage, type ModelDevice,
  type ModelMemory, type NativeLoraRequest, type Network, type PredictionType, type WeightInfo, type WeightType,
} from './types.js';
import { expectBoolean, expectInteger, expectKnownKeys, expectObject, expectOneOf, expectPath, expectSignal, expectString, optionNames } from './validate.js';

/** Options of `StableDiffusion.load`. */
export interface LoadOptions {
  /** A single-file checkpoint (.safetensors, .ckpt, .gguf) or a diffusers folder. */
  model: string;
  /** Where the networks run: CUDA, then Vulkan, then the CPU for `'auto'` (the default). */
  backend?: Backend;
  /**
   * Per-network placement overriding `backend`, e.g. `{ textEncoder: 'cpu', vae: 'cpu' }` to keep
   * only the UNet on a small GPU. Each network's weights and work stay on its device; the
   * pipelines pass tensors between them through host memory.
   */
  devices?: Partial<Record<Network, DeviceChoice>>;
  /** Convert weights to this type at load time (norms and biases stay in float). */
  weightType?: WeightType;
  /** A separate VAE file to use instead of the model's own. */
  vae?: string;
  /**
   * TAESD, madebyollin's tiny autoencoder (diffusers' AutoencoderTiny; `taesd` for SD 1.x/2.x),
   * loaded beside the model as `sd.tinyVae`: a diffusers folder or its
   * `diffusion_pytorch_model.safetensors`, or madebyollin's `taesd_decoder` / `taesd_encoder`
   * (.safetensors or .pth; given one, the other is read too when it lies beside it). It makes
   * `preview: 'taesd'` possible, and `tinyVae: true` in a call uses it as the whole VAE. It runs
   * where `devices.vae` (else `backend`) says, with `weightType` and `threads`. A file that is
   * not TAESD: ERR_MODEL_FORMAT naming it.
   */
  tinyVae?: string;
  /**
   * diffusers' safety checker (StableDiffusionSafetyChecker, a CLIP ViT-L/14 vision tower scoring
   * each image against 17 concept embeddings): `true` takes the model folder's `safety_checker/`,
   * a path takes a checker's folder (config.json with model.safetensors or pytorch_model.bin) or
   * weight file, `false` turns it off. Default: on when the model is a diffusers folder that has
   * `safety_checker/` (as diffusers), off otherwise. When on, `sd.safetyChecker` is set, every
   * decoded result carries `nsfwContentDetected`, and flagged images come back black. It runs
   * where `devices.vae` (else `backend`) says. A file that is not a checker:
   * ERR_SAFETY_CHECKER_FORMAT naming it; `true` without `safety_checker/`: ERR_FILE_NOT_FOUND.
   */
  safetyChecker?: boolean | string;
  /**
   * A separate depth estimator for `depth2img` without a depth map and `estimateDepth`: DPT-Hybrid
   * (MiDaS 3.0) as a diffusers depth folder's `depth_estimator/` (config.json and
   * model.safetensors or pytorch_model.bin), a folder holding one (with `feature_extractor/`
   * beside it), its weight file, or MiDaS's own file (MiDaS's names, alone or under
   * `depth_model.` as in SD 2's depth checkpoint). Loaded at once; it replaces the model's own
   * (a depth folder's `depth_estimator/` or the checkpoint's `depth_model.*`, which are otherwise
   * loaded on first use). It runs where `devices.vae` (else `backend`) says. Weights that are not
   * a DPT-Hybrid: ERR_DEPTH_ESTIMATOR_FORMAT; none at all: ERR_NO_DEPTH_ESTIMATOR.
   */
  depthEstimator?: string;
  /** CPU threads; defaults to `systemInfo().defaultThreads`. */
  threads?: number;
  /** Overrides what the model files say (or what detection guesses for single files). */
  predictionType?: PredictionType;
  /** Attention through ggml's fused flash-attention kernel (K and V in f16; default false). */
  flashAttention?: boolean;
  /** Decode and encode in overlapping, blended tiles (lib/vae.ts); calls can override it. */
  vaeTiling?: boolean;
  /** Tile side in pixels for `vaeTiling`, a multiple of 32 (default 256). */
  vaeTileSize?: number;
  /**
   * Keep only the network in use on the device: running one network frees the others' weights
   * and compute buffers, and a network's weights are read again from the model file when next
   * needed (nothing is uploaded at load). Same results, less memory, slower stage changes.
   */
  offload?: boolean;
  /**
   * Aborting it rejects the load at once with an AbortError (code ABORT_ERR). Reading the file
   * cannot be interrupted on its worker thread; what it loaded is freed when that read ends.
   */
  signal?: AbortSignal;
  /**
   * Folders of LoRA files (.safetensors, .ckpt, .pt, .bin; subfolders included) that `<lora:NAME:W>`
   * tags and `{ name }` LoRAs are looked up in, by file name without extension (docs/guide/lora.md).
   */
  loraDirs?: string[];
  /**
   * Folders of textual-inversion embeddings (A1111's .pt/.bin/.safetensors, diffusers'
   * learned_embeds), read at load; each is triggered by its file name in a prompt. Files of
   * another width (an SD 2.x embedding on SD 1.x) or unreadable are skipped with one warning.
   */
  embeddingDirs?: string[];
}

const LOAD_OPTIONS = optionNames<LoadOptions>({
  model: true, backend: true, devices: true, weightType: true, vae: true, tinyVae: true, safetyChecker: true, depthEstimator: true, threads: true,
  predictionType: true,
  flashAttention: true, vaeTiling: true, vaeTileSize: true, offload: true, signal: true, loraDirs: true, embeddingDirs: true,
});

/** Checks `LoadOptions` and returns them with defaults filled in. */
export function checkLoadOptions(options: unknown): Required<Pick<LoadOptions, 'model' | 'backend'>> & LoadOptions {
  const o = expectObject(options, 'options');
  expectKnownKeys(o, 'options', LOAD_OPTIONS);
  const checked: LoadOptions & { backend: Backend } = {
    model: expectPath(o.model, 'options.model'),
    backend: o.backend === undefined ? 'auto' : expectOneOf(o.backend, 'options.backend', BACKENDS),
  };
  if (o.devices !== undefined) checked.devices = checkDevices(o.devices);
  if (o.weightType !== undefined) checked.weightType = expectOneOf(o.weightType, 'options.weightType', WEIGHT_TYPES);
  if (o.vae !== undefined) checked.vae = expectPath(o.vae, 'options.vae');
  if (o.tinyVae !== undefined) checked.tinyVae = expectPath(o.tinyVae, 'options.tinyVae');
  if (o.safetyChecker !== undefined) {
    checked.safetyChecker = typeof o.safetyChecker === 'boolean' ? o.safetyChecker : expectPath(o.safetyChecker, 'options.safetyChecker');
  }
  if (o.depthEstimator !== undefined) checked.depthEstimator = expectPath(o.depthEstimator, 'options.depthEstimator');
  if (o.threads !== undefined) checked.threads = expectInteger(o.threads, 'options.threads', 1, 1024);
  if (o.predictionType !== undefined) {
    checked.predictionType = expectOneOf(o.predictionType, 'options.predictionType', PREDICTION_TYPES);
  }
  for (const key of ['flashAttention', 'vaeTiling', 'offload'] as const) {
    if (o[key] !== undefined) checked[key] = expectBoolean(o[key], `options.${key}`);
  }
  if (o.signal !== undefined) checked.signal = expectSignal(o.signal, 'options.signal');
  // SD's VAEs all downscale by 8.
  if (o.vaeTileSize !== undefined) checked.vaeTileSize = checkTileSize(o.vaeTileSize, 'options.vaeTileSize', 8);
  if (o.loraDirs !== undefined) checked.loraDirs = checkDirs(o.loraDirs, 'options.loraDirs');
  if (o.embeddingDirs !== undefined) checked.embeddingDirs = checkDirs(o.embeddingDirs, 'options.embeddingDirs');
  return checked;
}

function checkDevices(value: unknown): Partial<Record<Network, DeviceChoice>> {
  const given = expectObject(value, 'options.devices');
  const devices: Partial<Record<Network, DeviceChoice>> = {};
  for (const [key, choice] of Object.entries(given)) {
    const network = expectOneOf(key, 'a key of options.devices', NETWORKS);
    if (choice === undefined) continue;
    const name = expectString(choice, `options.devices.${network}`);
    if (name.trim() === '') {
      throw new ArgumentRangeError(`Expected options.devices.${network} to be a backend or a device name but received ""`);
    }
    devices[network] = name;
  }
  return devices;
}

function throwIfLoadAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortError('The load was aborted', { cause: signal.reason });
}

/**
 * `loading`, or an AbortError as soon as `signal` aborts. A model that arrives after that is
 * disposed: nobody can reach it any more.
 */
function untilAborted(loading: Promise<NativeModel>, signal: AbortSignal): Promise<NativeModel> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      reject(new AbortError('The load was aborted', { cause: signal.reason }));
      loading.then((model) => model.dispose(), () => undefined);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    loading.then(
      (model) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) return;
        resolve(model);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/**
 * A loaded Stable Diffusion 1.x/2.x model: its detected configuration (`info`), its tokenizer and
 * its weights on their devices (`devices`), the networks (`textEncoder`, `unet`, `vae`) and the pipelines
 * (`txt2img`, `img2img`, `inpaint`, `depth2img`).
 */
export class StableDiffusion {
  /** What detection concluded: family, variant, prediction type, image size, network shapes. */
  readonly info: LoadedModelInfo;
  /** CLIP's tokenizer, padding as this model's tokenizer config says (SD1 `<|endoftext|>`, SD2 `!`). */
  readonly tokenizer: Tokenizer;
  /**
   * The UNet's device (where the sampling loop runs): what `backend` or `devices.unet` chose, e.g.
   * `{ name: 'Vulkan0', backend: 'Vulkan', … }` for `backend: 'auto'` with a Vulkan build and device.
   */
  readonly device: ModelDevice;
  /** Each network's device: `{ textEncoder, unet, vae }`. */
  readonly devices: Readonly<Record<Network, ModelDevice>>;
  /** The VAE: `encode(image)` → latents, `decode(latents)` → image, `scalingFactor` (lib/vae.ts). */
  readonly vae: Vae;
  /** TAESD, when loaded with the `tinyVae` option (lib/tiny-vae.ts); null otherwise. */
  readonly tinyVae: TinyVae | null;
  /**
   * diffusers' safety checker, when on (the `safetyChecker` load option; lib/safety-checker.ts);
   * null otherwise.
   */
  readonly safetyChecker: SafetyChecker | null;
  /** The denoising UNet: `predict(sample, timestep, context)` → noise or v prediction (lib/unet.ts). */
  readonly unet: UNet;
  /** The CLIP text encoder: `encode(ids, { clipSkip })` → [1, n, hidden] (lib/text-encoder.ts). */
  readonly textEncoder: ClipTextEncoder;
  #native: NativeModel | undefined;
  readonly #loraFiles: NamedFiles;
  #loras: readonly AppliedLora[] = [];
  #loraRequests: readonly NativeLoraRequest[] = [];
  readonly #warned = new Set<string>();
  #embeddings = EmbeddingTable.empty();
  #embeddingDirs: readonly string[] = [];
  // The depth estimator: where it comes from and how it is loaded, and once loaded, itself.
  #depthSource: DepthEstimatorSource | undefined;
  #depthLoad: { backend: string; weightType?: WeightType; threads?: number } = { backend: 'auto' };
  #depth: Promise<DepthEstimator> | undefined;

  private constructor(
    model: NativeModel, flashAttention: boolean, vaeTiling: { tiling: boolean; tileSize?: number }, loraDirs: readonly string[],
    tinyVae: TinyVae | null = null, safetyChecker: SafetyChecker | null = null,
  ) {
    this.tinyVae = tinyVae;
    this.safetyChecker = safetyChecker;
    this.#native = model;
    this.info = model.info();
    this.devices = Object.freeze(model.devices());
    this.device = this.devices.unet;
    this.tokenizer = Tokenizer.clip({ padId: padIdFor(this.info.textEncoder.padToken) });
    this.textEncoder = new ClipTextEncoder(() => this.#model(), this.info.textEncoder, () => this.#loraRequests);
    this.unet = new UNet(() => this.#model(), this.info.unet, flashAttention, () => this.#loraRequests);
    this.vae = new Vae(() => this.#model(), this.info.vae, vaeTiling);
    this.#loraFiles = new NamedFiles(loraDirs, LORA_EXTENSIONS);
  }

  /**
   * Loads a model: a .safetensors, .ckpt or .gguf file or a diffusers folder. Every tensor the
   * networks need is checked (ERR_MODEL_INCOMPLETE names what is missing) and converted to
   * `weightType` if one is given. Runs on a worker thread.
   */
  static async load(options: LoadOptions): Promise<StableDiffusion> {
    const o = checkLoadOptions(options);
    throwIfLoadAborted(o.signal);
    const loading = native().loadModel(o.model, {
      backend: o.backend,
      ...(o.devices && { devices: o.devices }),
      ...(o.weightType && { weightType: o.weightType }),
      ...(o.predictionType && { predictionType: o.predictionType }),
      ...(o.vae !== undefined && { vae: o.vae }),
      ...(o.threads !== undefined && { threads: o.threads }),
      ...(o.offload && { offload: true }),
    });
    const model = o.signal ? await untilAborted(loading, o.signal) : await loading;
    let tiny: TinyVae | null = null;
    let checker: SafetyChecker | null = null;
    let depth: DepthEstimator | undefined;
    const beside = {
      backend: o.devices?.vae ?? o.backend,
      ...(o.weightType && { weightType: o.weightType }),
      ...(o.threads !== undefined && { threads: o.threads }),
    };
    try {
      if (o.tinyVae !== undefined) {
        tiny = new TinyVae(await native().loadTinyVae(o.tinyVae, beside));
        throwIfLoadAborted(o.signal);
      }
      const checkerPath = safetyCheckerPath(o.model, o.safetyChecker);
      if (checkerPath !== undefined) {
        checker = new SafetyChecker(await native().loadSafetyChecker(checkerPath, beside));
        throwIfLoadAborted(o.signal);
      }
      if (o.depthEstimator !== undefined) {
        const source = depthEstimatorSource(o.depthEstimator);
        depth = new DepthEstimator(await native().loadDepthEstimator(source.weights, beside), source.processorConfig);
        throwIfLoadAborted(o.signal);
      }
    } catch (error) {
      tiny?.dispose();
      checker?.dispose();
      depth?.dispose();
      model.dispose();
      throw error;
    }
    const sd = new StableDiffusion(model, o.flashAttention ?? false, {
      tiling: o.vaeTiling ?? false,
      ...(o.vaeTileSize !== undefined && { tileSize: o.vaeTileSize }),
    }, o.loraDirs ?? [], tiny, checker);
    sd.#depthLoad = beside;
    if (depth !== undefined) sd.#depth = Promise.resolve(depth);
    else if (sd.info.variant === 'depth') sd.#depthSource = depthEstimatorSource(o.model);
    if (o.embeddingDirs !== undefined && o.embeddingDirs.length > 0) {
      sd.#embeddingDirs = Object.freeze([...o.embeddingDirs]);
      try {
        await sd.reloadEmbeddings();
      } catch (error) {
        await sd.dispose();
        throw error;
      }
    }
    return sd;
  }

  /**
   * Reads the `embeddingDirs` given at load again (files added, changed or removed since), as
   * A1111's refresh of its embeddings does. Calls already running keep the embeddings they
   * started with. Files that cannot be used are skipped with one warning, as at load.
   */
  async reloadEmbeddings(): Promise<void> {
    this.#model();
    if (this.#embeddingDirs.length === 0) return;
    const table = await EmbeddingTable.load(this.#embeddingDirs, this.tokenizer, this.info.textEncoder.hidden);
    this.#embeddings = table;
    const skipped = table.skipped;
    if (skipped.length > 0) {
      const list = skipped.slice(0, 8).map((s) => `${s.name} (${s.reason})`).join('; ');
      const more = skipped.length > 8 ? `; and ${skipped.length - 8} more` : '';
      process.emitWarning(`${skipped.length} embedding${skipped.length === 1 ? '' : 's'} skipped: ${list}${more}`, {
        type: 'EmbeddingWarning', code: 'SDNODE_EMBEDDINGS_SKIPPED',
      });
    }
  }

  /**
   * The textual-inversion embeddings read from `embeddingDirs` at load, by the name that
   * triggers them in a prompt (empty without `embeddingDirs`).
   */
  get embeddings(): readonly TextualInversion[] {
    return this.#embeddings.list;
  }

  /**
   * The files of `embeddingDirs` left out at load (or at the last `reloadEmbeddings`): another
   * width than this model's text encoder, unreadable, … with the reason.
   */
  get skippedEmbeddings(): readonly SkippedEmbedding[] {
    return this.#embeddings.skipped;
  }

  /**
   * A prompt and a negative prompt → `{ cond, uncond }`, each [1, 77 · chunks, hidden], as A1111
   * encodes them (attention weights, 77-token chunks, the shorter padded with empty-prompt chunks).
   * With `promptWeighting: false` and at most 75 tokens this equals diffusers' `encode_prompt`.
   */
  async encodePrompt(prompt: string, options: EncodePromptOptions = {}): Promise<PromptEmbeddings> {
    return encodePrompt(this.#model(), this.textEncoder, this.tokenizer, prompt, options, {
      loras: this.#loraRequests, embeddings: this.#embeddings,
    });
  }

  /**
   * The LoRAs every call of this model runs with (`setLoras`), the component networks included
   * (`sd.textEncoder`, `sd.unet`, `sd.encodePrompt`): empty after load.
   */
  get loras(): readonly AppliedLora[] {
    return this.#loras;
  }

  /**
   * Sets the LoRAs every later call runs with, the component networks included (a pipeline call
   * adds its own `options.loras` and prompt tags to these). Each file is read and checked against
   * the model now (Error `ERR_LORA_FORMAT`, `ERR_LORA_INCOMPATIBLE`, `ERR_LORA_NOT_FOUND` with the
   * path or name); the weights change when a network next runs, not here, and an empty list
   * brings back exactly the base weights. Nothing is reloaded from the model file.
   */
  async setLoras(loras: LoraSpec[]): Promise<void> {
    const checked = checkLoraSpecs(loras, 'loras');
    const resolved = this.#resolveLoras(checked, []);
    await this.#prepareLoras(resolved.requests);
    this.#loras = Object.freeze(resolved.applied);
    this.#loraRequests = Object.freeze(canonicalOrder(resolved.requests));
  }

  /**
   * What the engine reads in LoRA files, as mapped onto this model: format, layers changed per
   * network, keys that change nothing here. Errors as `setLoras`.
   */
  async inspectLoras(loras: LoraSpec[]): Promise<LoraFileReport[]> {
    const resolved = this.#resolveLoras(checkLoraSpecs(loras, 'loras'), []);
    return this.#model().prepareLoras([...resolved.requests]);
  }

  /** How the LoRAs now applied are held: weights merged and at run time, and the memory each takes. */
  loraStatus(): LoraStatus {
    return this.#model().loraStatus();
  }

  // LoRA specs and prompt tags → files and strengths. Names are looked up in loraDirs.
  #resolveLoras(specs: readonly LoraSpec[], tags: readonly LoraTag[]): { applied: AppliedLora[]; requests: NativeLoraRequest[] } {
    const applied: AppliedLora[] = [];
    const find = (name: string, what: string): string => {
      const path = this.#loraFiles.find(name);
      if (path === undefined) {
        const where = this.#loraFiles.dirs.length > 0 ? `in ${this.#loraFiles.dirs.join(', ')}` : 'because no loraDirs were given at load';
        throw new StableDiffusionError('ERR_LORA_NOT_FOUND', `No LoRA named "${name}" (${what}) was found ${where}`);
      }
      return path;
    };
    for (const spec of specs) {
      const weight = spec.weight ?? 1;
      const path = spec.path !== undefined ? resolve(spec.path) : find(spec.name!, `options.loras name`);
      applied.push({
        name: spec.name ?? basename(path, extname(path)),
        path,
        textEncoderWeight: spec.textEncoderWeight ?? weight,
        unetWeight: spec.unetWeight ?? weight,
      });
    }
    for (const tag of tags) {
      applied.push({ name: tag.name, path: find(tag.name, tag.text), textEncoderWeight: tag.textEncoderWeight, unetWeight: tag.unetWeight });
    }
    const requests = applied.map(({ path, textEncoderWeight, unetWeight }) => ({ path, textEncoderWeight, unetWeight }));
    return { applied, requests };
  }

  // Reads and checks the files (cached natively); warns once per file about keys it ignores.
  async #prepareLoras(requests: readonly NativeLoraRequest[]): Promise<void> {
    if (requests.length === 0) return;
    const reports = await this.#model().prepareLoras([...requests]);
    for (const report of reports) {
      if (report.unmatched.length === 0 || this.#warned.has(report.path)) continue;
      this.#warned.add(report.path);
      const shown = report.unmatched.slice(0, 8).join(', ');
      const more = report.unmatched.length > 8 ? ` and ${report.unmatched.length - 8} more` : '';
      process.emitWarning(
        `${basename(report.path)}: ${report.unmatched.length} of its keys change nothing in this model and are ignored: ${shown}${more}`,
        { type: 'LoraWarning', code: 'SDNODE_LORA_UNMATCHED_KEYS' },
      );
    }
  }

  // A pipeline call: its LoRAs (sd.loras, options.loras, the prompt's tags) prepared, then the
  // pipeline run on a view of this model whose networks run with them.
  async #pipelineCall<T extends object>(
    options: T, run: (model: PipelineModel, options: T) => Promise<GenerationResult>,
  ): Promise<GenerationResult> {
    const o = expectObject(options, 'options');
    const tags = parseLoraTags(expectString(o.prompt, 'options.prompt')).loras;
    const specs = o.loras === undefined ? [] : checkLoraSpecs(o.loras, 'options.loras');
    const call = specs.length > 0 || tags.length > 0 ? this.#resolveLoras(specs, tags) : { applied: [], requests: [] };
    const applied = [...this.#loras, ...call.applied];
    const requests = canonicalOrder([...this.#loraRequests, ...call.requests]);
    await this.#prepareLoras(call.requests);
    const used = new Set<TextualInversion>();
    const embeddings = this.#embeddings;
    const model: PipelineModel =
      call.requests.length === 0 && embeddings.list.length === 0
        ? this
        : {
            info: this.info,
            unet: call.requests.length === 0 ? this.unet : this.unet.withLoras(requests),
            vae: this.vae,
            tinyVae: this.tinyVae,
            safetyChecker: this.safetyChecker,
            estimateDepth: (image) => this.estimateDepth(image),
            encodePrompt: (prompt, opts) =>
              encodePrompt(this.#model(), this.textEncoder, this.tokenizer, prompt, opts, { loras: requests, embeddings, used }),
            memoryUsage: (opts) => this.memoryUsage(opts),
          };
    let result: GenerationResult;
    try {
      result = await run(model, options);
    } finally {
      // A generation frees megabytes in the worker threads' malloc arenas; without this the
      // process's floor rises over hundreds of calls (test/soak.test.ts).
      native().returnFreeMemory();
    }
    if (applied.length > 0) result.parameters.loras = applied;
    if (used.size > 0) result.parameters.embeddings = [...used].map(({ name, path }) => ({ name, path }));
    return result;
  }

  /**
   * A scheduler by name (ours or A1111's) with SD's config plus `overrides`; `predictionType`
   * defaults to this model's (`info.predictionType`).
   */
  createScheduler(name: string, overrides?: SchedulerOverrides): Scheduler {
    const given = overrides === undefined ? {} : expectObject(overrides, 'overrides');
    return createScheduler(name, { predictionType: this.info.predictionType, ...given });
  }

  /**
   * Text to image as diffusers' StableDiffusionPipeline computes it on CPU (same seed, same
   * latents): classifier-free guidance with the negative prompt, the scheduler's loop, the VAE.
   * Rejects with an AbortError (code ABORT_ERR) when `signal` aborts or `onStep` returns false;
   * the model stays usable.
   */
  async txt2img(options: Txt2ImgOptions): Promise<GenerationResult> {
    this.#model();
    return this.#pipelineCall(options, txt2img);
  }

  /**
   * Image to image as diffusers' StableDiffusionImg2ImgPipeline: `image` encoded with the VAE,
   * noised to `strength` (default 0.8) and denoised over the last strength · steps steps.
   * Needs a base (4-channel) model.
   */
  async img2img(options: Img2ImgOptions): Promise<GenerationResult> {
    this.#model();
    return this.#pipelineCall(options, img2img);
  }

  /**
   * Inpainting as diffusers' StableDiffusionInpaintPipeline: repaints where `mask` is white.
   * Inpainting models (9-channel UNet) see the mask and the masked image; base models blend the
   * kept area back after every step.
   */
  async inpaint(options: InpaintOptions): Promise<GenerationResult> {
    this.#model();
    return this.#pipelineCall(options, inpaint);
  }

  /**
   * Depth-guided image to image as diffusers' StableDiffusionDepth2ImgPipeline. Needs a depth
   * model (SD 2 depth, 5-channel UNet). Without `depthMap` the depth comes from the depth
   * estimator (`estimateDepth`), as diffusers' pipeline computes it; a given `depthMap` wins.
   */
  async depth2img(options: Depth2ImgOptions): Promise<GenerationResult> {
    this.#model();
    return this.#pipelineCall(options, depth2img);
  }

  /**
   * Depth from the depth estimator: images (a path, encoded bytes, raw pixels, or a tensor
   * [B, 3, H, W] in [0, 1]) → predicted depth [B, S, S], S the estimator's input side
   * (`info.imageSize`: 384 for SD 2 depth's), whatever the image's size (it is resized to S × S
   * as diffusers' feature extractor does, the aspect ratio not kept). Relative inverse depth:
   * larger is nearer, in no fixed unit. The estimator is the `depthEstimator` load option's, else
   * the depth model's own (a diffusers folder's `depth_estimator/`, the original checkpoint's
   * `depth_model.*`), loaded on first use. None: ERR_NO_DEPTH_ESTIMATOR; unusable weights:
   * ERR_DEPTH_ESTIMATOR_FORMAT (the model stays usable either way).
   */
  async estimateDepth(image: ImageInput): Promise<Tensor> {
    this.#model();
    return (await this.#depthEstimator()).estimate(image);
  }

  /** Every loaded weight with its storage type and shape. */
  weights(): WeightInfo[] {
    return this.#model().weights();
  }

  /**
   * One loaded weight by canonical name, dequantized to float32 (for inspection and tests), as the
   * networks see it with `sd.loras`: merged LoRA changes show, run-time ones do not.
   */
  async readWeight(name: string): Promise<Tensor> {
    const loras = this.#loraRequests;
    return Tensor.of(await this.#model().readWeight(expectString(name, 'name'), ...(loras.length > 0 ? [[...loras]] : [])));
  }

  /** Bytes of weights per network on the device (0 for a network offloaded). */
  memory(): ModelMemory {
    return this.#model().memory();
  }

  /**
   * Host and device memory now, with the peaks since load or the last reset. `resetPeak: true`
   * restarts both peaks after taking this snapshot (the host peak only where Linux allows it:
   * `host.peakReset`), so a call between pipeline stages gives each stage's own peak.
   */
  memoryUsage(options: { resetPeak?: boolean } = {}): MemoryUsage {
    const o = expectObject(options, 'options');
    expectKnownKeys(o, 'options', ['resetPeak']);
    const reset = o.resetPeak === undefined ? false : expectBoolean(o.resetPeak, 'options.resetPeak');
    return this.#model().memoryUsage(reset);
  }

  /** Frees the weights. The object cannot be used afterwards (ERR_DISPOSED). Calling it again does nothing. */
  async dispose(): Promise<void> {
    this.#native?.dispose();
    this.#native = undefined;
    this.tinyVae?.dispose();
    this.safetyChecker?.dispose();
    const depth = this.#depth;
    this.#depth = undefined;
    this.#depthSource = undefined;
    depth?.then((d) => d.dispose(), () => {});
  }

  /**
   * diffusers' safety checker on images (a path, encoded bytes, raw pixels or a tensor
   * [B, 3, H, W] in [0, 1], or an array of them): one verdict per image, with diffusers' scores.
   * The pipelines run it themselves when it is on; this is the same check on any image. Needs
   * the checker (the `safetyChecker` load option): TypeError otherwise.
   */
  async checkSafety(images: ImageInput | ImageInput[]): Promise<SafetyCheckResult[]> {
    this.#model();
    const checker = this.safetyChecker;
    if (checker === null) {
      throw new ArgumentTypeError('checkSafety needs the safety checker: load the model with { safetyChecker: true } (its folder\'s safety_checker/) or { safetyChecker: PATH }');
    }
    const results: SafetyCheckResult[] = [];
    for (const tensor of await readImagesForCheck(images)) results.push(...(await checker.check(tensor)));
    return results;
  }

  /** Whether `dispose()` has run: the weights are freed and every other call fails with ERR_DISPOSED. */
  get disposed(): boolean {
    return this.#native === undefined;
  }

  /**
   * `dispose()`, for `await using sd = await StableDiffusion.load(…)` (TypeScript 5.2+, or a
   * runtime with explicit resource management): the model is freed when the block ends.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  /** The depth estimator, loaded on first use; a failed load is not kept, so a later call tries again. */
  #depthEstimator(): Promise<DepthEstimator> {
    if (this.#depth !== undefined) return this.#depth;
    const source = this.#depthSource;
    if (source === undefined) {
      throw new StableDiffusionError(
        'ERR_NO_DEPTH_ESTIMATOR',
        'No depth estimator: give a depth map (depthMap), load a depth model that carries one (a diffusers folder with depth_estimator/, or the original checkpoint with depth_model.*), or load one with depthEstimator: PATH',
      );
    }
    const loading = native().loadDepthEstimator(source.weights, this.#depthLoad).then(
      (handle) => new DepthEstimator(handle, source.processorConfig),
      (error: unknown) => {
        if ((error as { code?: unknown }).code !== 'ERR_NO_DEPTH_ESTIMATOR') throw error;
        throw new StableDiffusionError('ERR_NO_DEPTH_ESTIMATOR', `${(error as Error).message}. Give a depth map (depthMap) or load a depth estimator with depthEstimator: PATH`, {
          path: source.weights, cause: error,
        });
      },
    );
    this.#depth = loading;
    loading.catch(() => {
      if (this.#depth === loading) this.#depth = undefined;
    });
    return loading;
  }

  #model(): NativeModel {
    if (this.#native === undefined) throw new StableDiffusionError('ERR_DISPOSED', 'The model has been disposed');
    return this.#native;
  }
}

/** The checker to load for `safetyChecker` (see LoadOptions), or undefined for none. */
function safetyCheckerPath(model: string, option: boolean | string | undefined): string | undefined {
  if (typeof option === 'string') return option;
  if (option === false) return undefined;
  const found = folderSafetyChecker(model);
  if (option === true && found === undefined) {
    throw new StableDiffusionError(
      'ERR_FILE_NOT_FOUND',
      `safetyChecker: true needs a diffusers folder with safety_checker/ (config.json and model.safetensors or pytorch_model.bin); ${model} has none. Give the checker's folder or file as safetyChecker: PATH`,
      { path: model },
    );
  }
  return found;
}

function padIdFor(padToken: string): number {
  if (padToken === '!') return 0;
  if (padToken === '<|endoftext|>') return 49407;
  const ids = Tokenizer.clip().encode(padToken);
  if (ids.length !== 3) {
    throw new StableDiffusionError('ERR_MODEL_FORMAT', `The tokenizer's pad token ${JSON.stringify(padToken)} is not one token`);
  }
  return ids[1]!;
}

/**
 * Converts any model this package reads to a GGUF file in canonical names with the detected
 * configuration as `sdnode.*` metadata, weights stored as `weightType`. Loading the result needs
 * no detection heuristics. Runs on a worker thread.
 */
export async function convertModel(input: string, output: string, options: ConvertOptions = {}): Promise<ConvertResult> {
  const from = expectPath(input, 'input');
  const to = expectPath(output, 'output');
  const o = expectObject(options, 'options');
  expectKnownKeys(o, 'options', optionNames<ConvertOptions>({ weightType: true, predictionType: true, vae: true }));
  const checked: ConvertOptions = {};
  if (o.weightType !== undefined) checked.weightType = expectOneOf(o.weightType, 'options.weightType', WEIGHT_TYPES);
  if (o.predictionType !== undefined) {
    checked.predictionType = expectOneOf(o.predictionType, 'options.predictionType', PREDICTION_TYPES);
  }
  if (o.vae !== undefined) checked.vae = expectPath(o.vae, 'options.vae');
  return native().convertModel(from, to, checked);
}

// LoRAs are applied in one order whatever order they were given in (options, sd.loras, prompt
// tags), so that a set gives the same bits however it is written (an infotext's prompt included):
// merged changes are float sums, whose result depends on their order.
function canonicalOrder(requests: NativeLoraRequest[]): NativeLoraRequest[] {
  const key = (r: NativeLoraRequest): string => `${r.path}\u0000${r.textEncoderWeight}\u0000${r.unetWeight}`;
  return [...requests].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}
