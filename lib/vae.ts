import type { VaeNative } from './native.js';
import { Tensor, tensorArgument, type TensorLike } from './tensor.js';
import type { VaeDetails } from './types.js';
import { expectBoolean, expectInteger, expectKnownKeys, expectObject, optionNames } from './validate.js';
import { ArgumentRangeError } from './errors.js';

/** What the encoder says about an image: a diagonal Gaussian over the latents. */
export interface LatentDistribution {
  /** `[B, 4, H/8, W/8]`: the latents' mean (what `encode` returns). */
  mean: Tensor;
  /** `[B, 4, H/8, W/8]`: log-variance, clamped to [-30, 20] as diffusers' DiagonalGaussianDistribution does. */
  logvar: Tensor;
  /** `[B, 8, H/8, W/8]`: the encoder's raw output after quant_conv, mean then log-variance on channels (unclamped). */
  moments: Tensor;
}

/**
 * Tiled decoding and encoding (`vaeTiling` at load, or per call): the input is cut into
 * overlapping tiles that run through the network one at a time, so only one tile's compute
 * buffer is ever allocated, and the overlaps are blended linearly, as diffusers' AutoencoderKL
 * does after `enable_tiling()`.
 */
export interface VaeTilingOptions {
  /** Tile the call (default: the model's `vaeTiling` load option). */
  tiling?: boolean;
  /**
   * Tile side in image pixels, a multiple of 4 × `downscaleFactor` (32 for SD); default 256.
   * Inputs no larger than one tile are not tiled. diffusers' `enable_tiling()` equals
   * `tileSize` = the VAE's `sample_size` (512 for SD 1.x); tiles overlap by a quarter.
   */
  tileSize?: number;
}

/** The default tile side in pixels: 32 latents, a quarter of SD 1.x's 512² decode buffer. */
export const DEFAULT_VAE_TILE_SIZE = 256;
const MAX_TILE_SIZE = 8192;
const TILE_OVERLAP = 0.25;

const LOGVAR_MIN = -30;
const LOGVAR_MAX = 20;

/**
 * SD's AutoencoderKL (`sd.vae`). Latents are unscaled: multiply what `encode` gives by
 * `scalingFactor` before diffusion, divide sampled latents by it before `decode`.
 * Images are float32 NCHW in [-1, 1]. Calls run on a worker thread, one VAE graph at a time.
 */
export class Vae {
  /** 0.18215 for SD 1.x/2.x (or what the model's VAE config says). */
  readonly scalingFactor: number;
  /** Latent channels (4). */
  readonly latentChannels: number;
  /** Pixels per latent along each side (8). */
  readonly downscaleFactor: number;
  /** The tiling calls get unless they say otherwise (`vaeTiling` / `vaeTileSize` at load). */
  readonly tiling: Readonly<Required<VaeTilingOptions>>;
  readonly #native: () => VaeNative;

  /** @internal Created by StableDiffusion. */
  constructor(native: () => VaeNative, details: VaeDetails, tiling: VaeTilingOptions = {}) {
    this.#native = native;
    this.scalingFactor = details.scalingFactor;
    this.latentChannels = details.latentChannels;
    this.downscaleFactor = 2 ** (details.blockChannels.length - 1);
    this.tiling = Object.freeze({
      tiling: tiling.tiling ?? false,
      tileSize: tiling.tileSize ?? DEFAULT_VAE_TILE_SIZE,
    });
    checkTileSize(this.tiling.tileSize, 'tileSize', this.downscaleFactor);
  }

