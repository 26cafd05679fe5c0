// TAESD (madebyollin's tiny autoencoder, diffusers' AutoencoderTiny) loaded beside a model with
// the `tinyVae` load option: full-resolution previews for a few milliseconds a step
// (`preview: 'taesd'`) and, per call with `tinyVae: true`, the whole VAE of a generation.
import { StableDiffusionError } from './errors.js';
import type { NativeTinyVae } from './native.js';
import { Tensor, tensorArgument, type TensorLike } from './tensor.js';

/** What a loaded TAESD is (`sd.tinyVae.info`). */
export interface TinyVaeInfo {
  /** The path given to `tinyVae`. */
  path: string;
  /** 'diffusers' (AutoencoderTiny's folder or file) or 'taesd' (madebyollin's taesd_encoder / taesd_decoder). */
  layout: 'diffusers' | 'taesd';
  /** The files read. */
  files: string[];
  /** Whether it can encode (img2img, inpaint and depth2img with `tinyVae: true` need it). */
  hasEncoder: boolean;
  /** Whether it can decode (previews and `tinyVae: true` need it). */
  hasDecoder: boolean;
  /** Latent channels (4). */
  latentChannels: number;
  /** Pixels per latent along each side (8). */
  downscaleFactor: number;
  /** Where it runs, e.g. 'CPU' or 'Vulkan0'. */
  device: string;
}

/**
 * TAESD (`sd.tinyVae`). Unlike `sd.vae`, its latents are the sampler's own (SD's VAE latents
 * times `sd.vae.scalingFactor`; TAESD's scaling factor is 1): `decode(result.latents)` works as
 * is. Images are float32 NCHW in [-1, 1]. Calls run on a worker thread, one at a time.
 */
export class TinyVae {
  /** What was loaded. */
  readonly info: Readonly<TinyVaeInfo>;
  /** 1: TAESD takes and gives latents as the sampler holds them. */
  readonly scalingFactor = 1;
  #native: NativeTinyVae | undefined;

  /** @internal Created by StableDiffusion.load. */
  constructor(native: NativeTinyVae) {
    this.#native = native;
    this.info = Object.freeze(native.info() as TinyVaeInfo);
  }

  /** latents [B, 4, h, w] (as the sampler holds them) → image [B, 3, 8h, 8w], roughly in [-1, 1] (not clamped). */
  async decode(latents: TensorLike): Promise<Tensor> {
    const t = tensorArgument(latents, 'latents');
    return Tensor.of(await this.#handle().decode(t));
  }

  /** image [B, 3, H, W] in [-1, 1], H and W multiples of 8 → latents [B, 4, H/8, W/8] (as the sampler holds them). */
  async encode(image: TensorLike): Promise<Tensor> {
    const t = tensorArgument(image, 'image');
    return Tensor.of(await this.#handle().encode(t));
  }

  /** @internal Frees the weights (StableDiffusion.dispose). */
  dispose(): void {
    this.#native?.dispose();
    this.#native = undefined;
  }

  #handle(): NativeTinyVae {
    if (this.#native === undefined) {
      throw new StableDiffusionError('ERR_DISPOSED', 'The tiny VAE has been disposed');
    }
    return this.#native;
  }
}
