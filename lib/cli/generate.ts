// `sdnode generate`: txt2img, img2img (--init-image), inpaint (--mask), depth2img (--depth-map),
// with A1111 names for the options, a parameters chunk in every PNG, --from to regenerate an
// image from its chunk, and comma-separated values for a labelled grid.
import { existsSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';

import sharp from 'sharp';

import { AbortError, StableDiffusionError } from '../errors.js';
import { encodeImage, formatForPath, readDepthMap, readImage, readMask, resizeImage, toRgbBytes, type ImageFormat } from '../image.js';
import { modelHash } from '../model-hash.js';
import { packageRoot } from '../native.js';
import type { GenerationResult, PipelineName } from '../pipelines.js';
import { formatParameters, isPng, parseParameters, readExifUserComment, readPngText, samplerLabel, setPngText, toInfotext, type InfotextParameters, type ParsedParameters } from '../png-parameters.js';
import { MAX_SEED, type Seed } from '../rng.js';
import { A1111_SCHEDULER_NAMES, canonicalSchedulerName, SCHEDULER_NAMES } from '../scheduler.js';
import { BACKENDS, PREDICTION_TYPES, StableDiffusion, WEIGHT_TYPES, type LoadOptions } from '../stable-diffusion.js';
import type { Tensor } from '../tensor.js';
import { renderGrid, type GridLayout } from './grid.js';
import { Progress } from './progress.js';
import { oneOf, parse, UsageError, warn } from './usage.js';

/** The model `--model demo` names: a tiny random-weight SD1 that shows the pipeline working, not a picture. */
export const DEMO_MODEL = join(packageRoot, 'models', 'demo-sd1-tiny.gguf');

export const GENERATE_HELP = `Usage: sdnode generate --model <file|folder|demo> --prompt <text> [options]

Text to image; with --init-image image to image, with --mask inpainting, with --depth-map
depth to image (on a depth model). Defaults follow diffusers: 50 steps, CFG scale 7.5, PNDM.

  -m, --model PATH         .safetensors/.ckpt/.gguf file or diffusers folder; "demo" is the tiny
                           model shipped in the package (it shows the pipeline working, not a picture)
  -p, --prompt TEXT        A1111 attention syntax: (word:1.3), [word], BREAK
  -n, --negative-prompt TEXT
      --steps N            denoising steps (default 50)
      --cfg-scale X        classifier-free guidance (default 7.5)
      --sampler NAME       ${SCHEDULER_NAMES.join(', ')}
                           or A1111's names ("Euler a", "DPM++ 2M Karras", …) (default pndm)
      --seed N             default random; "random" or --seed=-1 picks one
      --width N, --height N  default: the model's size (img2img: the input image's);
                           not multiples of 8 are rounded down with a warning
      --batch-size N       images from one batch (files numbered name-1.png, name-2.png, …)
      --clip-skip N        A1111's Clip skip (1 = last layer)
  -o, --output FILE        .png (default, with A1111 parameters), .jpg/.jpeg or .webp
                           (default sdnode-<seed>.png)
      --quality N          JPEG/WebP quality (default 90)
      --init-image FILE    img2img / inpaint / depth2img input
      --strength X         how much of the input to repaint, 0–1 (img2img 0.8, inpaint 1)
      --mask FILE          inpaint: white (or opaque alpha) = repaint
      --depth-map FILE     depth2img: the depth map (16-bit PNGs keep their precision)
      --from IMAGE.png     take prompt, seed, sampler, steps, size, … from an image's
                           parameters; options given here override them
      --strict             refuse sizes that are not multiples of 8 instead of rounding
  Model: --weight-type ${WEIGHT_TYPES.join('|')}, --backend ${BACKENDS.join('|')},
         --threads N, --vae FILE, --prediction-type epsilon|v_prediction,
         --text-encoder-device, --unet-device, --vae-device BACKEND|DEVICE (e.g. --vae-device cpu
         with a GPU backend; device names as \`sdnode devices\` lists them)
  Memory: --flash-attention, --vae-tiling (decode/encode in blended tiles), --offload (one
          network on the device at a time)
  Output: -q/--quiet (no progress), --json (results on stdout, progress as JSON lines on stderr),
          --verbose (stack traces)

Comma-separated values of --cfg-scale, --seed, --sampler, --steps, --clip-skip and --strength
make a grid: one labelled contact sheet in the output file (the first list across, the others
down), e.g. --cfg-scale 3,7.5,12 --seed 1,2.`;

const OPTIONS = {
  model: { type: 'string', short: 'm' },
  prompt: { type: 'string', short: 'p' },
  'negative-prompt': { type: 'string', short: 'n' },
  steps: { type: 'string' },
  'cfg-scale': { type: 'string' },
  sampler: { type: 'string' },
  seed: { type: 'string' },
  width: { type: 'string' },
  height: { type: 'string' },
  'batch-size': { type: 'string' },
  'clip-skip': { type: 'string' },
  'weight-type': { type: 'string' },
  backend: { type: 'string' },
  'text-encoder-device': { type: 'string' },
  'unet-device': { type: 'string' },
  'vae-device': { type: 'string' },
  threads: { type: 'string' },
  vae: { type: 'string' },
  'prediction-type': { type: 'string' },
  'flash-attention': { type: 'boolean' },
  'vae-tiling': { type: 'boolean' },
  offload: { type: 'boolean' },
  output: { type: 'string', short: 'o' },
  quality: { type: 'string' },
  'init-image': { type: 'string' },
  strength: { type: 'string' },
  mask: { type: 'string' },
  'depth-map': { type: 'string' },
  from: { type: 'string' },
  strict: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
} as const;

/** Ctrl-C: the generation stopped and nothing was written. Exit status 130, as shells expect. */
export class CancelledError extends Error {
  readonly exitCode = 130;
}

function list(value: string, flag: string): string[] {
  const items = value.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) throw new UsageError(`--${flag} has an empty value in "${value}"`);
  return items;
}

