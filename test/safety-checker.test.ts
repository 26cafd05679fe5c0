// The safety checker against diffusers' StableDiffusionSafetyChecker on a tiny random CLIP vision
// tower, in both layouts (transformers 4's names in model.safetensors, transformers 5's in
// pytorch_model.bin); our CLIPImageProcessor (PIL's bicubic) against transformers' to the byte;
// txt2img with the checker against diffusers' has_nsfw_concept; the load option's defaults; bad
// input. Goldens: tools/goldens/make_safety_checker_goldens.py → test/fixtures/goldens/safety-checker/.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import sharp from 'sharp';

import { StableDiffusion, Tensor, type SafetyCheckResult } from '../lib/index.js';
import { clipNormalize, clipResizeAndCrop } from '../lib/clip-image-processor.js';
import { goldensDir, relativeError, tinyDir } from './helpers/goldens.js';

interface Verdict {
  imageEmbeds: number[]; conceptCosine: number[]; specialCosine: number[]; conceptScores: number[]; specialScores: number[];
  nsfw: boolean;
}
interface Goldens {
  adjustmentImage: number;
  adjustedConcept: number;
  images: Array<Verdict & { source: string; clip: string; width: number; height: number }>;
  txt2img: {
    fixture: string; prompt: string; negativePrompt: string; width: number; height: number; steps: number; scheduler: string;
    guidanceScale: number; seed: number; batchSize: number; nsfwContentDetected: boolean[]; images: Verdict[];
  };
}

const dir = join(goldensDir, 'safety-checker');
const goldens = JSON.parse(readFileSync(join(dir, 'goldens.json'), 'utf8')) as Goldens;
const CHECKER = join(tinyDir, 'safety-checker', 'safety_checker');
const BIN = join(tinyDir, 'safety-checker-bin');
const SD1 = join(tinyDir, 'sd1-diffusers');
const SIZE = 224;
// f32: cosines and embeddings within 1e-4 (max |Δ| / max |golden| for the embeddings, |Δ| for
// the cosines, which lie in [-1, 1]). The generator keeps every unrounded score that matters at
// least 1.5e-3 from 0, so the flags must be equal.
const BOUND = 1e-4;

async function rgb(file: string): Promise<{ data: Uint8Array; width: number; height: number }> {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height };
}

/** A safetensors file of zero-filled F16 tensors with these shapes. */
function writeSafetensors(path: string, tensors: Record<string, number[]>): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of Object.entries(tensors)) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 2;
    header[name] = { dtype: 'F16', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header));
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([size, json, Buffer.alloc(offset)]));
}

function maxCosineError(ours: readonly number[], golden: readonly number[]): number {
  assert.equal(ours.length, golden.length);
  return Math.max(...ours.map((v, i) => Math.abs(v - golden[i]!)));
}

function assertVerdict(ours: SafetyCheckResult, golden: Verdict, what: string): void {
  const embeds = relativeError(ours.imageEmbeds, new Float32Array(golden.imageEmbeds));
  assert.ok(embeds <= BOUND, `${what}: image embeds off by ${embeds}`);
  for (const key of ['conceptCosine', 'specialCosine'] as const) {
    const e = maxCosineError(ours[key], golden[key]);
    assert.ok(e <= BOUND, `${what}: ${key} off by ${e}`);
  }
  // diffusers' rounded scores: the same, or one rounding step apart where a score lies within the
  // cosines' error of a rounding boundary (a wrong threshold or adjustment is 0.01 off or more).
  for (const key of ['conceptScores', 'specialScores'] as const) {
    const steps = ours[key].map((v, i) => Math.round(Math.abs(v - golden[key][i]!) * 1000));
    assert.ok(steps.every((d) => d <= 1), `${what}: ${key} ${ours[key].join(', ')} against ${golden[key].join(', ')}`);
    assert.ok(steps.filter((d) => d === 1).length <= 1, `${what}: ${key} differ in more than one place`);
  }
  assert.equal(ours.nsfw, golden.nsfw, `${what}: flag`);
}

