// One of the networks beside the pipeline, timed in its own process through the public API:
//   node --import tsx bench/networks.ts taesd|esrgan|dpt PATH [--size N] [--threads 2] [--runs 2]
// taesd: TAESD decode of [1, 4, N/8, N/8] latents (default N 512), loaded as `tinyVae` beside the
//        demo model; esrgan: `Upscaler.upscale` of an N×N image (default 512, the default tiles);
//        dpt: the depth estimator on [1, 3, N, N] pixel values (default 384, the network alone).
// The inputs are seeded noise. The first call also builds and allocates the graph and is reported
// apart. Prints one JSON line; bench/networks_torch.py times the same files in PyTorch.
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { DepthEstimator, StableDiffusion, Tensor, Upscaler } from '../lib/index.js';
import { packageRoot } from '../lib/native.js';
import { median } from './median.js';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { size: { type: 'string' }, threads: { type: 'string', default: '2' }, runs: { type: 'string', default: '2' } },
});
const [network, path] = positionals;
if (!['taesd', 'esrgan', 'dpt'].includes(network ?? '') || !path) {
  console.error('usage: node --import tsx bench/networks.ts taesd|esrgan|dpt PATH [--size N] [--threads 2] [--runs 2]');
  process.exit(2);
}
const size = Number(values.size ?? (network === 'dpt' ? 384 : 512));
const threads = Number(values.threads);
const runs = Number(values.runs);

// Deterministic noise in [lo, hi) (a small LCG: the values only need to be the same each run).
function noise(shape: number[], lo: number, hi: number): Tensor {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  let state = 12345;
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    data[i] = lo + ((state >>> 8) / 2 ** 24) * (hi - lo);
  }
  return new Tensor(shape, data);
}

const seconds = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e9;

let call: () => Promise<unknown>;
let close: () => Promise<void>;
if (network === 'taesd') {
  const sd = await StableDiffusion.load({ model: join(packageRoot, 'models', 'demo-sd1-tiny.gguf'), tinyVae: path, threads, backend: 'cpu' });
  const latents = noise([1, 4, size / 8, size / 8], -3, 3);
  call = () => sd.tinyVae!.decode(latents);
  close = () => sd.dispose();
} else if (network === 'esrgan') {
  const upscaler = await Upscaler.load(path, { threads, backend: 'cpu' });
  const image = noise([1, 3, size, size], 0, 1);
  call = () => upscaler.upscale(image);
  close = async () => upscaler.dispose();
} else {
  const estimator = await DepthEstimator.load(path, { threads, backend: 'cpu' });
  const pixels = noise([1, 3, size, size], -1, 1);
  call = () => estimator.estimatePixelValues(pixels);
  close = async () => estimator.dispose();
}

let start = process.hrtime.bigint();
await call();
const first = seconds(start);
const times: number[] = [];
for (let i = 0; i < runs; i++) {
  start = process.hrtime.bigint();
  await call();
  times.push(seconds(start));
}
await close();
console.log(JSON.stringify({ engine: 'ours', network, size, threads, firstSeconds: first, seconds: times, median: median(times) }));