function integer(text: string, flag: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^-?\d+$/.test(text) || n < min || n > max) throw new UsageError(`--${flag} must be an integer from ${min} to ${max} (got "${text}")`);
  return n;
}

function decimal(text: string, flag: string, min: number, max: number): number {
  const n = Number(text);
  if (text === '' || !Number.isFinite(n) || n < min || n > max) throw new UsageError(`--${flag} must be a number from ${min} to ${max} (got "${text}")`);
  return n;
}

function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 32);
}

function seed(text: string): Seed {
  if (text === '-1' || text.toLowerCase() === 'random') return randomSeed();
  if (!/^\d+$/.test(text) || BigInt(text) > MAX_SEED) throw new UsageError(`--seed must be an integer from 0 to ${MAX_SEED} or -1 for random (got "${text}")`);
  const n = BigInt(text);
  return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

function sampler(text: string): string {
  const name = canonicalSchedulerName(text);
  if (name === undefined) {
    const known = [...SCHEDULER_NAMES, ...Object.keys(A1111_SCHEDULER_NAMES).map((n) => JSON.stringify(n))];
    throw new UsageError(`--sampler must be one of ${known.join(', ')} (got "${text}")`);
  }
  return name;
}

/** A side from the command line: multiples of 8, rounded down with a warning unless --strict. */
function side(text: string, flag: string, strict: boolean): number {
  const n = integer(text, flag, 8, 8192);
  if (n % 8 === 0) return n;
  if (strict) throw new UsageError(`--${flag} ${n} is not a multiple of 8 (--strict)`);
  const rounded = n - (n % 8);
  warn(`--${flag} ${n} is not a multiple of 8; using ${rounded}`);
  return rounded;
}

type PipelineCall = (options: Record<string, unknown>) => Promise<GenerationResult>;

/** The varying part of one generation; a grid has one per cell. */
interface Job {
  steps: number;
  guidanceScale: number;
  sampler: string;
  seed: Seed;
  clipSkip: number | undefined;
  strength: number | undefined;
}

type Axis = { key: keyof Job; label: string; values: Job[keyof Job][] };

function axisValue(axis: Axis, value: Job[keyof Job]): string {
  return axis.key === 'sampler' ? samplerLabel(String(value)) : String(value);
}

/** Reads the A1111 `parameters` of an image file: a PNG text chunk, or EXIF UserComment in JPEG/WebP. */
export async function readImageParameters(path: string): Promise<string | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'ERR_FILE_NOT_FOUND' : 'ERR_FILE_READ';
    throw new StableDiffusionError(code, code === 'ERR_FILE_NOT_FOUND' ? `${path} does not exist` : `Cannot read ${path}: ${(error as Error).message}`, { path, cause: error });
  }
  try {
    if (isPng(bytes)) return readPngText(bytes).parameters;
    const { exif } = await sharp(bytes).metadata();
    return exif === undefined ? undefined : readExifUserComment(exif);
  } catch (error) {
    throw new StableDiffusionError('ERR_FILE_READ', `Cannot read ${path}: ${(error as Error).message}`, { path, cause: error });
  }
}

