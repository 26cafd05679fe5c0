import type { VaeDetails } from './model.js';
import { Tensor, type TensorLike } from './tensor.js';
import { describe } from './validate.js';

/** The native model's VAE methods (see native/addon/sd_model_binding.cpp). */
export interface VaeNative {
  vaeDecode(latents: TensorLike): Promise<TensorLike>;
  vaeEncode(image: TensorLike): Promise<TensorLike>;
}

/** What the encoder says about an image: a diagonal Gaussian over the latents. */
export interface LatentDistribution {
  /** [B, 4, H/8, W/8]: the latents' mean (what `encode` returns). */
  mean: Tensor;
  /** [B, 4, H/8, W/8]: log-variance, clamped to [-30, 20] as diffusers' DiagonalGaussianDistribution does. */
  logvar: Tensor;
  /** [B, 8, H/8, W/8]: the encoder's raw output after quant_conv, mean then log-variance on channels (unclamped). */
  moments: Tensor;
}

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
  readonly #native: () => VaeNative;

  /** @internal Created by StableDiffusion. */
  constructor(native: () => VaeNative, details: VaeDetails) {
    this.#native = native;
    this.scalingFactor = details.scalingFactor;
    this.latentChannels = details.latentChannels;
    this.downscaleFactor = 2 ** (details.blockChannels.length - 1);
  }

  /** latents [B, 4, h, w] (unscaled) → image [B, 3, 8h, 8w], roughly in [-1, 1] (not clamped). */
  async decode(latents: TensorLike): Promise<Tensor> {
    const t = tensorArgument(latents, 'latents');
    const [b, c, h, w] = t.shape;
    if (t.rank !== 4 || c !== this.latentChannels) {
      throw new RangeError(`Expected latents of shape [batch, ${this.latentChannels}, height, width] but received [${t.shape.join(', ')}]`);
    }
    if (b! > 64 || h! > 1024 || w! > 1024) {
      throw new RangeError(`Expected at most 64 latents of at most 1024×1024 but received [${t.shape.join(', ')}]`);
    }
    return Tensor.of(await this.#native().vaeDecode(t));
  }

  /** image [B, 3, H, W] in [-1, 1], H and W multiples of 8 → the latent distribution's mean [B, 4, H/8, W/8] (unscaled). */
  async encode(image: TensorLike): Promise<Tensor> {
    return (await this.encodeDistribution(image)).mean;
  }

  /** Like `encode`, with the log-variance too (sample as mean + exp(logvar / 2) · noise). */
  async encodeDistribution(image: TensorLike): Promise<LatentDistribution> {
    const t = tensorArgument(image, 'image');
    const f = this.downscaleFactor;
    const [b, c, h, w] = t.shape;
    if (t.rank !== 4 || c !== 3) {
      throw new RangeError(`Expected an image of shape [batch, 3, height, width] but received [${t.shape.join(', ')}]`);
    }
    if (h! % f !== 0 || w! % f !== 0 || b! > 64 || h! > 1024 * f || w! > 1024 * f) {
      throw new RangeError(
        `Expected image height and width to be multiples of ${f} up to ${1024 * f} (batch up to 64) but received [${t.shape.join(', ')}]`,
      );
    }
    const moments = Tensor.of(await this.#native().vaeEncode(t));
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
}

function tensorArgument(value: unknown, name: string): Tensor {
  if (typeof value !== 'object' || value === null) {
    throw new TypeError(`Expected ${name} to be a Tensor but received ${describe(value)}`);
  }
  const v = value as { shape?: unknown; data?: unknown };
  if (!Array.isArray(v.shape)) throw new TypeError(`Expected ${name}.shape to be an array of integers but received ${describe(v.shape)}`);
  if (!(v.data instanceof Float32Array)) throw new TypeError(`Expected ${name}.data to be a Float32Array but received ${describe(v.data)}`);
  return Tensor.of(value as TensorLike);
}
