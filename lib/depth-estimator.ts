// The depth estimator of SD 2's depth model (DPT-Hybrid, MiDaS 3.0), beside a model: from the
// model's own files (a diffusers folder's depth_estimator/ and feature_extractor/, or the
// original single file's depth_model.*) or a separate file (the `depthEstimator` load option).
// depth2img runs it when no depth map is given, as diffusers' prepare_depth_map does.
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { defaultDptProcessor, dptPixelValues, readDptProcessorConfig, type DptProcessorConfig } from './dpt-image-processor.js';
import { ArgumentTypeError, StableDiffusionError } from './errors.js';
import { readImage, toRgbBytes, type ImageInput } from './image.js';
import { native, type NativeDepthEstimator } from './native.js';
import { Tensor, tensorArgument, type TensorLike } from './tensor.js';
import { BACKENDS, type Backend } from './types.js';
import { describe, expectInteger, expectKnownKeys, expectObject, expectOneOf, expectPath, optionNames } from './validate.js';

/** Options of `DepthEstimator.load`. */
export interface DepthEstimatorLoadOptions {
  /** 'auto' (default), 'cpu', 'vulkan', 'cuda', or a device name such as 'Vulkan0'. */
  backend?: Backend | (string & {});
  /** Convert the weights to 'f32' or 'f16' on load; default: the files' own types. */
  weightType?: 'f32' | 'f16';
  /** CPU threads; defaults to `systemInfo().defaultThreads`. */
  threads?: number;
}

const LOAD_OPTIONS = optionNames<DepthEstimatorLoadOptions>({ backend: true, weightType: true, threads: true });

/** What a loaded depth estimator is (`(await sd.depthEstimator()).info`). */
export interface DepthEstimatorInfo {
  /** The folder or file it was loaded from. */
  path: string;
  /** 'transformers' (DPTForDepthEstimation's names) or 'midas' (MiDaS's, as the original checkpoint holds them). */
  layout: 'transformers' | 'midas';
  /** The files read (config.json first when there was one). */
  files: string[];
  /** The side of the network's input and output (384 for SD 2 depth's). */
  imageSize: number;
  /** The ViT's width (768). */
  hidden: number;
  /** The ViT's layers (12). */
  layers: number;
  /** Attention heads per layer (12). */
  heads: number;
  /** The neck's width (256). */
  fusion: number;
  /** Where it runs, e.g. 'CPU' or 'Vulkan0'. */
  device: string;
  /** How images are resized and normalised for it (the feature extractor's config, else transformers' defaults). */
  processor: Readonly<DptProcessorConfig>;
}

/** Where a model's own estimator is: its weights (a folder or file) and the feature extractor's config, if any. */
export interface DepthEstimatorSource {
  /** What `loadDepthEstimator` reads. */
  weights: string;
  /** preprocessor_config.json, when there is one. */
  processorConfig?: string;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The estimator of `model` (a diffusers folder: its depth_estimator/ and feature_extractor/; a
 * single file: the file itself, whose depth_model.* the core reads), or of a `depthEstimator`
 * path (a depth_estimator folder, a folder holding one, or a weight file; a
 * preprocessor_config.json is looked for in a sibling feature_extractor/).
 */
export function depthEstimatorSource(path: string): DepthEstimatorSource {
  if (!isDirectory(path)) return { weights: path };
  const inner = join(path, 'depth_estimator');
  const weights = isDirectory(inner) ? inner : path;
  const processorConfig = [join(dirname(weights), 'feature_extractor', 'preprocessor_config.json'), join(path, 'preprocessor_config.json')]
    .find((candidate) => existsSync(candidate));
  return processorConfig === undefined ? { weights } : { weights, processorConfig };
}

/**
 * DPT-Hybrid. `estimate` takes an image as any pipeline does and preprocesses it as diffusers'
 * feature extractor does (lib/dpt-image-processor.ts). Calls run on a worker thread, one at a time.
 */
export class DepthEstimator {
  /** What was loaded. */
  readonly info: Readonly<DepthEstimatorInfo>;
  #native: NativeDepthEstimator | undefined;

