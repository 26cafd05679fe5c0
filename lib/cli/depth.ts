// `sdnode depth IMAGE --model M`: the depth estimator (DPT-Hybrid) on one image, written as a
// 16-bit grayscale PNG (white = near) at the image's size.
import { writeFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';

import sharp from 'sharp';

import { DepthEstimator } from '../depth-estimator.js';
import { readImage } from '../image.js';
import { interpolate } from '../interpolate.js';
import { normalizePerItem } from '../tensor-ops.js';
import type { Tensor } from '../tensor.js';
import { BACKENDS } from '../types.js';
import { optionalInteger, parse, UsageError } from './usage.js';

export const DEPTH_HELP = `Usage: sdnode depth <image> --model <depth model|estimator> [-o depth.png] [options]

Estimates depth with SD 2 depth's estimator (DPT-Hybrid, MiDaS 3.0) and writes it as a 16-bit
grayscale PNG: relative inverse depth mapped from its own minimum (black) to its maximum (white,
nearest), bicubically resized from the network's side (384) to the image's size.

  -m, --model PATH         a depth model (a diffusers folder with depth_estimator/, or the
                           original 512-depth-ema checkpoint), or an estimator alone (a
                           depth_estimator folder or its weights, or MiDaS's dpt_hybrid file)
  -o, --output FILE        a .png (default <image>-depth.png)
      --network-size       keep the network's size (S × S) instead of the image's
      --backend NAME       ${BACKENDS.join(', ')} or a device name (default auto)
      --threads N          CPU threads
  Output: --json (the result on stdout), --verbose (stack traces)`;

/** Depth [1, 1, H, W] → a 16-bit grayscale PNG, its minimum black and its maximum white. */
export async function depthPng(depth: Tensor): Promise<Buffer> {
  const [, , height, width] = depth.shape as [number, number, number, number];
  const unit = normalizePerItem(depth);  // [-1, 1]
  const levels = new Uint16Array(width * height);
  for (let i = 0; i < levels.length; i++) levels[i] = Math.round(((unit.data[i]! + 1) / 2) * 65535);
  // A Uint16Array tells sharp the samples are 16-bit.
  return sharp(levels, { raw: { width, height, channels: 1 } }).toColourspace('grey16').png().toBuffer();
}

export async function depthCommand(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, {
    model: { type: 'string', short: 'm' },
    output: { type: 'string', short: 'o' },
    'network-size': { type: 'boolean' },
    backend: { type: 'string' },
    threads: { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError('depth takes one image (see sdnode depth --help)');
  if (values.model === undefined) throw new UsageError('depth needs --model <depth model or estimator>');
  if (values.output !== undefined && extname(values.output).toLowerCase() !== '.png') {
    throw new UsageError(`--output must end in .png (got "${values.output}")`);
  }
  const threads = optionalInteger(values.threads, 'threads', 1, 1024);
  const image = positionals[0]!;
  const started = performance.now();
  const estimator = await DepthEstimator.load(values.model, {
    ...(values.backend !== undefined && { backend: values.backend }),
    ...(threads !== undefined && { threads }),
  });
  try {
    const input = await readImage(image, 'image');
    const predicted = await estimator.estimate(input);
    const side = estimator.info.imageSize;
    let depth = predicted.reshape([1, 1, side, side]);
    const [height, width] = values['network-size'] ? [side, side] : [input.shape[2]!, input.shape[3]!];
    if (height !== side || width !== side) depth = interpolate(depth, height, width, 'bicubic');
    const output = values.output ?? `${basename(image, extname(image))}-depth.png`;
    await writeFile(output, await depthPng(depth));
    const seconds = (performance.now() - started) / 1000;
    if (values.json) {
      console.log(JSON.stringify({ output, width, height, estimator: estimator.info, seconds }, null, 2));
    } else {
      console.log(`wrote ${output}: ${width}×${height} 16-bit depth (DPT-Hybrid at ${side}², ${estimator.info.layout} layout) in ${seconds.toFixed(1)} s`);
    }
  } finally {
    estimator.dispose();
  }
}