describe('safety checker against diffusers StableDiffusionSafetyChecker', () => {
  let sd: StableDiffusion;
  before(async () => {
    sd = await StableDiffusion.load({ model: SD1, safetyChecker: CHECKER, backend: 'cpu', threads: 2 });
  });
  after(async () => {
    await sd?.dispose();
  });

  test('the goldens cover both sides and the special-care adjustment', () => {
    const flags = [...goldens.images.map((i) => i.nsfw), ...goldens.txt2img.nsfwContentDetected];
    assert.ok(flags.includes(true) && flags.includes(false));
    assert.ok(new Set(goldens.txt2img.nsfwContentDetected).size === 2);
    const all = [...goldens.images, ...goldens.txt2img.images];
    const adjusted = all[goldens.adjustmentImage]!;
    assert.ok(adjusted.nsfw && adjusted.specialScores[0]! > 0);
    assert.ok(adjusted.conceptScores[goldens.adjustedConcept]! > 0);
  });

  test('info comes from the config and the weights', () => {
    const info = sd.safetyChecker!.info;
    assert.deepEqual(
      { imageSize: info.imageSize, patchSize: info.patchSize, hidden: info.hidden, layers: info.layers, heads: info.heads,
        projectionDim: info.projectionDim, concepts: info.concepts, specialConcepts: info.specialConcepts },
      { imageSize: 224, patchSize: 14, hidden: 32, layers: 2, heads: 4, projectionDim: 16, concepts: 17, specialConcepts: 3 },
    );
    assert.deepEqual(info.files, [join(CHECKER, 'config.json'), join(CHECKER, 'model.safetensors')]);
    assert.equal(info.device, 'CPU');
  });

  test("resize and crop equal CLIPImageProcessor's (PIL bicubic) to the byte", async () => {
    for (const image of goldens.images) {
      const source = await rgb(join(dir, image.source));
      const expected = await rgb(join(dir, image.clip));
      assert.deepEqual([source.width, source.height], [image.width, image.height]);
      const ours = clipResizeAndCrop(source.data, source.width, source.height, SIZE);
      let worst = 0;
      for (let i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(ours[i]! - expected.data[i]!));
      assert.equal(worst, 0, `${image.source} (${image.width}×${image.height}): max byte difference ${worst}`);
    }
  });

  test(`the network alone on CLIPImageProcessor's crops: cosines and embeddings within ${BOUND}, scores and flags equal`, async () => {
    const checker = sd.safetyChecker!;
    for (const image of goldens.images) {
      const crop = await rgb(join(dir, image.clip));
      const r = await checker.checkPixelValues(clipNormalize(crop.data, SIZE));
      const verdict: SafetyCheckResult = {
        nsfw: r.nsfw[0]!, conceptScores: [...r.conceptScores.data], specialScores: [...r.specialScores.data],
        conceptCosine: [...r.conceptCosine.data], specialCosine: [...r.specialCosine.data], imageEmbeds: r.imageEmbeds.data,
      };
      assertVerdict(verdict, image, image.source);
    }
  });

  test('sd.checkSafety on the source files (ours preprocessing, then the network)', async () => {
    const results = await sd.checkSafety(goldens.images.map((i) => join(dir, i.source)));
    assert.equal(results.length, goldens.images.length);
    results.forEach((r, i) => assertVerdict(r, goldens.images[i]!, goldens.images[i]!.source));
  });

  test("txt2img with the checker: diffusers' flags, flagged images black", async () => {
    const g = goldens.txt2img;
    const result = await sd.txt2img({
      prompt: g.prompt, negativePrompt: g.negativePrompt, width: g.width, height: g.height, steps: g.steps,
      scheduler: g.scheduler, guidanceScale: g.guidanceScale, seed: g.seed, batchSize: g.batchSize,
    });
    assert.deepEqual(result.nsfwContentDetected, g.nsfwContentDetected);
    const images = result.images!;
    const per = images.size / g.batchSize;
    g.nsfwContentDetected.forEach((flagged, i) => {
      const pixels = images.data.subarray(i * per, (i + 1) * per);
      if (flagged) assert.ok(pixels.every((v) => v === 0), `image ${i} should be black`);
      else assert.ok(pixels.some((v) => v !== 0), `image ${i} should not be blank`);
    });
    // The latents are the sampler's, untouched by the check.
    assert.ok(result.latents.data.some((v) => v !== 0));
  });

  test('outputType latent runs no check (as diffusers)', async () => {
    const result = await sd.txt2img({ prompt: 'a', width: 64, height: 64, steps: 1, seed: 1, outputType: 'latent' });
    assert.equal(result.nsfwContentDetected, undefined);
  });
});