  /**
   * Loads a depth estimator on its own (without a diffusion model): anything the `depthEstimator`
   * load option takes, or a depth model (its diffusers folder, or the original single file whose
   * `depth_model.*` holds MiDaS's weights). ERR_DEPTH_ESTIMATOR_FORMAT for weights that are not a
   * DPT-Hybrid, ERR_NO_DEPTH_ESTIMATOR for a model without one.
   */
  static async load(path: string, options: DepthEstimatorLoadOptions = {}): Promise<DepthEstimator> {
    const file = expectPath(path, 'path');
    const o = expectObject(options, 'options');
    expectKnownKeys(o, 'options', LOAD_OPTIONS);
    if (o.backend !== undefined && (typeof o.backend !== 'string' || o.backend.length === 0)) {
      throw new ArgumentTypeError(`Expected options.backend to be one of ${BACKENDS.join(', ')} or a device name but received ${describe(o.backend)}`);
    }
    const weightType = o.weightType === undefined ? undefined : expectOneOf(o.weightType, 'options.weightType', ['f32', 'f16'] as const);
    const threads = o.threads === undefined ? undefined : expectInteger(o.threads, 'options.threads', 1, 1024);
    const source = depthEstimatorSource(file);
    const handle = await native().loadDepthEstimator(source.weights, {
      backend: (o.backend as string | undefined) ?? 'auto',
      ...(weightType && { weightType }),
      ...(threads !== undefined && { threads }),
    });
    return new DepthEstimator(handle, source.processorConfig);
  }

  /** @internal Created by StableDiffusion and DepthEstimator.load. */
  constructor(native: NativeDepthEstimator, processorConfig: string | undefined) {
    const info = native.info();
    let processor: DptProcessorConfig;
    try {
      processor = processorConfig === undefined ? defaultDptProcessor(info.imageSize) : readDptProcessorConfig(processorConfig, info.imageSize);
    } catch (error) {
      native.dispose();  // nothing else holds it
      throw error;
    }
    this.#native = native;
    this.info = Object.freeze({ ...info, layout: info.layout as DepthEstimatorInfo['layout'], processor: Object.freeze(processor) });
  }

  /**
   * Images ([B, 3, H, W] in [0, 1], or anything `readImage` reads) → predicted depth [B, S, S],
   * S = `info.imageSize` (384 for SD 2 depth's), whatever the images' size: each is rounded to
   * 8 bits, resized to S × S (the aspect ratio is not kept) and normalised, as diffusers' feature
   * extractor does. Relative inverse depth: larger values are nearer.
   */
  async estimate(images: ImageInput): Promise<Tensor> {
    const handle = this.#handle();
    const t = await readImage(images, 'image');
    const [height, width] = this.info.processor.size;
    const batch = t.shape[0]!;
    const per = 3 * width * height;
    const pixels = new Float32Array(batch * per);
    for (let b = 0; b < batch; b++) {
      const rgb = toRgbBytes(t, b);
      pixels.set(dptPixelValues(rgb.data, rgb.width, rgb.height, this.info.processor).data, b * per);
    }
    return Tensor.of(await handle.estimate(new Tensor([batch, 3, height, width], pixels)));
  }

  /** Pixel values as DPTImageProcessor gives them ([B, 3, S, S]), without preprocessing: the network alone → [B, S, S]. */
  async estimatePixelValues(pixels: TensorLike): Promise<Tensor> {
    return Tensor.of(await this.#handle().estimate(tensorArgument(pixels, 'pixels')));
  }

  /** @internal Frees the weights (StableDiffusion.dispose). */
  dispose(): void {
    this.#native?.dispose();
    this.#native = undefined;
  }

  #handle(): NativeDepthEstimator {
    if (this.#native === undefined) throw new StableDiffusionError('ERR_DISPOSED', 'The depth estimator has been disposed');
    return this.#native;
  }
}