  /** latents [B, 4, h, w] (unscaled) → image [B, 3, 8h, 8w], roughly in [-1, 1] (not clamped). */
  async decode(latents: TensorLike, options?: VaeTilingOptions): Promise<Tensor> {
    const tiling = this.#tilingFor(options);
    const t = tensorArgument(latents, 'latents');
    const [b, c, h, w] = t.shape;
    if (t.rank !== 4 || c !== this.latentChannels) {
      throw new ArgumentRangeError(`Expected latents of shape [batch, ${this.latentChannels}, height, width] but received [${t.shape.join(', ')}]`);
    }
    if (b! > 64 || h! > 1024 || w! > 1024) {
      throw new ArgumentRangeError(`Expected at most 64 latents of at most 1024×1024 but received [${t.shape.join(', ')}]`);
    }
    const decode = async (x: Tensor) => Tensor.of(await this.#native().vaeDecode(x));
    const f = this.downscaleFactor;
    const tile = tiling.tileSize / f;
    if (!tiling.tiling || (h! <= tile && w! <= tile)) return decode(t);
    // Tiles step by three quarters of a latent tile; each decoded tile blends its first quarter
    // (in pixels) into its neighbours' last and keeps its first three quarters.
    const blend = Math.floor(tiling.tileSize * TILE_OVERLAP);
    return runTiled(t, tile, Math.floor(tile * (1 - TILE_OVERLAP)), blend, tiling.tileSize - blend, decode);
  }

  /** image [B, 3, H, W] in [-1, 1], H and W multiples of 8 → the latent distribution's mean [B, 4, H/8, W/8] (unscaled). */
  async encode(image: TensorLike, options?: VaeTilingOptions): Promise<Tensor> {
    return (await this.encodeDistribution(image, options)).mean;
  }

  /** Like `encode`, with the log-variance too (sample as mean + exp(logvar / 2) · noise). */
  async encodeDistribution(image: TensorLike, options?: VaeTilingOptions): Promise<LatentDistribution> {
    const tiling = this.#tilingFor(options);
    const t = tensorArgument(image, 'image');
    const f = this.downscaleFactor;
    const [b, c, h, w] = t.shape;
    if (t.rank !== 4 || c !== 3) {
      throw new ArgumentRangeError(`Expected an image of shape [batch, 3, height, width] but received [${t.shape.join(', ')}]`);
    }
    if (h! % f !== 0 || w! % f !== 0 || b! > 64 || h! > 1024 * f || w! > 1024 * f) {
      throw new ArgumentRangeError(
        `Expected image height and width to be multiples of ${f} up to ${1024 * f} (batch up to 64) but received [${t.shape.join(', ')}]`,
      );
    }
    const encode = async (x: Tensor) => Tensor.of(await this.#native().vaeEncode(x));
    const size = tiling.tileSize;
    let moments: Tensor;
    if (!tiling.tiling || (h! <= size && w! <= size)) {
      moments = await encode(t);
    } else {
      // The moments (mean and log-variance) are blended as one tensor, as diffusers does.
      const latentTile = size / f;
      const blend = Math.floor(latentTile * TILE_OVERLAP);
      moments = await runTiled(t, size, Math.floor(size * (1 - TILE_OVERLAP)), blend, latentTile - blend, encode);
    }
    const [mb, mc, mh, mw] = moments.shape as [number, number, number, number];
    const half = (mc / 2) * mh * mw;
    const mean = new Float32Array(mb * half);
    const logvar = new Float32Array(mb * half);
    for (let i = 0; i < mb; i++) {
      mean.set(moments.data.subarray(2 * i * half, (2 * i + 1) * half), i * half);
      const lv = moments.data.subarray((2 * i + 1) * half, (2 * i + 2) * half);
      for (let j = 0; j < half; j++) logvar[i * half + j] = Math.min(LOGVAR_MAX, Math.max(LOGVAR_MIN, lv[j]!));
    }
    const shape = [mb, mc / 2, mh, mw];
    return { mean: new Tensor(shape, mean), logvar: new Tensor(shape, logvar), moments };
  }

  #tilingFor(options: VaeTilingOptions | undefined): Required<VaeTilingOptions> {
    if (options === undefined) return this.tiling;
    const o = expectObject(options, 'options');
    expectKnownKeys(o, 'options', optionNames<VaeTilingOptions>({ tiling: true, tileSize: true }));
    const result = { ...this.tiling };
    if (o.tiling !== undefined) result.tiling = expectBoolean(o.tiling, 'options.tiling');
    if (o.tileSize !== undefined) result.tileSize = checkTileSize(o.tileSize, 'options.tileSize', this.downscaleFactor);
    return result;
  }
}

/**
 * Checks a tile side in pixels: a multiple of 4 × factor keeps the quarter overlaps whole in both
 * pixels and latents, and every tile's origin on the latent grid.
 */
export function checkTileSize(value: unknown, name: string, factor: number): number {
  const step = 4 * factor;
  const size = expectInteger(value, name, step, MAX_TILE_SIZE);
  if (size % step !== 0) throw new ArgumentRangeError(`Expected integer ${name} to be a multiple of ${step} but received ${size}`);
  return size;
}

/**
 * Runs `run` on overlapping tiles of `input` [B, C, H, W] (tiles of `tile`, starting every
 * `stride`) and assembles the outputs: each output tile is blended over `blend` rows with the
 * (already blended) tile above and over `blend` columns with the one to its left, then cropped
 * to `keep` × `keep` (whatever it has at the bottom and right edges). One row of tiles is kept.
 */
async function runTiled(
  input: Tensor,
  tile: number,
  stride: number,
  blend: number,
  keep: number,
  run: (tile: Tensor) => Promise<Tensor>,
): Promise<Tensor> {
  const [, , height, width] = input.shape as [number, number, number, number];
  let out: Tensor | undefined;
  let above: Tensor[] = [];
  let y = 0;
  for (let top = 0; top < height; top += stride) {
    const row: Tensor[] = [];
    let x = 0;
    let rowHeight = 0;
    for (let left = 0, j = 0; left < width; left += stride, j++) {
      const result = await run(crop(input, top, left, Math.min(tile, height - top), Math.min(tile, width - left)));
      if (above.length > 0) blendRows(above[j]!, result, blend);
      if (j > 0) blendColumns(row[j - 1]!, result, blend);
      row.push(result);
      const [b, c, th, tw] = result.shape as [number, number, number, number];
      if (out === undefined) {
        // The output's size follows from the scale between a tile's input and its output.
        const scale = th / Math.min(tile, height - top);
        out = new Tensor([b, c, Math.round(height * scale), Math.round(width * scale)]);
      }
      rowHeight = Math.min(keep, th);
      paste(out, result, y, x, rowHeight, Math.min(keep, tw));
      x += Math.min(keep, tw);
    }
    y += rowHeight;
    above = row;
  }
  return out!;
}

function crop(t: Tensor, top: number, left: number, height: number, width: number): Tensor {
  const [b, c, h, w] = t.shape as [number, number, number, number];
  const out = new Float32Array(b * c * height * width);
  for (let p = 0; p < b * c; p++) {
    for (let y = 0; y < height; y++) {
      const from = (p * h + top + y) * w + left;
      out.set(t.data.subarray(from, from + width), (p * height + y) * width);
    }
  }
  return new Tensor([b, c, height, width], out);
}

function paste(out: Tensor, t: Tensor, top: number, left: number, height: number, width: number): void {
  const [b, c, oh, ow] = out.shape as [number, number, number, number];
  const [, , th, tw] = t.shape as [number, number, number, number];
  for (let p = 0; p < b * c; p++) {
    for (let y = 0; y < height && top + y < oh; y++) {
      const from = (p * th + y) * tw;
      out.data.set(t.data.subarray(from, from + Math.min(width, ow - left)), (p * oh + top + y) * ow + left);
    }
  }
}

// The first rows of `b` fade in over the last rows of `a` (the tile above): weight y / extent.
function blendRows(a: Tensor, b: Tensor, blend: number): void {
  const [n, c, ah, w] = a.shape as [number, number, number, number];
  const bh = b.shape[2]!;
  const extent = Math.min(ah, bh, blend);
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < extent; y++) {
      const t = y / extent;
      const ra = (p * ah + ah - extent + y) * w;
      const rb = (p * bh + y) * w;
      for (let x = 0; x < w; x++) b.data[rb + x] = a.data[ra + x]! * (1 - t) + b.data[rb + x]! * t;
    }
  }
}

// The first columns of `b` fade in over the last columns of `a` (the tile to the left).
function blendColumns(a: Tensor, b: Tensor, blend: number): void {
  const [n, c, h, aw] = a.shape as [number, number, number, number];
  const bw = b.shape[3]!;
  const extent = Math.min(aw, bw, blend);
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < h; y++) {
      const ra = (p * h + y) * aw + aw - extent;
      const rb = (p * h + y) * bw;
      for (let x = 0; x < extent; x++) {
        const t = x / extent;
        b.data[rb + x] = a.data[ra + x]! * (1 - t) + b.data[rb + x]! * t;
      }
    }
  }
}
