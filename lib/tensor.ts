import { describe } from './validate.js';
import { ArgumentRangeError, ArgumentTypeError } from './errors.js';

/** A float32 tensor in NCHW order: `shape` lists dimensions outermost first, `data` is row-major. */
export interface TensorLike {
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  /** The values, row-major. */
  readonly data: Float32Array;
}

const MAX_DIMENSION = 1e9;

/**
 * A float32 tensor (NCHW for images and latents) with small helpers; `Tensor.of({ shape, data })`
 * wraps any TensorLike without copying.
 */
export class Tensor implements TensorLike {
  /** Dimensions, outermost first (frozen). */
  readonly shape: readonly number[];
  /** The values, row-major; `size` of them. */
  readonly data: Float32Array;

  /** Wraps `data` without copying it; without `data`, allocates zeros. */
  constructor(shape: readonly number[], data?: Float32Array) {
    this.shape = Object.freeze(checkShape(shape, 'shape'));
    const size = this.shape.reduce((a, b) => a * b, 1);
    if (data === undefined) {
      this.data = new Float32Array(size);
    } else {
      if (!(data instanceof Float32Array)) {
        throw new ArgumentTypeError(`Expected data to be a Float32Array but received ${describe(data)}`);
      }
      if (data.length !== size) {
        throw new ArgumentRangeError(`Expected ${size} values for shape [${this.shape.join(', ')}] but received ${data.length}`);
      }
      this.data = data;
    }
  }

  /** A new tensor of zeros. */
  static zeros(shape: readonly number[]): Tensor {
    return new Tensor(shape);
  }

  /** Copies `values` (any array of numbers) into a new tensor of the given shape. */
  static from(shape: readonly number[], values: ArrayLike<number>): Tensor {
    return new Tensor(shape, Float32Array.from(values));
  }

  /** A Tensor over a `{ shape, data }` value, sharing its data; checks the shape and length. */
  static of(value: TensorLike): Tensor {
    if (value instanceof Tensor) return value;
    if (typeof value !== 'object' || value === null) {
      throw new ArgumentTypeError(`Expected a Tensor but received ${describe(value)}`);
    }
    return new Tensor(value.shape, value.data);
  }

  /** The number of values (the product of the dimensions). */
  get size(): number {
    return this.data.length;
  }

  /** The number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }

  /** Same data, new shape (no copy). */
  reshape(shape: readonly number[]): Tensor {
    return new Tensor(shape, this.data);
  }

  /** A copy with its own data. */
  clone(): Tensor {
    return new Tensor(this.shape, this.data.slice());
  }

  /** The value at a full index, e.g. `t.at(0, 3, 10, 12)`. */
  at(...index: number[]): number {
    if (index.length !== this.shape.length) {
      throw new ArgumentRangeError(`Expected ${this.shape.length} indices but received ${index.length}`);
    }
    let offset = 0;
    for (let d = 0; d < index.length; d++) {
      const i = index[d]!;
      const n = this.shape[d]!;
      if (!Number.isInteger(i) || i < 0 || i >= n) {
        throw new ArgumentRangeError(`Expected index ${d} to be an integer between 0 and ${n - 1} but received ${i}`);
      }
      offset = offset * n + i;
    }
    return this.data[offset]!;
  }

  toString(): string {
    return `Tensor [${this.shape.join(', ')}]`;
  }
}

function checkShape(shape: unknown, name: string): number[] {
  if (!Array.isArray(shape)) throw new ArgumentTypeError(`Expected ${name} to be an array of integers but received ${describe(shape)}`);
  return shape.map((d: unknown, i: number) => {
    if (typeof d !== 'number') throw new ArgumentTypeError(`Expected ${name}[${i}] to be an integer but received ${describe(d)}`);
    if (!Number.isInteger(d) || d < 1 || d > MAX_DIMENSION) {
      throw new ArgumentRangeError(`Expected ${name}[${i}] to be an integer between 1 and ${MAX_DIMENSION} but received ${d}`);
    }
    return d;
  });
}

/**
 * A tensor argument of the public API: a Tensor or a `{ shape, data: Float32Array }` value whose
 * elements are all finite. A NaN or an infinity would otherwise pass through every network and
 * come out as an all-NaN image, far from its cause.
 */
export function tensorArgument(value: unknown, name: string): Tensor {
  if (typeof value !== 'object' || value === null) {
    throw new ArgumentTypeError(`Expected ${name} to be a Tensor but received ${describe(value)}`);
  }
  const v = value as { shape?: unknown; data?: unknown };
  if (!Array.isArray(v.shape)) throw new ArgumentTypeError(`Expected ${name}.shape to be an array of integers but received ${describe(v.shape)}`);
  if (!(v.data instanceof Float32Array)) throw new ArgumentTypeError(`Expected ${name}.data to be a Float32Array but received ${describe(v.data)}`);
  return expectFinite(Tensor.of(value as TensorLike), name);
}

/** `t` itself, or a RangeError naming the first element that is NaN or infinite. */
export function expectFinite(t: Tensor, name: string): Tensor {
  const data = t.data;
  for (let i = 0; i < data.length; i++) {
    // x - x is 0 for finite x and NaN for NaN and ±Infinity: one test for both.
    if (data[i]! - data[i]! !== 0) {
      throw new ArgumentRangeError(`Expected ${name} to hold finite numbers but element ${i} is ${data[i]}`);
    }
  }
  return t;
}