describe('safety checker layouts and defaults', () => {
  const work = mkdtempSync(join(tmpdir(), 'sdnode-safety-'));
  const loaded: StableDiffusion[] = [];
  after(async () => {
    for (const sd of loaded) await sd.dispose();
    rmSync(work, { recursive: true, force: true });
  });
  const load = async (options: Record<string, unknown>): Promise<StableDiffusion> => {
    const sd = await StableDiffusion.load({ model: SD1, backend: 'cpu', threads: 2, ...options });
    loaded.push(sd);
    return sd;
  };
  const pixels = async (): Promise<Tensor> => clipNormalize((await rgb(join(dir, goldens.images[0]!.clip))).data, SIZE);

  test('transformers 5 names in pytorch_model.bin, the safetensors file alone, the .bin alone: the same results', async () => {
    const reference = await (await load({ safetyChecker: CHECKER })).safetyChecker!.checkPixelValues(await pixels());
    for (const path of [BIN, join(BIN, 'pytorch_model.bin'), join(CHECKER, 'model.safetensors')]) {
      const sd = await load({ safetyChecker: path });
      const r = await sd.safetyChecker!.checkPixelValues(await pixels());
      assert.ok(relativeError(r.imageEmbeds, reference.imageEmbeds) <= 1e-6, path);
      assert.deepEqual(r.nsfw, reference.nsfw, path);
    }
  });

  test('default: on for a diffusers folder with safety_checker/, off without one and for single files; false turns it off', async () => {
    const folder = join(work, 'with-checker');
    mkdirSync(folder);
    for (const part of ['model_index.json', 'scheduler', 'text_encoder', 'tokenizer', 'unet', 'vae']) {
      symlinkSync(join(SD1, part), join(folder, part));
    }
    symlinkSync(CHECKER, join(folder, 'safety_checker'));
    assert.notEqual((await load({ model: folder })).safetyChecker, null);
    assert.equal((await load({ model: folder, safetyChecker: false })).safetyChecker, null);
    assert.notEqual((await load({ model: folder, safetyChecker: true })).safetyChecker, null);
    assert.equal((await load({})).safetyChecker, null);
    assert.equal((await load({ model: join(tinyDir, 'sd1-ldm.safetensors') })).safetyChecker, null);
    const withoutChecker = await load({});
    await assert.rejects(withoutChecker.checkSafety(join(dir, goldens.images[0]!.source)), { code: 'ERR_INVALID_ARG_TYPE' });
  });

  test('bad input: clear errors with codes, the model stays usable', async () => {
    await assert.rejects(load({ safetyChecker: true }), { code: 'ERR_FILE_NOT_FOUND', message: /safety_checker/ });
    await assert.rejects(load({ safetyChecker: join(work, 'missing.safetensors') }), { code: 'ERR_FILE_NOT_FOUND' });
    await assert.rejects(load({ safetyChecker: 3 }), { code: 'ERR_INVALID_ARG_TYPE' });
    await assert.rejects(load({ safetyChecker: join(SD1, 'unet', 'diffusion_pytorch_model.safetensors') }), {
      code: 'ERR_SAFETY_CHECKER_FORMAT', message: /Not a safety checker/,
    });
    await assert.rejects(load({ safetyChecker: SD1 }), { code: 'ERR_SAFETY_CHECKER_FORMAT', message: /neither model.safetensors/ });
    // A config that disagrees with the weights.
    const bad = join(work, 'bad-config');
    mkdirSync(bad);
    copyFileSync(join(CHECKER, 'model.safetensors'), join(bad, 'model.safetensors'));
    const config = JSON.parse(readFileSync(join(CHECKER, 'config.json'), 'utf8')) as { vision_config: Record<string, unknown> };
    config.vision_config.num_attention_heads = 5;
    writeFileSync(join(bad, 'config.json'), JSON.stringify(config));
    await assert.rejects(load({ safetyChecker: bad }), { code: 'ERR_SAFETY_CHECKER_FORMAT', message: /heads/ });
    config.vision_config.num_attention_heads = 4;
    config.vision_config.num_hidden_layers = 3;
    writeFileSync(join(bad, 'config.json'), JSON.stringify(config));
    await assert.rejects(load({ safetyChecker: bad }), { code: 'ERR_SAFETY_CHECKER_FORMAT', message: /num_hidden_layers/ });
    writeFileSync(join(bad, 'config.json'), '{ not json');
    await assert.rejects(load({ safetyChecker: bad }), { code: 'ERR_SAFETY_CHECKER_FORMAT', message: /invalid JSON/ });
    // A tower whose attention would need gigabytes: refused before anything is loaded.
    const huge = join(work, 'huge.safetensors');
    writeSafetensors(huge, {
      'vision_model.embeddings.class_embedding': [32], 'vision_model.embeddings.patch_embedding.weight': [32, 3, 1, 1],
      'vision_model.embeddings.position_embedding.weight': [65 * 65 + 1, 32],
    });
    await assert.rejects(load({ safetyChecker: huge }), { code: 'ERR_SAFETY_CHECKER_FORMAT', message: /more than 64×64 patches/ });

    const sd = await load({ safetyChecker: CHECKER });
    const checker = sd.safetyChecker!;
    await assert.rejects(checker.checkPixelValues(new Tensor([1, 3, 64, 64])), { name: 'RangeError', message: /\[batch, 3, 224, 224\]/ });
    await assert.rejects(checker.checkPixelValues(new Tensor([65, 3, 224, 224])), { name: 'RangeError', message: /batch of 1 to 64/ });
    await assert.rejects(sd.checkSafety([]), { code: 'ERR_OUT_OF_RANGE' });
    const [ok] = await sd.checkSafety(join(dir, goldens.images[0]!.source));
    assert.equal(ok!.nsfw, goldens.images[0]!.nsfw);
  });
});
