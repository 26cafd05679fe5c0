// Real-ESRGAN (the RRDBNet upscaler) on its own: `Upscaler.load(path)` reads the network from a
// .pth or .safetensors file, `upscaler.upscale(image)` runs it tile by tile on a worker thread
// (memory bounded by the tile size), and `upscale(image, { model })` does both for one image.
// The network runs in native/core (nets/rrdbnet.cpp); tiling, padding, clamping and resizing
// to another scale are here.
import { AbortError, ArgumentRangeError, ArgumentTypeError, StableDiffusionError } from './errors.js';
import { encodeImage, readImage, resizeImage, saveImage, type EncodeImageOptions, type ImageInput } from './image.js';
import { native, type NativeUpscaler } from './native.js';
import { Tensor } from './tensor.js';
import { BACKENDS, type Backend } from './types.js';
import {
  describe, expectInteger, expectKnownKeys, expectNumber, expectObject, expectOneOf, expectPath, expectSignal, optionNames,
} from './validate.js';

/** The default tile side, in input pixels (A1111's ESRGAN tile default). */
export const DEFAULT_UPSCALE_TILE_SIZE = 192;
/** The default overlap: input pixels of context on each side of a tile, cropped from its output. */
export const DEFAULT_UPSCALE_TILE_OVERLAP = 16;
/** The largest output `upscale` makes, in pixels (width × height): 8192 × 8192. */
export const MAX_UPSCALE_OUTPUT_PIXELS = 8192 * 8192;
/** Weight types an upscaler can be loaded in. */
export const UPSCALER_WEIGHT_TYPES = ['f32', 'f16'] as const;

const MIN_TILE = 32;
const MAX_TILE = 2048;
const MAX_OVERLAP = 1024;
const MAX_SCALE = 8;
// A1111 runs the network at most this many times to reach a scale above the network's own.
const MAX_PASSES = 3;

/** @internal An upscaler beside a model: on the model's backend, with its threads. */
export function upscalerOptionsOf(load: { backend?: string; threads?: number }): UpscalerLoadOptions {
  return { ...(load.backend !== undefined && { backend: load.backend }), ...(load.threads !== undefined && { threads: load.threads }) };
}

/** Options of `Upscaler.load`. */
export interface UpscalerLoadOptions {
  /** 'auto' (default), 'cpu', 'vulkan', 'cuda', or a device name such as 'Vulkan0'. */
  backend?: Backend | (string & {});
  /** Convert the weights to 'f32' or 'f16' on load; default: the file's own types. */
  weightType?: (typeof UPSCALER_WEIGHT_TYPES)[number];
  /** CPU threads; defaults to `systemInfo().defaultThreads`. */
  threads?: number;
}

/** What an upscaler is (`upscaler.info`), read from its weights. */
export interface UpscalerInfo {
  /** The path given to `Upscaler.load`. */
  path: string;
  /** The file's container. */
  format: 'safetensors' | 'checkpoint' | 'gguf';
  /** Always 'RRDBNet' (ESRGAN's generator as Real-ESRGAN trains it). */
  architecture: 'RRDBNet';
  /** Where a .pth kept the weights: 'params_ema', 'params', or '' (the top level, or safetensors). */
  stateDict: 'params_ema' | 'params' | '';
  /** The network's own scale: 4 (x4plus, anime_6B), 2 (x2plus) or 1. */
  scale: number;
  /** Feature channels (64 in Real-ESRGAN's models). */
  features: number;
  /** Growth channels of the dense blocks (32). */
  growth: number;
  /** RRDB blocks (23 in x4plus, 6 in anime_6B). */
  blocks: number;
  /** The network takes sides that are multiples of this (its pixel-unshuffle: 1 at ×4, 2 at ×2, 4 at ×1); images are padded to it. */
  inputMultiple: number;
  /** Where it runs, e.g. 'CPU' or 'Vulkan0'. */
  device: string;
}

/** Progress of `upscale`: called after each tile. */
export interface UpscaleProgress {
  /** Tiles done (1-based), over all passes and images. */
  tile: number;
  /** Tiles in all. */
  tiles: number;
  /** Milliseconds since the call started. */
  elapsedMs: number;
}