function numbered(path: string, index: number, count: number): string {
  if (count === 1) return path;
  const ext = extname(path);
  return join(dirname(path), `${basename(path, ext)}-${index + 1}${ext}`);
}

/** Writes every file or none: each goes to a temporary name first and is renamed when all are written. */
async function writeAll(files: { path: string; data: Buffer }[]): Promise<void> {
  const temps: string[] = [];
  try {
    for (const f of files) {
      const temp = join(dirname(f.path), `.${basename(f.path)}.${process.pid}.tmp`);
      await writeFile(temp, f.data).catch((error: Error) => {
        throw new StableDiffusionError('ERR_FILE_WRITE', `Cannot write ${f.path}: ${error.message.replace(/, open .*$/, '')}`, { path: f.path, cause: error });
      });
      temps.push(temp);
    }
    for (let i = 0; i < files.length; i++) await rename(temps[i]!, files[i]!.path);
  } catch (error) {
    await Promise.all(temps.map((t) => rm(t, { force: true })));
    throw error;
  }
}

export async function generate(args: string[]): Promise<void> {
  const { values: v, positionals } = parse(args, OPTIONS);
  if (positionals.length > 0) throw new UsageError(`generate takes no positional arguments (got "${positionals[0]}"; quote the prompt and pass it with --prompt)`);
  const strict = v.strict ?? false;

  let from: ParsedParameters | undefined;
  if (v.from !== undefined) {
    const text = await readImageParameters(v.from);
    if (text === undefined) throw new StableDiffusionError('ERR_FILE_READ', `${v.from} has no generation parameters (no PNG "parameters" chunk or EXIF UserComment)`, { path: v.from });
    from = parseParameters(text);
  }

  const prompt = v.prompt ?? from?.prompt;
  if (prompt === undefined) throw new UsageError('generate needs --prompt (or --from an image with parameters)');
  if (v.model === undefined) {
    const made = from?.model ? ` (the image was made with ${from.model}${from.modelHash ? `, hash ${from.modelHash}` : ''})` : '';
    throw new UsageError(`generate needs --model <file|folder|demo>${made}`);
  }
  const modelPath = v.model === 'demo' ? DEMO_MODEL : v.model;
  if (!existsSync(modelPath)) {
    throw new StableDiffusionError('ERR_FILE_NOT_FOUND', v.model === 'demo' ? `The demo model ${DEMO_MODEL} is missing from this install` : `--model ${modelPath} does not exist`, { path: modelPath });
  }

  // Every list is read before anything slow happens, so a typo fails at once.
  const steps = v.steps !== undefined ? list(v.steps, 'steps').map((s) => integer(s, 'steps', 1, 1000)) : [from?.steps ?? 50];
  const cfg = v['cfg-scale'] !== undefined ? list(v['cfg-scale'], 'cfg-scale').map((s) => decimal(s, 'cfg-scale', 0, 100)) : [from?.guidanceScale ?? 7.5];
  const samplers = v.sampler !== undefined ? list(v.sampler, 'sampler').map(sampler) : [from?.sampler ?? 'pndm'];
  if (from?.sampler !== undefined && v.sampler === undefined && canonicalSchedulerName(from.sampler) === undefined) {
    throw new UsageError(`${v.from} was made with the sampler "${from.sampler}", which this package does not have; choose one with --sampler`);
  }
  const seeds = v.seed !== undefined ? list(v.seed, 'seed').map(seed) : [from?.seed ?? randomSeed()];
  const clipSkips = v['clip-skip'] !== undefined ? list(v['clip-skip'], 'clip-skip').map((s) => integer(s, 'clip-skip', 1, 1000)) : [from?.clipSkip];
  const strengths = v.strength !== undefined ? list(v.strength, 'strength').map((s) => decimal(s, 'strength', 0, 1)) : [from?.strength];
  const width = v.width !== undefined ? side(v.width, 'width', strict) : from?.width;
  const height = v.height !== undefined ? side(v.height, 'height', strict) : from?.height;
  // --from an image of a batch regenerates that batch and keeps the image at its position.
  const keep = v['batch-size'] === undefined && from?.batchSize !== undefined && from.batchSize > 1 ? from.batchPosition ?? 0 : undefined;
  const batchSize = v['batch-size'] !== undefined ? integer(v['batch-size'], 'batch-size', 1, 32) : from?.batchSize ?? 1;
  if (keep !== undefined && keep >= batchSize) throw new UsageError(`${v.from}: "Batch pos" ${keep} is outside "Batch size" ${batchSize}`);
  const quality = v.quality === undefined ? undefined : integer(v.quality, 'quality', 1, 100);
  const threads = v.threads === undefined ? undefined : integer(v.threads, 'threads', 1, 1024);

  let pipeline: PipelineName = 'txt2img';
  if (v.mask !== undefined) pipeline = 'inpaint';
  else if (v['depth-map'] !== undefined) pipeline = 'depth2img';
  else if (v['init-image'] !== undefined) pipeline = 'img2img';
  if (v.mask !== undefined && v['depth-map'] !== undefined) throw new UsageError('--mask and --depth-map cannot be combined (inpaint or depth2img, not both)');
  if (pipeline !== 'txt2img' && v['init-image'] === undefined) throw new UsageError(`--${pipeline === 'inpaint' ? 'mask' : 'depth-map'} needs --init-image`);
  if (pipeline === 'txt2img' && v.strength !== undefined) throw new UsageError('--strength needs --init-image');
  if (pipeline === 'txt2img' && from?.strength !== undefined) {
    throw new UsageError(`${v.from} was made from an input image (Denoising strength ${from.strength}): pass --init-image (and --mask or --depth-map as it was made)`);
  }

  const axes: Axis[] = (
    [
      { key: 'guidanceScale', label: 'CFG scale', values: cfg },
      { key: 'seed', label: 'Seed', values: seeds },
      { key: 'sampler', label: 'Sampler', values: samplers },
      { key: 'steps', label: 'Steps', values: steps },
      { key: 'clipSkip', label: 'Clip skip', values: clipSkips },
      { key: 'strength', label: 'Denoising strength', values: strengths },
    ] as Axis[]
  ).filter((a) => a.values.length > 1);
  const isGrid = axes.length > 0;
  if (isGrid && batchSize > 1) throw new UsageError('--batch-size above 1 cannot be combined with comma-separated values (a grid)');

  const output = v.output ?? (isGrid ? `sdnode-grid-${seeds[0]}.png` : `sdnode-${seeds[0]}.png`);
  const format: ImageFormat | undefined = formatForPath(output);
  if (format === undefined) throw new UsageError(`-o must end in .png, .jpg, .jpeg or .webp (got "${output}")`);
  if (!existsSync(dirname(output) || '.')) throw new StableDiffusionError('ERR_FILE_WRITE', `Cannot write ${output}: its folder does not exist`, { path: output });

  const devices: NonNullable<LoadOptions['devices']> = {};
  for (const [flag, network] of [['text-encoder-device', 'textEncoder'], ['unet-device', 'unet'], ['vae-device', 'vae']] as const) {
    if (v[flag] !== undefined) devices[network] = v[flag];
  }
  const loadOptions: LoadOptions = {
    model: modelPath,
    ...(Object.keys(devices).length > 0 && { devices }),
    ...(v['weight-type'] !== undefined && { weightType: oneOf(v['weight-type'], 'weight-type', WEIGHT_TYPES)! }),
    ...(v.backend !== undefined && { backend: oneOf(v.backend, 'backend', BACKENDS)! }),
    ...(v['prediction-type'] !== undefined && { predictionType: oneOf(v['prediction-type'], 'prediction-type', PREDICTION_TYPES)! }),
    ...(v.vae !== undefined && { vae: v.vae }),
    ...(threads !== undefined && { threads }),
    ...(v['flash-attention'] && { flashAttention: true }),
    ...(v['vae-tiling'] && { vaeTiling: true }),
    ...(v.offload && { offload: true }),
  };

  // Input images are read (and their errors reported) before the model loads.
  let image: Tensor | undefined;
  let mask: Tensor | undefined;
  let depthMap: Tensor | undefined;
  if (v['init-image'] !== undefined) {
    image = await readImage(v['init-image'], '--init-image');
    const [h, w] = [image.shape[2]!, image.shape[3]!];
    if (width === undefined && height === undefined && (w % 8 !== 0 || h % 8 !== 0)) {
      if (strict) throw new UsageError(`--init-image is ${w}×${h}, not a multiple of 8 (--strict)`);
      warn(`--init-image is ${w}×${h}, not a multiple of 8; generating ${w - (w % 8)}×${h - (h % 8)}`);
    }
  }
  if (v.mask !== undefined) {
    mask = await readMask(v.mask, '--mask');
    const [h, w] = [image!.shape[2]!, image!.shape[3]!];
    if (mask.shape[2] !== h || mask.shape[3] !== w) {
      // Masks are often drawn at another resolution; the pipeline wants the image's.
      warn(`--mask is ${mask.shape[3]}×${mask.shape[2]}, the image ${w}×${h}: resizing the mask`);
      mask = await resizeImage(mask, w, h);
    }
  }
  if (v['depth-map'] !== undefined) depthMap = await readDepthMap(v['depth-map'], '--depth-map');

  const progress = new Progress(Progress.modeFor(v, process.stderr.isTTY));
  const controller = new AbortController();
  let interrupts = 0;
  const onInterrupt = () => {
    // A second Ctrl-C does not wait for the current step.
    if (++interrupts > 1) process.exit(130);
    controller.abort(new CancelledError('cancelled'));
  };
  process.on('SIGINT', onInterrupt);
  const started = performance.now();
  let sd: StableDiffusion | undefined;
  try {
    progress.stage('load');
    const [model, hash] = await Promise.all([StableDiffusion.load(loadOptions), modelHash(modelPath)]);
    sd = model;
    if (from?.modelHash && hash && from.modelHash.toLowerCase() !== hash) {
      warn(`${v.from} was made with model hash ${from.modelHash}${from.model ? ` (${from.model})` : ''}; ${basename(modelPath)} is ${hash}`);
    }
    if (pipeline === 'txt2img' && sd.info.variant !== 'base') {
      throw new UsageError(`${basename(modelPath)} is a ${sd.info.variant} model: pass --init-image${sd.info.variant === 'inpaint' ? ' and --mask' : ' and --depth-map'}`);
    }
    const call = pipelineCall(sd, pipeline);
    const modelName = v.model === 'demo' ? 'demo-sd1-tiny' : basename(modelPath).replace(/\.(safetensors|ckpt|pt|gguf|bin)$/i, '');

    const jobs = cartesian(axes, { steps: steps[0]!, guidanceScale: cfg[0]!, sampler: samplers[0]!, seed: seeds[0]!, clipSkip: clipSkips[0], strength: strengths[0] });

    const results: { images: Tensor; parameters: InfotextParameters[] }[] = [];
    for (let j = 0; j < jobs.length; j++) {
      const job = jobs[j]!;
      progress.job(j, jobs.length);
      progress.stage('encode');
      const options: Record<string, unknown> = {
        prompt,
        negativePrompt: v['negative-prompt'] ?? from?.negativePrompt ?? '',
        steps: job.steps,
        guidanceScale: job.guidanceScale,
        scheduler: job.sampler,
        seed: job.seed,
        batchSize,
        signal: controller.signal,
        onStep: (info: Parameters<Progress['step']>[0]) => progress.step(info),
        ...(width !== undefined && { width }),
        ...(height !== undefined && { height }),
        ...(job.clipSkip !== undefined && { clipSkip: job.clipSkip }),
        ...(job.strength !== undefined && { strength: job.strength }),
        ...(image !== undefined && { image }),
        ...(mask !== undefined && { mask }),
        ...(depthMap !== undefined && { depthMap }),
      };
      const result = await call(options);
      if (result.images === null) throw new StableDiffusionError('ERR_INTERNAL', `${pipeline} returned no images`);
      const count = result.images.shape[0]!;
      const parameters = Array.from({ length: count }, (_, i) => ({
        ...toInfotext(result.parameters, i, { model: modelName, ...(hash !== undefined && { modelHash: hash }) }),
        seed: result.seeds[i] ?? result.parameters.seed,
      }));
      results.push({ images: result.images, parameters });
    }
    progress.done();
    if (controller.signal.aborted) throw new CancelledError('cancelled');

    const files: { path: string; data: Buffer; width: number; height: number; parameters: InfotextParameters }[] = [];
    let grid: { layout: GridLayout; columns: string[]; rows: string[] } | undefined;
    if (isGrid) {
      const [x, ...ys] = axes as [Axis, ...Axis[]];
      const columns = x.values.map((value) => `${x.label}: ${axisValue(x, value)}`);
      const rowCount = jobs.length / columns.length;
      const rows = Array.from({ length: rowCount }, (_, r) => {
        const job = jobs[r * columns.length]!;
        return ys.map((axis) => `${axis.label}: ${axisValue(axis, job[axis.key])}`).join(', ');
      });
      const cells = Array.from({ length: rowCount }, (_, r) =>
        Array.from({ length: columns.length }, (_, c) => toRgbBytes(results[r * columns.length + c]!.images, 0)),
      );
      const rendered = await renderGrid(cells, columns, rows);
      grid = { layout: rendered.layout, columns, rows };
      // The grid carries its first cell's parameters, as A1111's grids do.
      const first = results[0]!.parameters[0]!;
      const data = format === 'png' ? encodeGridPng(rendered.png, first) : await encodeOther(rendered.png, format, quality, first);
      files.push({ path: output, data, width: rendered.layout.width, height: rendered.layout.height, parameters: first });
    } else {
      const { images, parameters } = results[0]!;
      const indices = keep !== undefined ? [keep] : parameters.map((_, i) => i);
      for (const [n, i] of indices.entries()) {
        const data = await encodeImage(images, i, { format, ...(quality !== undefined && { quality }), parameters: parameters[i]! });
        files.push({ path: numbered(output, n, indices.length), data, width: images.shape[3]!, height: images.shape[2]!, parameters: parameters[i]! });
      }
    }
    if (controller.signal.aborted) throw new CancelledError('cancelled');
    await writeAll(files);
    const seconds = (performance.now() - started) / 1000;
    if (v.json) {
      console.log(JSON.stringify({
        pipeline,
        outputs: files.map((f) => ({ path: f.path, width: f.width, height: f.height, seed: String(f.parameters.seed), parameters: formatParameters(f.parameters) })),
        ...(grid && { grid: { columns: grid.columns, rows: grid.rows, ...grid.layout } }),
        seconds: Number(seconds.toFixed(2)),
      }, null, 2));
    } else {
      for (const f of files) console.log(`wrote ${f.path} (${f.width}×${f.height}${grid ? `, ${jobs.length} images` : `, seed ${f.parameters.seed}`})`);
    }
  } catch (error) {
    progress.done();
    if (error instanceof CancelledError || (error instanceof AbortError && controller.signal.aborted)) {
      throw new CancelledError('cancelled; nothing was written');
    }
    throw error;
  } finally {
    process.off('SIGINT', onInterrupt);
    await sd?.dispose();
  }
}

