// `sdnode generate`, step 1 of 4: the command line (and --from's parameters) read and checked
// into a request, and the input images read, all before anything slow happens, so a typo fails
// at once.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';

import sharp from 'sharp';

import { StableDiffusionError } from '../../errors.js';
import { formatForPath, readDepthMap, readImage, readMask, resizeImage, type ImageFormat } from '../../image.js';
import { isPng, parseParameters, readExifUserComment, readPngText, type ParsedParameters } from '../../png-parameters.js';
import { MAX_SEED } from '../../rng.js';
import { A1111_SCHEDULER_NAMES, canonicalSchedulerName, SCHEDULER_NAMES } from '../../scheduler.js';
import type { LoadOptions } from '../../stable-diffusion.js';
import type { Tensor } from '../../tensor.js';
import { LORA_EXTENSIONS } from '../../lora.js';
import { BACKENDS, PREDICTION_TYPES, WEIGHT_TYPES, type LoraSpec, type PipelineName, type Seed } from '../../types.js';
import { oneOf, parse, safetyCheckerFlag, UsageError, warn } from '../usage.js';
import { A1111_HIRES_UPSCALER_NAMES } from '../../pipelines/hires.js';
import { HIRES_UPSCALERS, type HiresUpscalerName } from '../../pipelines/types.js';
import { gridAxes } from './plan.js';
import type { GenerateRequest, JobValues } from './types.js';

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
  'tiny-vae': { type: 'string' },
  'safety-checker': { type: 'string' },
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
  'hires-scale': { type: 'string' },
  'hires-width': { type: 'string' },
  'hires-height': { type: 'string' },
  'hires-upscaler': { type: 'string' },
  'hires-steps': { type: 'string' },
  'hires-denoise': { type: 'string' },
  lora: { type: 'string', multiple: true },
  'lora-dir': { type: 'string', multiple: true },
  'embedding-dir': { type: 'string', multiple: true },
  strict: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
} as const;

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

type Values = ReturnType<typeof parse<typeof OPTIONS>>['values'];

/** Reads and checks a generate command line; `demoModel` is the file `--model demo` names. */
export async function parseGenerate(args: string[], demoModel: string): Promise<GenerateRequest> {
  const { values: v, positionals } = parse(args, OPTIONS);
  if (positionals.length > 0) throw new UsageError(`generate takes no positional arguments (got "${positionals[0]}"; quote the prompt and pass it with --prompt)`);
  const strict = v.strict ?? false;
  const from = v.from === undefined ? undefined : { path: v.from, parameters: await readFrom(v.from) };
  const f = from?.parameters;

  const prompt = v.prompt ?? f?.prompt;
  if (prompt === undefined) throw new UsageError('generate needs --prompt (or --from an image with parameters)');
  if (v.model === undefined) {
    const made = f?.model ? ` (the image was made with ${f.model}${f.modelHash ? `, hash ${f.modelHash}` : ''})` : '';
    throw new UsageError(`generate needs --model <file|folder|demo>${made}`);
  }
  const modelPath = v.model === 'demo' ? demoModel : v.model;
  if (!existsSync(modelPath)) {
    throw new StableDiffusionError('ERR_FILE_NOT_FOUND', v.model === 'demo' ? `The demo model ${demoModel} is missing from this install` : `--model ${modelPath} does not exist`, { path: modelPath });
  }

  // Every list is read before anything slow happens, so a typo fails at once.
  const values = jobValues(v, f);
  const width = v.width !== undefined ? side(v.width, 'width', strict) : f?.width;
  const height = v.height !== undefined ? side(v.height, 'height', strict) : f?.height;
  // --from an image of a batch regenerates that batch and keeps the image at its position.
  const keep = v['batch-size'] === undefined && f?.batchSize !== undefined && f.batchSize > 1 ? f.batchPosition ?? 0 : undefined;
  const batchSize = v['batch-size'] !== undefined ? integer(v['batch-size'], 'batch-size', 1, 32) : f?.batchSize ?? 1;
  if (keep !== undefined && keep >= batchSize) throw new UsageError(`${v.from}: "Batch pos" ${keep} is outside "Batch size" ${batchSize}`);
  const quality = v.quality === undefined ? undefined : integer(v.quality, 'quality', 1, 100);
  const threads = v.threads === undefined ? undefined : integer(v.threads, 'threads', 1, 1024);
  const pipeline = pipelineOf(v, f);

  const isGrid = gridAxes(values).length > 0;
  if (isGrid && batchSize > 1) throw new UsageError('--batch-size above 1 cannot be combined with comma-separated values (a grid)');
  const output = v.output ?? (isGrid ? `sdnode-grid-${values.seed[0]}.png` : `sdnode-${values.seed[0]}.png`);
  const format: ImageFormat | undefined = formatForPath(output);
  if (format === undefined) throw new UsageError(`-o must end in .png, .jpg, .jpeg or .webp (got "${output}")`);
  if (!existsSync(dirname(output) || '.')) throw new StableDiffusionError('ERR_FILE_WRITE', `Cannot write ${output}: its folder does not exist`, { path: output });
  const loadOptions = loadOptionsOf(v, modelPath, threads);
  const loras = (v.lora ?? []).map(loraFlag);
  const hires = hiresFlags(v, pipeline, strict, f);

  return {
    from,
    prompt,
    negativePrompt: v['negative-prompt'] ?? f?.negativePrompt ?? '',
    model: v.model,
    modelPath,
    values,
    isGrid,
    width,
    height,
    batchSize,
    keep,
    pipeline,
    output,
    format,
    quality,
    loadOptions,
    loras,
    hires,
    ...(await readInputs(v, width, height, strict)),
    json: v.json ?? false,
    quiet: v.quiet ?? false,
  };
}