/** Options of `upscaler.upscale`. */
export interface UpscaleOptions {
  /**
   * Output pixels per input pixel (1 to 8); default the network's own. Another scale resizes the
   * network's output with Lanczos (sharp), as A1111 does; above the network's scale it runs the
   * network again on its output first (at most 3 passes), then resizes.
   */
  scale?: number;
  /** Tile side in input pixels, 32 to 2048 (default 192); rounded down to the network's input multiple. */
  tileSize?: number;
  /**
   * Input pixels of context around each tile (0 to min(tileSize, 1024), default 16), as
   * Real-ESRGAN's tile_pad: each tile is run padded by this much and only its centre is kept.
   * Where it covers the network's receptive field, tiled output equals untiled output.
   */
  tileOverlap?: number;
  /** Called after each tile; returning false cancels with an AbortError. */
  onProgress?: (progress: UpscaleProgress) => boolean | void;
  /** Aborting cancels between tiles with an AbortError. */
  signal?: AbortSignal;
}

/** Options of the one-call `upscale(image, options)`: the upscaler file (or a loaded one) and both sets of options. */
export interface UpscaleFileOptions extends UpscaleOptions, UpscalerLoadOptions {
  /** A Real-ESRGAN .pth or .safetensors file, or an `Upscaler` already loaded (kept loaded). */
  model: string | Upscaler;
}

const LOAD_OPTIONS = optionNames<UpscalerLoadOptions>({ backend: true, weightType: true, threads: true });
const UPSCALE_OPTIONS = optionNames<UpscaleOptions>({ scale: true, tileSize: true, tileOverlap: true, onProgress: true, signal: true });
const FILE_OPTIONS = optionNames<UpscaleFileOptions>({
  model: true, scale: true, tileSize: true, tileOverlap: true, onProgress: true, signal: true, backend: true, weightType: true,
  threads: true,
});

/** An upscaled image: [B, 3, H, W] in [0, 1], with its encoders. */
export class UpscaledImage {
  /** [B, 3, height, width] in [0, 1] (one entry per input image). */
  readonly images: Tensor;
  /** Output pixels across. */
  readonly width: number;
  /** Output pixels down. */
  readonly height: number;
  /** The scale applied (output / input size). */
  readonly scale: number;

  /** @internal Made by `upscale`. */
  constructor(images: Tensor, scale: number) {
    this.images = images;
    this.height = images.shape[2]!;
    this.width = images.shape[3]!;
    this.scale = scale;
  }

  /** The image (`index` of the batch) as PNG bytes. */
  toPNG(index = 0): Promise<Buffer> {
    return encodeImage(this.images, index, { format: 'png' });
  }

  /** Writes the image (`options.index` of the batch) as PNG, JPEG or WebP by the path's extension. */
  save(path: string, options: EncodeImageOptions & { index?: number } = {}): Promise<void> {
    return saveImage(this.images, path, options);
  }
}

function checkLoadOptions(options: unknown): UpscalerLoadOptions {
  const o = expectObject(options, 'options');
  expectKnownKeys(o, 'options', LOAD_OPTIONS);
  return pickLoadOptions(o);
}

function pickLoadOptions(o: Record<string, unknown>): UpscalerLoadOptions {
  const checked: UpscalerLoadOptions = {};
  if (o.backend !== undefined) {
    if (typeof o.backend !== 'string' || o.backend.length === 0) {
      throw new ArgumentTypeError(`Expected options.backend to be one of ${BACKENDS.join(', ')} or a device name but received ${describe(o.backend)}`);
    }
    checked.backend = o.backend;
  }
  if (o.weightType !== undefined) checked.weightType = expectOneOf(o.weightType, 'options.weightType', UPSCALER_WEIGHT_TYPES);
  if (o.threads !== undefined) checked.threads = expectInteger(o.threads, 'options.threads', 1, 1024);
  return checked;
}

