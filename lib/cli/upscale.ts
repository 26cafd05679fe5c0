// `sdnode upscale IMAGE --upscaler FILE`: Real-ESRGAN on one image, tile by tile, with a
// progress bar per tile.
import { basename, extname } from 'node:path';

import { formatForPath } from '../image.js';
import { BACKENDS } from '../types.js';
import { DEFAULT_UPSCALE_TILE_OVERLAP, DEFAULT_UPSCALE_TILE_SIZE, Upscaler } from '../upscaler.js';
import { abortOnInterrupt, cancelledOr } from './interrupt.js';
import { Progress } from './progress.js';
import { optionalInteger, parse, UsageError } from './usage.js';

export const UPSCALE_HELP = `Usage: sdnode upscale <image> --upscaler <file> [-o out.png] [options]

Upscales an image with a Real-ESRGAN model (RRDBNet: RealESRGAN_x4plus, x4plus_anime_6B,
x2plus, … as .pth or .safetensors), tile by tile so that memory stays bounded.

  -u, --upscaler FILE      the upscaler's weights
  -o, --output FILE        .png (default), .jpg/.jpeg or .webp (default <image>-x<scale>.png)
      --scale X            output size over input size, 1 to 8 (default: the network's own);
                           another scale resizes the network's output with Lanczos
      --tile-size N        tile side in input pixels, 32 to 2048 (default ${DEFAULT_UPSCALE_TILE_SIZE})
      --tile-overlap N     pixels of context around each tile, cropped after (default ${DEFAULT_UPSCALE_TILE_OVERLAP})
      --backend NAME       ${BACKENDS.join(', ')} or a device name (default auto)
      --threads N          CPU threads
      --quality N          JPEG/WebP quality (default 90)
  Output: -q/--quiet (no progress), --json (the result on stdout, progress as JSON lines on
          stderr), --verbose (stack traces)`;

function parseScale(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || n < 1 || n > 8) throw new UsageError(`--scale must be a number from 1 to 8 (got "${text}")`);
  return n;
}

export async function upscaleCommand(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, {
    upscaler: { type: 'string', short: 'u' },
    output: { type: 'string', short: 'o' },
    scale: { type: 'string' },
    'tile-size': { type: 'string' },
    'tile-overlap': { type: 'string' },
    backend: { type: 'string' },
    threads: { type: 'string' },
    quality: { type: 'string' },
    quiet: { type: 'boolean', short: 'q' },
  });
  if (positionals.length !== 1) throw new UsageError('upscale takes one image (see sdnode upscale --help)');
  if (values.upscaler === undefined) throw new UsageError('upscale needs --upscaler <file> (a Real-ESRGAN .pth or .safetensors)');
  const image = positionals[0]!;
  const scale = parseScale(values.scale);
  const tileSize = optionalInteger(values['tile-size'], 'tile-size', 32, 2048);
  const tileOverlap = optionalInteger(values['tile-overlap'], 'tile-overlap', 0, 1024);
  const threads = optionalInteger(values.threads, 'threads', 1, 1024);
  const quality = optionalInteger(values.quality, 'quality', 1, 100);
  if (values.output !== undefined && formatForPath(values.output) === undefined) {
    throw new UsageError(`--output must end in .png, .jpg, .jpeg or .webp (got "${values.output}")`);
  }

  const progress = new Progress(Progress.modeFor(values, process.stderr.isTTY));
  const controller = new AbortController();
  const stopListening = abortOnInterrupt(controller);
  const started = performance.now();
  let upscaler: Upscaler | undefined;
  try {
    progress.stage('load');
    upscaler = await Upscaler.load(values.upscaler, {
      ...(values.backend !== undefined && { backend: values.backend }),
      ...(threads !== undefined && { threads }),
    });
    const result = await upscaler.upscale(image, {
      ...(scale !== undefined && { scale }),
      ...(tileSize !== undefined && { tileSize }),
      ...(tileOverlap !== undefined && { tileOverlap }),
      signal: controller.signal,
      onProgress: (p) => progress.tile(p),
    });
    progress.done();
    const label = Number.isInteger(result.scale) ? String(result.scale) : result.scale.toFixed(2);
    const output = values.output ?? `${basename(image, extname(image))}-x${label}.png`;
    await result.save(output, { ...(quality !== undefined && { quality }) });
    const seconds = (performance.now() - started) / 1000;
    if (values.json) {
      console.log(JSON.stringify({ output, width: result.width, height: result.height, scale: result.scale, upscaler: upscaler.info, seconds }, null, 2));
    } else {
      const i = upscaler.info;
      console.log(`wrote ${output}: ${result.width}×${result.height} (×${label}; RRDBNet ×${i.scale}, ${i.blocks} blocks) in ${seconds.toFixed(1)} s`);
    }
  } catch (error) {
    progress.done();
    throw cancelledOr(error, controller.signal);
  } finally {
    stopListening();
    upscaler?.dispose();
  }
}
