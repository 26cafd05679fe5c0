// Random tensors as PyTorch's CPU generator gives them, over native/core/sched/rng_torch.h:
// randn(shape, seed) equals torch.randn(shape, generator=torch.Generator().manual_seed(seed))
// bit for bit, and a TorchGenerator's successive draws equal successive torch.randn calls on
// one torch.Generator (diffusers draws latents, then noise, from one generator).
//
// Draws run on a native worker thread and return Promises; a generator's draws run one after
// another in the order they were asked for, whatever order their promises are awaited in.
import { native, type NativeTorchGenerator } from './native.js';
import { Tensor, type TensorLike } from './tensor.js';
import { TORCH_KERNELS, type Seed, type TorchKernel } from './types.js';
import { describe, expectKnownKeys, expectObject, expectOneOf } from './validate.js';
import { ArgumentRangeError, ArgumentTypeError } from './errors.js';

/** Options of `randn` and the TorchGenerator constructor. */
export interface RandnOptions {
  /** Default `avx2`. */
  kernel?: TorchKernel;
}

/** The largest seed: 2^64 − 1. */
export const MAX_SEED = 18446744073709551615n;
/** The most values one draw may give (2^30: 4 GiB of float32). */
export const MAX_RANDN_SIZE = 1073741824;
const MAX_DIMENSION = 1e9; // as Tensor allows

/** Checks a seed and returns it as a bigint. */
export function toSeed(seed: unknown, name = 'seed'): bigint {
  const expected = `Expected integer ${name} between 0 and ${MAX_SEED}`;
  if (typeof seed === 'bigint') {
    if (seed < 0n || seed > MAX_SEED) throw new ArgumentRangeError(`${expected} but received ${seed}`);
    return seed;
  }
  if (typeof seed !== 'number' || Number.isNaN(seed)) throw new ArgumentTypeError(`${expected} but received ${describe(seed)}`);
  if (!Number.isInteger(seed) || seed < 0) throw new ArgumentRangeError(`${expected} but received ${seed}`);
  if (!Number.isSafeInteger(seed)) {
    throw new ArgumentRangeError(`${expected} but received ${seed}, which is above 2^53 − 1: pass a larger seed as a bigint`);
  }
  return BigInt(seed);
}

/** Checks a shape: an array of positive integers (possibly empty: one value) of at most MAX_RANDN_SIZE values. */
export function toShape(shape: unknown, name = 'shape'): number[] {
  if (!Array.isArray(shape)) throw new ArgumentTypeError(`Expected ${name} to be an array of integers but received ${describe(shape)}`);
  let size = 1;
  const dims = shape.map((d: unknown, i: number) => {
    if (typeof d !== 'number') throw new ArgumentTypeError(`Expected ${name}[${i}] to be an integer but received ${describe(d)}`);
    if (!Number.isInteger(d) || d < 1 || d > MAX_DIMENSION) {
      throw new ArgumentRangeError(`Expected ${name}[${i}] to be an integer between 1 and ${MAX_DIMENSION} but received ${d}`);
    }
    size *= d;
    return d;
  });
  if (size > MAX_RANDN_SIZE) {
    throw new ArgumentRangeError(`Expected ${name} to hold at most ${MAX_RANDN_SIZE} values but [${dims.join(', ')}] holds ${size}`);
  }
  return dims;
}

function toKernel(options: unknown): TorchKernel {
  if (options === undefined) return 'avx2';
  const o = expectObject(options, 'options');
  expectKnownKeys(o, 'options', ['kernel']);
  return o.kernel === undefined ? 'avx2' : expectOneOf(o.kernel, 'options.kernel', TORCH_KERNELS);
}

function toTensor(value: TensorLike): Tensor {
  return new Tensor(value.shape, value.data);
}

/**
 * `torch.randn(shape, generator=torch.Generator().manual_seed(seed))` on a CPU, bit for bit.
 * Torch uses only the low 32 bits of the seed: seeds s and s + 2^32 give the same values.
 */
export async function randn(shape: readonly number[], seed: Seed, options?: RandnOptions): Promise<Tensor> {
  const dims = toShape(shape);
  const s = toSeed(seed);
  const kernel = toKernel(options);
  return toTensor(await native().torchRandn(dims, s, kernel));
}

/**
 * A torch CPU generator (`torch.Generator().manual_seed(seed)`): each `randn(shape)` gives
 * what the next `torch.randn(shape, generator=g)` gives, including the normal value torch
 * keeps between draws of fewer than 16 values.
 */
export class TorchGenerator {
  readonly #native: NativeTorchGenerator;
  #seed: bigint;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(seed: Seed, options?: RandnOptions) {
    this.#seed = toSeed(seed);
    this.#native = new (native().TorchGenerator)(this.#seed, toKernel(options));
  }

  /** The seed last given (torch's `initial_seed()`), as a bigint. */
  get initialSeed(): bigint {
    return this.#seed;
  }

  /** The torch kernel this generator's draws reproduce. */
  get kernel(): TorchKernel {
    return this.#native.kernel();
  }

  /** The next `torch.randn(shape, generator=g)`. Draws run one at a time, in call order. */
  randn(shape: readonly number[]): Promise<Tensor> {
    const dims = toShape(shape);
    const result = this.#queue.then(() => this.#native.randn(dims)).then(toTensor);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /** As `g.manual_seed(seed)`: restarts the generator for the draws asked for after this call. */
  manualSeed(seed: Seed): this {
    const s = toSeed(seed);
    this.#seed = s;
    this.#queue = this.#queue.then(() => this.#native.manualSeed(s));
    return this;
  }
}