interface CheckedUpscale {
  scale: number | undefined;
  tileSize: number;
  tileOverlap: number;
  onProgress: UpscaleOptions['onProgress'];
  signal: AbortSignal | undefined;
}

function pickUpscaleOptions(o: Record<string, unknown>): CheckedUpscale {
  const tileSize = o.tileSize === undefined ? DEFAULT_UPSCALE_TILE_SIZE : expectInteger(o.tileSize, 'tileSize', MIN_TILE, MAX_TILE);
  const maxOverlap = Math.min(tileSize, MAX_OVERLAP);
  const tileOverlap = o.tileOverlap === undefined ? Math.min(DEFAULT_UPSCALE_TILE_OVERLAP, maxOverlap) : expectInteger(o.tileOverlap, 'tileOverlap', 0, maxOverlap);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') {
    throw new ArgumentTypeError(`Expected onProgress to be a function but received ${describe(o.onProgress)}`);
  }
  return {
    scale: o.scale === undefined ? undefined : expectNumber(o.scale, 'scale', 1, MAX_SCALE),
    tileSize,
    tileOverlap,
    onProgress: o.onProgress as UpscaleOptions['onProgress'],
    signal: o.signal === undefined ? undefined : expectSignal(o.signal, 'signal'),
  };
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortError('The upscale was aborted', { cause: signal.reason });
}

/** One plane-major image [3, H, W] padded on the right and bottom by reflection (PyTorch's 'reflect') to multiples of `m`. */
function padToMultiple(data: Float32Array, width: number, height: number, m: number): { data: Float32Array; width: number; height: number } {
  const w = Math.ceil(width / m) * m;
  const h = Math.ceil(height / m) * m;
  if (w === width && h === height) return { data, width, height };
  const reflect = (i: number, n: number) => (i < n ? i : 2 * (n - 1) - i);
  const out = new Float32Array(3 * w * h);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < h; y++) {
      const source = c * width * height + reflect(y, height) * width;
      const target = c * w * h + y * w;
      out.set(data.subarray(source, source + width), target);
      for (let x = width; x < w; x++) out[target + x] = data[source + reflect(x, width)]!;
    }
  }
  return { data: out, width: w, height: h };
}

/** A tile plan along one side: [start, end) of the kept part and of the padded part run. */
function spans(size: number, tile: number, pad: number): Array<{ start: number; end: number; padStart: number; padEnd: number }> {
  const out = [];
  for (let start = 0; start < size; start += tile) {
    const end = Math.min(start + tile, size);
    out.push({ start, end, padStart: Math.max(start - pad, 0), padEnd: Math.min(end + pad, size) });
  }
  return out;
}

/**
 * A Real-ESRGAN upscaler (RRDBNet: x4plus, x4plus_anime_6B, x2plus, …) loaded from its file.
 * Images are upscaled tile by tile on a worker thread, one call at a time; `dispose()` (or
 * `await using`) frees the weights.
 */
export class Upscaler {
  /** What was loaded, read from the weights. */
  readonly info: Readonly<UpscalerInfo>;
  #native: NativeUpscaler | undefined;

  private constructor(handle: NativeUpscaler) {
    this.#native = handle;
    this.info = Object.freeze(handle.info() as UpscalerInfo);
  }

  /**
   * Loads an upscaler: a .pth (PyTorch zip checkpoint; the weights under `params_ema`, else
   * `params`, else the top level; read without running any pickled code) or a .safetensors file
   * with Real-ESRGAN's RRDBNet names. Its size (blocks, features, growth) and scale come from the
   * weights. A file that is not an RRDBNet rejects with a StableDiffusionError of code
   * 'ERR_UPSCALER_FORMAT' naming it. Runs on a worker thread.
   */
  static async load(path: string, options: UpscalerLoadOptions = {}): Promise<Upscaler> {
    const file = expectPath(path, 'path');
    const o = checkLoadOptions(options);
    return Upscaler.#load(file, o);
  }