/** Jobs of the grid with the first axis varying fastest, the last slowest. */
function cartesian(axes: Axis[], base: Job): Job[] {
  let jobs: Job[] = [base];
  for (const axis of axes) {
    const next: Job[] = [];
    for (const value of axis.values) for (const job of jobs) next.push({ ...job, [axis.key]: value });
    jobs = next;
  }
  return jobs;
}

function encodeGridPng(png: Buffer, parameters: InfotextParameters): Buffer {
  return setPngText(png, 'parameters', formatParameters(parameters));
}

async function encodeOther(png: Buffer, format: ImageFormat, quality: number | undefined, parameters: InfotextParameters): Promise<Buffer> {
  const image = sharp(png);
  const encoded = format === 'jpeg' ? image.jpeg({ quality: quality ?? 90 }) : image.webp({ quality: quality ?? 90 });
  const text = formatParameters(parameters);
  if (/^[\x00-\x7f]*$/.test(text)) encoded.withExif({ IFD2: { UserComment: text } });
  return encoded.toBuffer();
}

function pipelineCall(sd: StableDiffusion, pipeline: PipelineName): PipelineCall {
  // The options object is built from checked flags; the pipelines validate it again at their edge.
  const methods = sd as unknown as Record<PipelineName, PipelineCall | undefined>;
  const method = methods[pipeline];
  if (typeof method !== 'function') {
    throw new StableDiffusionError('ERR_NOT_IMPLEMENTED', `${pipeline} is not available in this version of stable-diffusion-node`);
  }
  return method.bind(sd);
}