async function readFrom(path: string): Promise<ParsedParameters> {
  const text = await readImageParameters(path);
  if (text === undefined) throw new StableDiffusionError('ERR_FILE_READ', `${path} has no generation parameters (no PNG "parameters" chunk or EXIF UserComment)`, { path });
  return parseParameters(text);
}

/** The values of each part of a job: the flag's list, else --from's value, else the default. */
function jobValues(v: Values, from: ParsedParameters | undefined): JobValues {
  const steps = v.steps !== undefined ? list(v.steps, 'steps').map((s) => integer(s, 'steps', 1, 1000)) : [from?.steps ?? 50];
  const cfg = v['cfg-scale'] !== undefined ? list(v['cfg-scale'], 'cfg-scale').map((s) => decimal(s, 'cfg-scale', 0, 100)) : [from?.guidanceScale ?? 7.5];
  const samplers = v.sampler !== undefined ? list(v.sampler, 'sampler').map(sampler) : [from?.sampler ?? 'pndm'];
  if (from?.sampler !== undefined && v.sampler === undefined && canonicalSchedulerName(from.sampler) === undefined) {
    throw new UsageError(`${v.from} was made with the sampler "${from.sampler}", which this package does not have; choose one with --sampler`);
  }
  const seeds = v.seed !== undefined ? list(v.seed, 'seed').map(seed) : [from?.seed ?? randomSeed()];
  const clipSkips = v['clip-skip'] !== undefined ? list(v['clip-skip'], 'clip-skip').map((s) => integer(s, 'clip-skip', 1, 1000)) : [from?.clipSkip];
  // A hires image's denoising strength is its second pass's (hiresFlags), not img2img's.
  const fromStrength = from !== undefined && madeWithHires(from) ? undefined : from?.strength;
  const strengths = v.strength !== undefined ? list(v.strength, 'strength').map((s) => decimal(s, 'strength', 0, 1)) : [fromStrength];
  return { steps, guidanceScale: cfg, sampler: samplers, seed: seeds, clipSkip: clipSkips, strength: strengths };
}

/** txt2img, or what the input flags ask for. */
function pipelineOf(v: Values, from: ParsedParameters | undefined): PipelineName {
  let pipeline: PipelineName = 'txt2img';
  if (v.mask !== undefined) pipeline = 'inpaint';
  else if (v['depth-map'] !== undefined) pipeline = 'depth2img';
  else if (v['init-image'] !== undefined) pipeline = 'img2img';
  if (v.mask !== undefined && v['depth-map'] !== undefined) throw new UsageError('--mask and --depth-map cannot be combined (inpaint or depth2img, not both)');
  if (pipeline !== 'txt2img' && v['init-image'] === undefined) throw new UsageError(`--${pipeline === 'inpaint' ? 'mask' : 'depth-map'} needs --init-image`);
  if (pipeline === 'txt2img' && v.strength !== undefined) throw new UsageError('--strength needs --init-image');
  if (pipeline === 'txt2img' && from?.strength !== undefined && !madeWithHires(from)) {
    throw new UsageError(`${v.from} was made from an input image (Denoising strength ${from.strength}): pass --init-image (and --mask or --depth-map as it was made)`);
  }
  return pipeline;
}