  static async #load(file: string, o: UpscalerLoadOptions): Promise<Upscaler> {
    return new Upscaler(await native().loadUpscaler(file, {
      backend: o.backend ?? 'auto',
      ...(o.weightType && { weightType: o.weightType }),
      ...(o.threads !== undefined && { threads: o.threads }),
    }));
  }

  /** @internal The one-call `upscale`: options already split. */
  static async loadChecked(file: string, o: UpscalerLoadOptions): Promise<Upscaler> {
    return Upscaler.#load(file, o);
  }

  /**
   * Upscales an image (a path, encoded Buffer, sharp instance, raw pixels, or a float tensor
   * [B, 3, H, W] in [0, 1]; alpha is dropped) by the network's scale, or by `options.scale`.
   * Tiles of `tileSize` input pixels, each run with `tileOverlap` pixels of context on every side
   * and cropped to its centre, keep memory bounded. RangeError for an image smaller than the
   * network's input multiple or whose output would exceed MAX_UPSCALE_OUTPUT_PIXELS.
   */
  async upscale(image: ImageInput, options: UpscaleOptions = {}): Promise<UpscaledImage> {
    const o = expectObject(options, 'options');
    expectKnownKeys(o, 'options', UPSCALE_OPTIONS);
    return this.upscaleChecked(image, pickUpscaleOptions(o));
  }

  /** @internal */
  async upscaleChecked(image: ImageInput, o: CheckedUpscale): Promise<UpscaledImage> {
    const handle = this.#handle();
    const started = Date.now();
    throwIfAborted(o.signal);
    const input = await readImage(image, 'image');
    const [batch, , height, width] = input.shape as [number, number, number, number];
    const own = this.info.scale;
    const scale = o.scale ?? own;
    const outWidth = Math.max(1, Math.round(width * scale));
    const outHeight = Math.max(1, Math.round(height * scale));
    // The network's passes: as A1111, run it again while the image is still smaller than asked.
    let passes = 1;
    while (passes < MAX_PASSES && own > 1 && width * own ** passes < outWidth) passes++;
    const netWidth = width * own ** passes;
    const netHeight = height * own ** passes;
    const m = this.info.inputMultiple;
    if (width < m || height < m) {
      throw new ArgumentRangeError(`Expected an image of at least ${m}×${m} pixels for this ×${own} upscaler but received ${width}×${height}`);
    }
    if (netWidth * netHeight > MAX_UPSCALE_OUTPUT_PIXELS || outWidth * outHeight > MAX_UPSCALE_OUTPUT_PIXELS) {
      throw new ArgumentRangeError(
        `Expected an image whose upscaled size stays within ${MAX_UPSCALE_OUTPUT_PIXELS} pixels but ${width}×${height} at ×${own}` +
          `${passes > 1 ? ` (${passes} passes)` : ''} makes ${netWidth}×${netHeight}`,
      );
    }
    const tile = Math.max(m, Math.floor(o.tileSize / m) * m);
    const pad = Math.ceil(o.tileOverlap / m) * m;
    // Tiles of every pass, for progress.
    let tiles = 0;
    for (let p = 0, w = width, h = height; p < passes; p++, w *= own, h *= own) {
      const pw = Math.ceil(w / m) * m;
      const ph = Math.ceil(h / m) * m;
      tiles += batch * Math.ceil(pw / tile) * Math.ceil(ph / tile);
    }
    let done = 0;
    const progress = (): void => {
      done++;
      if (o.onProgress?.({ tile: done, tiles, elapsedMs: Date.now() - started }) === false) {
        throw new AbortError('The upscale was cancelled by onProgress');
      }
      throwIfAborted(o.signal);
    };
    const planes: Float32Array[] = [];
    for (let b = 0; b < batch; b++) {
      let data = input.data.subarray(b * 3 * width * height, (b + 1) * 3 * width * height);
      let w = width;
      let h = height;
      for (let p = 0; p < passes; p++) {
        // Each pass takes and gives an image in [0, 1].
        data = await this.#pass(handle, data, w, h, tile, pad, progress);
        for (let i = 0; i < data.length; i++) data[i] = data[i]! < 0 ? 0 : data[i]! > 1 ? 1 : data[i]!;
        w *= own;
        h *= own;
      }
      planes.push(data);
    }
    const out = new Float32Array(batch * 3 * netWidth * netHeight);
    planes.forEach((p, b) => out.set(p, b * p.length));
    let result = new Tensor([batch, 3, netHeight, netWidth], out);
    if (netWidth !== outWidth || netHeight !== outHeight) result = await resizeImage(result, outWidth, outHeight);
    return new UpscaledImage(result, outWidth / width);
  }

  /** One pass of the network over one image [3, h, w], tiled: → [3, s·h, s·w], not clamped. */
  async #pass(
    handle: NativeUpscaler, source: Float32Array, width: number, height: number, tile: number, pad: number, progress: () => void,
  ): Promise<Float32Array> {
    const s = this.info.scale;
    const padded = padToMultiple(source, width, height, this.info.inputMultiple);
    const W = padded.width;
    const H = padded.height;
    const outW = width * s;
    const outH = height * s;
    const out = new Float32Array(3 * outW * outH);
    for (const ys of spans(H, tile, pad)) {
      for (const xs of spans(W, tile, pad)) {
        const tw = xs.padEnd - xs.padStart;
        const th = ys.padEnd - ys.padStart;
        const part = new Float32Array(3 * tw * th);
        for (let c = 0; c < 3; c++) {
          for (let y = 0; y < th; y++) {
            const from = c * W * H + (ys.padStart + y) * W + xs.padStart;
            part.set(padded.data.subarray(from, from + tw), c * tw * th + y * tw);
          }
        }
        const result = await handle.run({ shape: [1, 3, th, tw], data: part });
        const rw = tw * s;
        const rh = th * s;
        // The kept part of this tile, clipped to the image (the padding to the multiple is dropped).
        const x0 = (xs.start - xs.padStart) * s;
        const y0 = (ys.start - ys.padStart) * s;
        const keepW = Math.min(xs.end, width) * s - xs.start * s;
        const keepH = Math.min(ys.end, height) * s - ys.start * s;
        for (let c = 0; c < 3 && keepW > 0; c++) {
          for (let y = 0; y < keepH; y++) {
            const from = c * rw * rh + (y0 + y) * rw + x0;
            out.set(result.data.subarray(from, from + keepW), c * outW * outH + (ys.start * s + y) * outW + xs.start * s);
          }
        }
        progress();
      }
    }
    return out;
  }

  /** Frees the weights; later calls reject with ERR_DISPOSED. Work in flight finishes first. */
  dispose(): void {
    this.#native?.dispose();
    this.#native = undefined;
  }

  /** `await using upscaler = await Upscaler.load(…)` disposes it at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }

  #handle(): NativeUpscaler {
    if (this.#native === undefined) throw new StableDiffusionError('ERR_DISPOSED', 'The upscaler has been disposed');
    return this.#native;
  }
}

/**
 * Upscales one image with a Real-ESRGAN model in one call: loads `options.model` (or uses an
 * `Upscaler` given there), upscales as `upscaler.upscale` does, and disposes what it loaded.
 *
 * ```ts
 * const result = await upscale('photo.png', { model: 'RealESRGAN_x4plus.pth', scale: 2 });
 * await result.save('photo-2x.png');
 * ```
 */
export async function upscale(image: ImageInput, options: UpscaleFileOptions): Promise<UpscaledImage> {
  const o = expectObject(options, 'options');
  expectKnownKeys(o, 'options', FILE_OPTIONS);
  const checked = pickUpscaleOptions(o);
  if (o.model instanceof Upscaler) {
    if (o.backend !== undefined || o.weightType !== undefined || o.threads !== undefined) {
      throw new ArgumentTypeError('Expected no backend, weightType or threads with a loaded Upscaler as options.model (they apply when loading)');
    }
    return o.model.upscaleChecked(image, checked);
  }
  const file = expectPath(o.model, 'options.model');
  const load = pickLoadOptions(o);
  throwIfAborted(checked.signal);
  const upscaler = await Upscaler.loadChecked(file, load);
  try {
    return await upscaler.upscaleChecked(image, checked);
  } finally {
    upscaler.dispose();
  }
}
