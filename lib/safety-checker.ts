// diffusers' StableDiffusionSafetyChecker loaded beside a model (the `safetyChecker` load option,
// on by default for a diffusers folder that has one): each generated image is scored against the
// checker's concept embeddings, and flagged images are replaced by black ones, as diffusers does.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { clipPixelValues } from './clip-image-processor.js';
import { ArgumentRangeError, StableDiffusionError } from './errors.js';
import { readImage, type ImageInput } from './image.js';
import type { NativeSafetyChecker } from './native.js';
import { Tensor, type TensorLike } from './tensor.js';

/** What a loaded safety checker is (`sd.safetyChecker.info`). */
export interface SafetyCheckerInfo {
  /** The folder or file it was loaded from. */
  path: string;
  /** The files read (config.json first when there was one). */
  files: string[];
  /** The side of the vision tower's input (224): images are resized and cropped to it. */
  imageSize: number;
  /** Pixels per patch side (14 in SD's ViT-L/14). */
  patchSize: number;
  /** The tower's width (1024). */
  hidden: number;
  /** The tower's transformer layers (24). */
  layers: number;
  /** Attention heads per layer (16). */
  heads: number;
  /** The width of the image embedding compared with the concepts (768). */
  projectionDim: number;
  /** Concept embeddings (17 in SD's checker). */
  concepts: number;
  /** Special-care embeddings (3). */
  specialConcepts: number;
  /** Where it runs, e.g. 'CPU' or 'Vulkan0'. */
  device: string;
}

/** One image's verdict (`sd.checkSafety`). */
export interface SafetyCheckResult {
  /** Whether any concept score is above 0: diffusers' `has_nsfw_concept`. */
  nsfw: boolean;
  /**
   * diffusers' concept scores: cosine − threshold (+ 0.01 when a special-care concept fired),
   * rounded to 3 decimals; > 0 flags the image.
   */
  conceptScores: number[];
  /** The special-care scores, computed the same way (each fired one raises the later scores by 0.01). */
  specialScores: number[];
  /** The cosine of the image embedding with each concept embedding, before thresholds. */
  conceptCosine: number[];
  /** The cosine with each special-care embedding. */
  specialCosine: number[];
  /** The image embedding (the vision tower's class token, projected). */
  imageEmbeds: Float32Array;
}

/** `checkPixelValues`' result: the batch's verdicts as tensors, one row per image. */
export interface SafetyPixelCheck {
  /** Whether each image is flagged. */
  nsfw: boolean[];
  /** diffusers' rounded concept scores, shape [B, concepts]. */
  conceptScores: Tensor;
  /** diffusers' rounded special-care scores, shape [B, specialConcepts]. */
  specialScores: Tensor;
  /** The cosines before thresholds, shape [B, concepts]. */
  conceptCosine: Tensor;
  /** The special-care cosines, shape [B, specialConcepts]. */
  specialCosine: Tensor;
  /** The image embeddings, shape [B, projectionDim]. */
  imageEmbeds: Tensor;
}

/** `safety_checker/` inside a diffusers folder, when it holds a config and weights; undefined otherwise. */
export function folderSafetyChecker(model: string): string | undefined {
  const dir = join(model, 'safety_checker');
  try {
    if (!statSync(model).isDirectory() || !statSync(dir).isDirectory()) return undefined;
  } catch {
    return undefined;
  }
  const hasWeights = ['model.safetensors', 'pytorch_model.bin'].some((name) => existsSync(join(dir, name)));
  return hasWeights && existsSync(join(dir, 'config.json')) ? dir : undefined;
}

function rows(t: TensorLike, i: number): number[] {
  const width = t.shape[1]!;
  return Array.from(t.data.subarray(i * width, (i + 1) * width));
}

/**
 * The safety checker (`sd.safetyChecker`). `check` takes images as the pipelines give them
 * ([B, 3, H, W] in [0, 1]) and preprocesses them as diffusers' feature extractor does
 * (lib/clip-image-processor.ts). Calls run on a worker thread, one at a time.
 */
export class SafetyChecker {
  /** What was loaded. */
  readonly info: Readonly<SafetyCheckerInfo>;
  #native: NativeSafetyChecker | undefined;

  /** @internal Created by StableDiffusion.load. */
  constructor(native: NativeSafetyChecker) {
    this.#native = native;
    this.info = Object.freeze(native.info());
  }

  /** Images [B, 3, H, W] in [0, 1] → one verdict per image. */
  async check(images: Tensor): Promise<SafetyCheckResult[]> {
    const handle = this.#handle();
    const size = this.info.imageSize;
    const pixels = clipPixelValues(images, size);
    const batch = images.shape[0]!;
    const per = 3 * size * size;
    const results: SafetyCheckResult[] = [];
    // The core takes up to 64 images a call; a larger batch goes in slices.
    for (let first = 0; first < batch; first += 64) {
      const count = Math.min(64, batch - first);
      const part = count === batch ? pixels : new Tensor([count, 3, size, size], pixels.data.slice(first * per, (first + count) * per));
      const r = await handle.check(part);
      for (let i = 0; i < count; i++) {
        results.push({
          nsfw: r.nsfw[i]!,
          conceptScores: rows(r.conceptScores, i),
          specialScores: rows(r.specialScores, i),
          conceptCosine: rows(r.conceptCosine, i),
          specialCosine: rows(r.specialCosine, i),
          imageEmbeds: r.imageEmbeds.data.slice(i * this.info.projectionDim, (i + 1) * this.info.projectionDim),
        });
      }
    }
    return results;
  }

  /** Pixel values as CLIPImageProcessor gives them ([B, 3, S, S], S = `info.imageSize`), without preprocessing: the network alone. */
  async checkPixelValues(pixels: Tensor): Promise<SafetyPixelCheck> {
    const r = await this.#handle().check(pixels);
    return {
      nsfw: r.nsfw, conceptScores: Tensor.of(r.conceptScores), specialScores: Tensor.of(r.specialScores),
      conceptCosine: Tensor.of(r.conceptCosine), specialCosine: Tensor.of(r.specialCosine), imageEmbeds: Tensor.of(r.imageEmbeds),
    };
  }

  /** @internal Frees the weights (StableDiffusion.dispose). */
  dispose(): void {
    this.#native?.dispose();
    this.#native = undefined;
  }

  #handle(): NativeSafetyChecker {
    if (this.#native === undefined) {
      throw new StableDiffusionError('ERR_DISPOSED', 'The safety checker has been disposed');
    }
    return this.#native;
  }
}

/** Images (paths, buffers, raw pixels or tensors, as `ImageInput`) → one [B, 3, H, W] tensor per input. */
export async function readImagesForCheck(images: ImageInput | ImageInput[]): Promise<Tensor[]> {
  const list = Array.isArray(images) ? images : [images];
  if (list.length === 0) throw new ArgumentRangeError('Expected at least one image but received an empty array');
  return Promise.all(list.map((image, i) => readImage(image, Array.isArray(images) ? `images[${i}]` : 'image')));
}

/**
 * The images with every flagged one replaced by black (zeros), as diffusers does; the tensor is
 * copied only when something is blanked.
 */
export function blankFlagged(images: Tensor, nsfw: readonly boolean[]): Tensor {
  if (!nsfw.some(Boolean)) return images;
  const data = images.data.slice();
  const per = data.length / images.shape[0]!;
  nsfw.forEach((flagged, i) => {
    if (flagged) data.fill(0, i * per, (i + 1) * per);
  });
  return new Tensor([...images.shape], data);
}
