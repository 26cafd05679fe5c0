import type { UNetNative } from './native.js';
import { Tensor, tensorArgument, type TensorLike } from './tensor.js';
import { MAX_PROMPT_CHUNKS, type NativeLoraRequest, type UNetDetails } from './types.js';
import { describe } from './validate.js';
import { ArgumentRangeError, ArgumentTypeError } from './errors.js';

/** Largest batch, latent side and context length `predict` takes (the engine's limits). */
const MAX_BATCH = 64;
const MAX_SIDE = 1024;
const MAX_TOKENS = 77 * MAX_PROMPT_CHUNKS;
const MAX_TIMESTEP = 999;

/**
 * SD's denoising UNet (`sd.unet`), diffusers' UNet2DConditionModel. `predict` runs one forward
 * pass on a worker thread (one UNet graph at a time per model).
 */
export class UNet {
  /** 4 text-to-image; 9 inpainting (latents, mask, masked-image latents); 5 depth (latents, depth). */
  readonly inChannels: number;
  /** 4: the prediction has the latents' shape. */
  readonly outChannels: number;
  /** The text encoder's hidden size that `context` must have (768 SD1, 1024 SD2). */
  readonly contextDim: number;
  /** Attention through ggml's fused flash-attention kernel (K and V in f16): the load option. */
  readonly flashAttention: boolean;
  readonly #native: () => UNetNative;
  readonly #details: UNetDetails;
  readonly #loras: () => readonly NativeLoraRequest[];

  /** @internal Created by StableDiffusion; `loras` gives the LoRAs each call runs with. */
  constructor(native: () => UNetNative, details: UNetDetails, flashAttention = false, loras: () => readonly NativeLoraRequest[] = () => []) {
    this.#native = native;
    this.#details = details;
    this.#loras = loras;
    this.flashAttention = flashAttention;
    this.inChannels = details.inChannels;
    this.outChannels = details.outChannels;
    this.contextDim = details.contextDim;
  }

  /** @internal The same UNet running with these LoRAs (a pipeline call's set). */
  withLoras(loras: readonly NativeLoraRequest[]): UNet {
    return new UNet(this.#native, this.#details, this.flashAttention, () => loras);
  }

  /**
   * One UNet evaluation: `sample` [B, inChannels, h, w] (scaled latents, as a scheduler's
   * `scaleModelInput` gives them), `timestep` a number in [0, 999] (fractions allowed) or one per
   * batch item, `context` [B, n, contextDim] (text embeddings; n is 77 or a multiple) →
   * the model's prediction [B, 4, h, w] (noise, or v for v-prediction models).
   */
  async predict(sample: TensorLike, timestep: number | readonly number[], context: TensorLike): Promise<Tensor> {
    const x = tensorArgument(sample, 'sample');
    const c = tensorArgument(context, 'context');
    const [b, ch, h, w] = x.shape as number[];
    if (x.rank !== 4 || ch !== this.inChannels) {
      throw new ArgumentRangeError(
        `Expected sample of shape [batch, ${this.inChannels}, height, width] but received [${x.shape.join(', ')}]`,
      );
    }
    if (b! > MAX_BATCH || h! > MAX_SIDE || w! > MAX_SIDE) {
      throw new ArgumentRangeError(
        `Expected a sample batch of at most ${MAX_BATCH} and sides of at most ${MAX_SIDE} but received [${x.shape.join(', ')}]`,
      );
    }
    if (c.rank !== 3 || c.shape[0] !== b || c.shape[2] !== this.contextDim || c.shape[1]! > MAX_TOKENS) {
      throw new ArgumentRangeError(
        `Expected context of shape [${b}, tokens (at most ${MAX_TOKENS}), ${this.contextDim}] but received [${c.shape.join(', ')}]`,
      );
    }
    const t = timestepArgument(timestep, b!);
    const loras = this.#loras();
    const options = { ...(this.flashAttention && { flashAttention: true }), ...(loras.length > 0 && { loras: [...loras] }) };
    return Tensor.of(await this.#native().unetPredict(x, t, c, Object.keys(options).length > 0 ? options : undefined));
  }
}

function timestepArgument(value: unknown, batch: number): number | number[] {
  const check = (t: unknown, name: string): number => {
    if (typeof t !== 'number' || Number.isNaN(t)) {
      throw new ArgumentTypeError(`Expected ${name} to be a number between 0 and ${MAX_TIMESTEP} but received ${describe(t)}`);
    }
    if (!(t >= 0 && t <= MAX_TIMESTEP)) {
      throw new ArgumentRangeError(`Expected ${name} to be between 0 and ${MAX_TIMESTEP} but received ${t}`);
    }
    return t;
  };
  if (Array.isArray(value)) {
    const list = value.map((t, i) => check(t, `timestep[${i}]`));
    if (list.length !== 1 && list.length !== batch) {
      throw new ArgumentRangeError(`Expected 1 or ${batch} timesteps (one per batch item) but received ${list.length}`);
    }
    return list;
  }
  if (typeof value !== 'number') {
    throw new ArgumentTypeError(`Expected timestep to be a number or an array of numbers but received ${describe(value)}`);
  }
  return check(value, 'timestep');
}