function loadOptionsOf(v: Values, modelPath: string, threads: number | undefined): LoadOptions {
  const devices: NonNullable<LoadOptions['devices']> = {};
  for (const [flag, network] of [['text-encoder-device', 'textEncoder'], ['unet-device', 'unet'], ['vae-device', 'vae']] as const) {
    if (v[flag] !== undefined) devices[network] = v[flag];
  }
  return {
    model: modelPath,
    ...(Object.keys(devices).length > 0 && { devices }),
    ...(v['weight-type'] !== undefined && { weightType: oneOf(v['weight-type'], 'weight-type', WEIGHT_TYPES)! }),
    ...(v.backend !== undefined && { backend: oneOf(v.backend, 'backend', BACKENDS)! }),
    ...(v['prediction-type'] !== undefined && { predictionType: oneOf(v['prediction-type'], 'prediction-type', PREDICTION_TYPES)! }),
    ...(v.vae !== undefined && { vae: v.vae }),
    ...(v['tiny-vae'] !== undefined && { tinyVae: v['tiny-vae'] }),
    ...(v['safety-checker'] !== undefined && { safetyChecker: safetyCheckerFlag(v['safety-checker']) }),
    ...(threads !== undefined && { threads }),
    ...(v['flash-attention'] && { flashAttention: true }),
    ...(v['vae-tiling'] && { vaeTiling: true }),
    ...(v.offload && { offload: true }),
    ...(v['lora-dir'] !== undefined && { loraDirs: v['lora-dir'] }),
    ...(v['embedding-dir'] !== undefined && { embeddingDirs: v['embedding-dir'] }),
  };
}

function madeWithHires(from: ParsedParameters): boolean {
  return from.fields['Hires upscale'] !== undefined || from.fields['Hires resize'] !== undefined;
}

// A1111's hires upscaler names → ours; other names are Real-ESRGAN models, given again as files.
const FROM_UPSCALERS: Record<string, HiresUpscalerName> = {
  ...Object.fromEntries(Object.entries(A1111_HIRES_UPSCALER_NAMES).map(([ours, theirs]) => [theirs, ours as HiresUpscalerName])),
  None: 'lanczos',
};

/** --from a hires image: its Hires fields, as the --hires-* flags would give them. */
function hiresFrom(from: ParsedParameters): NonNullable<GenerateRequest['hires']> {
  const f = from.fields;
  const resize = f['Hires resize'] === undefined ? undefined : /^(\d+)x(\d+)$/.exec(f['Hires resize']);
  if (f['Hires resize'] !== undefined && resize === null) throw new UsageError(`"Hires resize: ${f['Hires resize']}" in the image's parameters is not WIDTHxHEIGHT`);
  const upscaler = f['Hires upscaler'];
  return {
    ...(resize ? { ...(resize[1] !== '0' && { width: Number(resize[1]) }), ...(resize[2] !== '0' && { height: Number(resize[2]) }) } : { scale: decimal(f['Hires upscale']!, 'Hires upscale', 1, 8) }),
    ...(f['Hires steps'] !== undefined && { steps: integer(f['Hires steps'], 'Hires steps', 1, 1000) }),
    ...(from.strength !== undefined && { denoisingStrength: from.strength }),
    ...(upscaler !== undefined && { upscaler: FROM_UPSCALERS[upscaler] ?? upscaler }),
  };
}

/**
 * The --hires-* flags (any of them turns the hires fix on), over --from's Hires fields; an
 * upscaler that is not a mode name is a Real-ESRGAN file.
 */
