// Deterministic bench inputs: values in [-1, 1) from a linear congruential sequence, so every
// bench script (and every run) feeds the networks the same numbers without a generator call.
import { Tensor } from '../lib/index.js';

export function filled(shape: number[], seed: number): Tensor {
  const t = new Tensor(shape);
  let x = seed;
  for (let i = 0; i < t.size; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    t.data[i] = x / 1073741824 - 1;
  }
  return t;
}
