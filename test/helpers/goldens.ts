// Shared readers for the committed goldens (test/fixtures/goldens/*, written by tools/goldens/)
// and the error measure the golden tests use, so that a suite running the same goldens on
// another device (test/vulkan.test.ts) does not carry its own copy of the file formats.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';

import { Tensor } from '../../lib/index.js';
import { packageRoot } from '../../lib/native.js';

export const tinyDir = join(packageRoot, 'test', 'fixtures', 'tiny');
export const goldensDir = join(packageRoot, 'test', 'fixtures', 'goldens');

function readFloat32(file: string): Float32Array {
  const bytes = readFileSync(file);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** max |ours − golden| / max |golden|: the measure every golden test bounds. */
export function relativeError(ours: Tensor | Float32Array, golden: Tensor | Float32Array): number {
  if (ours instanceof Tensor && golden instanceof Tensor) assert.deepEqual([...ours.shape], [...golden.shape]);
  const a = ours instanceof Tensor ? ours.data : ours;
  const b = golden instanceof Tensor ? golden.data : golden;
  assert.equal(a.length, b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}

/** max |ours − golden| */
export function maxAbsDiff(ours: Tensor, golden: Tensor): number {
  assert.deepEqual([...ours.shape], [...golden.shape]);
  let diff = 0;
  for (let i = 0; i < golden.size; i++) diff = Math.max(diff, Math.abs(ours.data[i]! - golden.data[i]!));
  return diff;
}

/**
 * The model folder for a golden's `fixture`: a tiny fixture as is, or `sd1-unet-t64` (a UNet
 * only, with 64 channels at level 0 so that the timestep shows in its output) put into a copy
 * of sd1-diffusers under `scratch`.
 */
export function fixturePath(fixture: string, scratch: string): string {
  if (fixture !== 'sd1-unet-t64') return join(tinyDir, fixture);
  const dir = join(scratch, fixture);
  if (existsSync(join(dir, 'unet', 'diffusion_pytorch_model.safetensors'))) return dir;
  mkdirSync(join(dir, 'unet'), { recursive: true });
  for (const part of ['text_encoder', 'vae', 'tokenizer', 'scheduler']) {
    if (!existsSync(join(dir, part))) symlinkSync(join(tinyDir, 'sd1-diffusers', part), join(dir, part), 'junction');
  }
  copyFileSync(join(tinyDir, 'sd1-diffusers', 'model_index.json'), join(dir, 'model_index.json'));
  const unet = join(goldensDir, 'unet', fixture);
  for (const f of ['config.json', 'diffusion_pytorch_model.safetensors']) copyFileSync(join(unet, f), join(dir, 'unet', f));
  return dir;
}

// --- text encoder: goldens/text-encoder/goldens.json + one float32 blob -------------------

export interface TextEncoderCase {
  name: string;
  shape: number[];
  offset: number;
  fixture: string;
  ids?: number[][];
  clipSkip?: number;
  prompt?: string;
  negativePrompt?: string;
  diffusersClipSkip?: number | null;
}

export function textEncoderGoldens(): { cases: TextEncoderCase[]; data(c: TextEncoderCase): Float32Array } {
  const dir = join(goldensDir, 'text-encoder');
  const index = JSON.parse(readFileSync(join(dir, 'goldens.json'), 'utf8')) as { cases: TextEncoderCase[] };
  const all = readFloat32(join(dir, 'goldens.bin'));
  return { cases: index.cases, data: (c) => all.subarray(c.offset, c.offset + sizeOf(c.shape)) };
}

// --- UNet: goldens/unet/index.json + one float32 file per tensor ---------------------------

export interface UNetGoldenTensor {
  file: string;
  shape: number[];
}
export interface UNetCase {
  name: string;
  fixture: string;
  sample: UNetGoldenTensor;
  context: UNetGoldenTensor;
  outputs: Array<UNetGoldenTensor & { timestep: number | number[]; maxAbs: number }>;
}

export function unetGoldens(): { cases: UNetCase[]; tensor(t: UNetGoldenTensor): Tensor } {
  const dir = join(goldensDir, 'unet');
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { cases: UNetCase[] };
  return { cases: index.cases, tensor: (t) => new Tensor(t.shape, readFloat32(join(dir, t.file))) };
}

// --- VAE: goldens/vae/index.json (and goldens/vae-tiling/, whose cases add tileSize and name
// no model) + float32 files holding input and output slices -----------------------------------

export interface VaeSlice {
  offset: number;
  shape: number[];
}
export interface VaeCase {
  model: string;
  op: 'decode' | 'encode';
  seed: number;
  file: string;
  input: VaeSlice;
  output: VaeSlice;
}

export interface VaeTilingCase extends Omit<VaeCase, 'model'> {
  tileSize: number;
}

function readVaeGoldens<C extends { file: string; input: VaeSlice; output: VaeSlice }>(folder: string) {
  const dir = join(goldensDir, folder);
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { cases: C[] };
  const files = new Map<string, Float32Array>();
  const slice = (file: string, s: VaeSlice): Tensor => {
    let all = files.get(file);
    if (!all) files.set(file, (all = readFloat32(join(dir, file))));
    return new Tensor(s.shape, all.slice(s.offset, s.offset + sizeOf(s.shape)));
  };
  return { cases: index.cases, input: (c: C) => slice(c.file, c.input), output: (c: C) => slice(c.file, c.output) };
}

export const vaeGoldens = () => readVaeGoldens<VaeCase>('vae');
export const vaeTilingGoldens = () => readVaeGoldens<VaeTilingCase>('vae-tiling');
/** A VAE alone with GroupNorm over 4 groups (test/fixtures/tiny/vae-groups4/vae): not a loadable model by itself. */
export const vaeGroupsGoldens = () => readVaeGoldens<VaeCase>('vae-groups');

// --- txt2img: goldens/pipeline/goldens.json + one float32 blob ------------------------------

export interface PipelineTensor {
  shape: number[];
  offset: number;
}
export interface PipelineCase {
  name: string;
  fixture: string;
  scheduler: string;
  guidanceScale: number;
  batchSize: number;
  eta: number;
  latents: PipelineTensor;
  image: PipelineTensor;
  injected?: PipelineTensor;
}
export interface PipelineGoldens {
  prompt: string;
  negativePrompt: string;
  width: number;
  height: number;
  steps: number;
  seed: number;
  cases: PipelineCase[];
}

/** A goldens folder of goldens.json and one float32 blob that its tensors index by offset. */
function blobGoldens<T>(folder: string): T & { tensor(t: PipelineTensor): Tensor } {
  const dir = join(goldensDir, folder);
  const index = JSON.parse(readFileSync(join(dir, 'goldens.json'), 'utf8')) as T;
  const all = readFloat32(join(dir, 'goldens.bin'));
  return { ...index, tensor: (t: PipelineTensor) => new Tensor(t.shape, all.slice(t.offset, t.offset + sizeOf(t.shape))) };
}

export const pipelineGoldens = () => blobGoldens<PipelineGoldens>('pipeline');

/** What every txt2img golden case shares: prompts, size, steps and seed. */
export function pipelineSettings(goldens: Omit<PipelineGoldens, 'cases'>) {
  const { prompt, negativePrompt, width, height, steps, seed } = goldens;
  return { prompt, negativePrompt, width, height, steps, seed };
}

/** One golden case's txt2img options: the shared settings and the case's own. */
export function pipelineCaseOptions(goldens: ReturnType<typeof pipelineGoldens>, c: PipelineCase) {
  return {
    ...pipelineSettings(goldens),
    scheduler: c.scheduler,
    guidanceScale: c.guidanceScale,
    batchSize: c.batchSize,
    ...(c.eta > 0 && { schedulerOptions: { eta: c.eta } }),
    ...(c.injected && { latents: goldens.tensor(c.injected) }),
  };
}

// --- hires fix: goldens/hires/goldens.json + one float32 blob -----------------------------

export interface HiresCase {
  name: string;
  fixture: string;
  scheduler: string;
  /** txt2img's `hires` with the upscaler as a torch mode name or a tiny ESRGAN fixture's. */
  hires: { scale?: number; width?: number; height?: number; upscaler: string; steps?: number };
  denoisingStrength: number;
  latents: PipelineTensor;
  image?: PipelineTensor;
}
export interface HiresGoldens extends Omit<PipelineGoldens, 'cases'> {
  guidanceScale: number;
  /** F.interpolate of each input in every mode, to each size (h, w). */
  interpolation: { input: PipelineTensor; outputs: { mode: string; size: [number, number]; output: PipelineTensor }[] }[];
  cases: HiresCase[];
}

export const hiresGoldens = () => blobGoldens<HiresGoldens>('hires');

// --- LoRA, LyCORIS, textual inversion: goldens/lora/goldens.json + one float32 blob ----------

export const loraFixturesDir = join(packageRoot, 'test', 'fixtures', 'lora');

export interface LoraCase {
  name: string;
  shape: number[];
  offset: number;
  fixture?: string;
  lora?: string;
  textEncoderWeight?: number;
  unetWeight?: number;
  changeFromBase?: number;
  prompt?: string;
  negativePrompt?: string;
  ids?: number[];
}

export interface LoraGoldens {
  prompt: string;
  negativePrompt: string;
  width: number;
  height: number;
  steps: number;
  guidanceScale: number;
  scheduler: string;
  seed: number;
  cases: LoraCase[];
}

/** The LoRA goldens (tools/goldens/make_lora_goldens.py): cases by name, each a Tensor. */
export function loraGoldens(): LoraGoldens & { tensor(name: string): Tensor; case(name: string): LoraCase } {
  const dir = join(goldensDir, 'lora');
  const index = JSON.parse(readFileSync(join(dir, 'goldens.json'), 'utf8')) as LoraGoldens;
  const data = readFloat32(join(dir, 'goldens.bin'));
  const find = (name: string): LoraCase => {
    const c = index.cases.find((x) => x.name === name);
    assert.ok(c, `no LoRA golden named ${name}`);
    return c;
  };
  return {
    ...index,
    case: find,
    tensor(name: string): Tensor {
      const c = find(name);
      return new Tensor(c.shape, data.slice(c.offset, c.offset + sizeOf(c.shape)));
    },
  };
}