function hiresFlags(v: Values, pipeline: PipelineName, strict: boolean, from: ParsedParameters | undefined): GenerateRequest['hires'] {
  const flags = ['hires-scale', 'hires-width', 'hires-height', 'hires-upscaler', 'hires-steps', 'hires-denoise'] as const;
  const given = flags.filter((flag) => v[flag] !== undefined);
  const base = from !== undefined && madeWithHires(from) && pipeline === 'txt2img' ? hiresFrom(from) : undefined;
  if (given.length === 0 && base === undefined) return undefined;
  if (given.length > 0 && pipeline !== 'txt2img') throw new UsageError(`--${given[0]} is for text to image; it cannot be combined with --init-image`);
  const upscaler = v['hires-upscaler'] ?? base?.upscaler;
  if (upscaler !== undefined && !(HIRES_UPSCALERS as readonly string[]).includes(upscaler) && !existsSync(upscaler)) {
    const flag = v['hires-upscaler'] === undefined ? `${v.from} was made with the hires upscaler "${upscaler}"; pass its file with --hires-upscaler` : undefined;
    throw new UsageError(flag ?? `--hires-upscaler must be one of ${HIRES_UPSCALERS.join(', ')} or a Real-ESRGAN file (got "${upscaler}")`);
  }
  if (v['hires-scale'] !== undefined && (v['hires-width'] !== undefined || v['hires-height'] !== undefined)) {
    throw new UsageError('--hires-scale cannot be combined with --hires-width or --hires-height');
  }
  // A size flag replaces --from's scale, and the scale flag its size.
  const sized = v['hires-width'] !== undefined || v['hires-height'] !== undefined;
  const { scale, width, height, ...rest } = base ?? {};
  return {
    ...rest,
    ...(!sized && v['hires-scale'] === undefined && { ...(scale !== undefined && { scale }), ...(width !== undefined && { width }), ...(height !== undefined && { height }) }),
    ...(v['hires-scale'] !== undefined && { scale: decimal(v['hires-scale'], 'hires-scale', 1, 8) }),
    ...(v['hires-width'] !== undefined && { width: side(v['hires-width'], 'hires-width', strict) }),
    ...(v['hires-height'] !== undefined && { height: side(v['hires-height'], 'hires-height', strict) }),
    ...(upscaler !== undefined && { upscaler }),
    ...(v['hires-steps'] !== undefined && { steps: integer(v['hires-steps'], 'hires-steps', 1, 1000) }),
    ...(v['hires-denoise'] !== undefined && { denoisingStrength: decimal(v['hires-denoise'], 'hires-denoise', 0, 1) }),
  };
}

/**
 * `--lora NAME[:W[:UNET_W]]`: a name in --lora-dir, or a file (a path with a LoRA extension, or
 * one that exists); trailing numbers are the strengths, as in `<lora:NAME:W>`.
 */
function loraFlag(text: string): LoraSpec {
  const parts = text.split(':');
  const numbers: number[] = [];
  while (parts.length > 1 && numbers.length < 2 && /^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i.test(parts[parts.length - 1]!)) {
    numbers.unshift(Number(parts.pop()));
  }
  const target = parts.join(':').trim();
  if (target === '') throw new UsageError(`--lora needs a name or a file (got "${text}")`);
  if (numbers.some((n) => !Number.isFinite(n))) throw new UsageError(`--lora weights must be finite numbers (got "${text}")`);
  if (parts.length > 1 && !existsSync(target)) throw new UsageError(`--lora takes NAME[:W[:UNET_W]] with numbers for W (got "${text}")`);
  const isFile = LORA_EXTENSIONS.some((ext) => target.toLowerCase().endsWith(ext)) || target.includes('/') || existsSync(target);
  const spec: LoraSpec = isFile ? { path: target } : { name: target };
  if (numbers.length === 1) spec.weight = numbers[0]!;
  if (numbers.length === 2) {
    spec.textEncoderWeight = numbers[0]!;
    spec.unetWeight = numbers[1]!;
  }
  return spec;
}

/** Input images are read (and their errors reported) before the model loads. */
async function readInputs(
  v: Values, width: number | undefined, height: number | undefined, strict: boolean,
): Promise<Pick<GenerateRequest, 'image' | 'mask' | 'depthMap'>> {
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
  // "estimate": no map, the model's depth estimator makes it.
  if (v['depth-map'] !== undefined && v['depth-map'] !== 'estimate') depthMap = await readDepthMap(v['depth-map'], '--depth-map');
  return { image, mask, depthMap };
}
