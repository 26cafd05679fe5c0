// The depth estimator (DPT-Hybrid) against transformers' DPTForDepthEstimation on tiny random
// weights, in both layouts (a diffusers folder's depth_estimator/ with transformers' names; the
// original single file with MiDaS's names under depth_model.*); our DPT feature extractor against
// transformers'; depth2img without a depth map against diffusers' StableDiffusionDepth2ImgPipeline
// end to end; bad input. Goldens: tools/goldens/make_depth_goldens.py → test/fixtures/goldens/depth/.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import sharp from 'sharp';

import { StableDiffusion, Tensor } from '../lib/index.js';
import { readDepthMap } from '../lib/image.js';
import { interpolate } from '../lib/interpolate.js';
import { native, packageRoot } from '../lib/native.js';
import { goldensDir, relativeError, tinyDir } from './helpers/goldens.js';

interface GoldenTensor { shape: number[]; offset: number }
interface Goldens {
  imageSize: number;
  network: { source: string; pixelValues: GoldenTensor; predictedDepth: GoldenTensor };
  depth2img: {
    image: string; prompt: string; negativePrompt: string; steps: number; strength: number; guidanceScale: number; seed: number;
    cases: Array<{ name: string; scheduler: string; batchSize: number; depthMap: GoldenTensor; latents: GoldenTensor }>;
  };
}

const dir = join(goldensDir, 'depth');
const goldens = JSON.parse(readFileSync(join(dir, 'goldens.json'), 'utf8')) as Goldens;
const bytes = readFileSync(join(dir, 'goldens.bin'));
const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
const golden = (t: GoldenTensor): Tensor => new Tensor(t.shape, all.slice(t.offset, t.offset + t.shape.reduce((a, b) => a * b, 1)));

const ESTIMATOR = join(tinyDir, 'depth-estimator');
const DIFFUSERS = join(tinyDir, 'sd2-depth-diffusers');
const LDM = join(tinyDir, 'sd2-depth-midas-ldm.safetensors');
const LDM_WITHOUT = join(tinyDir, 'sd2-depth-ldm.safetensors');
// One thread: the tiny networks gain nothing from more, and a busy machine makes ggml's threads wait on each other.
const cpu = { backend: 'cpu', weightType: 'f32', threads: 1 } as const;
// f32: the network within 1e-4 relative (max |Δ| / max |golden|); the end-to-end latents within 1e-3.
const NETWORK_BOUND = 1e-4;
const PIPELINE_BOUND = 1e-3;

/** A safetensors file of zero-filled F32 tensors with these shapes. */
function writeSafetensors(path: string, tensors: Record<string, number[]>): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of Object.entries(tensors)) {
    const size = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([length, json, Buffer.alloc(offset)]));
}

const scratch = mkdtempSync(join(tmpdir(), 'sdnode-depth-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('DPT-Hybrid equals transformers (f32)', () => {
  const layouts: Array<[string, string, string]> = [
    ['transformers names (depth_estimator/)', join(ESTIMATOR, 'depth_estimator'), 'transformers'],
    ['transformers names (a folder holding depth_estimator/)', ESTIMATOR, 'transformers'],
    ['MiDaS names under depth_model.* (the original single file)', LDM, 'midas'],
  ];
  for (const [what, path, layout] of layouts) {
    test(what, async () => {
      const handle = await native().loadDepthEstimator(path, cpu);
      try {
        const info = handle.info();
        assert.equal(info.layout, layout);
        assert.equal(info.imageSize, goldens.imageSize);
        assert.deepEqual([info.hidden, info.layers, info.heads, info.fusion], [128, 3, 2, 16]);
        const expected = golden(goldens.network.predictedDepth);
        const ours = Tensor.of(await handle.estimate(golden(goldens.network.pixelValues)));
        const error = relativeError(ours, expected);
        if (process.env.SDNODE_TEST_VERBOSE) console.log(`${what}: relative error ${error}`);
        assert.ok(error <= NETWORK_BOUND, `relative error ${error}`);
        // A batch of two gives each image its own map.
        const pixels = golden(goldens.network.pixelValues);
        const twice = new Tensor([2, ...pixels.shape.slice(1)], new Float32Array([...pixels.data, ...pixels.data]));
        const batch = Tensor.of(await handle.estimate(twice));
        assert.deepEqual(batch.shape, [2, goldens.imageSize, goldens.imageSize]);
        assert.ok(relativeError(batch.data.subarray(expected.size), expected.data) <= NETWORK_BOUND);
      } finally {
        handle.dispose();
      }
    });
  }
});

describe('sd.estimateDepth and depth2img without a depth map', () => {
  const models = new Map<string, StableDiffusion>();
  before(async () => {
    models.set('diffusers', await StableDiffusion.load({ model: DIFFUSERS, ...cpu }));
    models.set('ldm', await StableDiffusion.load({ model: LDM, ...cpu }));
    models.set('without', await StableDiffusion.load({ model: LDM_WITHOUT, ...cpu }));
    models.set('option', await StableDiffusion.load({ model: LDM_WITHOUT, depthEstimator: ESTIMATOR, ...cpu }));
  });
  after(async () => {
    for (const sd of models.values()) await sd.dispose();
  });

  test('estimateDepth preprocesses as the feature extractor does (PNG 96×80 → 64×64)', async () => {
    const expected = golden(goldens.network.predictedDepth);
    for (const name of ['diffusers', 'ldm', 'option']) {
      const depth = await models.get(name)!.estimateDepth(join(dir, goldens.network.source));
      assert.deepEqual(depth.shape, [1, goldens.imageSize, goldens.imageSize]);
      const error = relativeError(depth, expected);
      if (process.env.SDNODE_TEST_VERBOSE) console.log(`estimateDepth ${name}: relative error ${error}`);
      assert.ok(error <= NETWORK_BOUND, `${name}: relative error ${error}`);
    }
  });

  const d = goldens.depth2img;
  for (const c of d.cases) {
    test(`${c.name} equals diffusers' pipeline (diffusers folder and single file)`, async () => {
      for (const name of ['diffusers', 'ldm']) {
        const result = await models.get(name)!.depth2img({
          prompt: d.prompt, negativePrompt: d.negativePrompt, steps: d.steps, strength: d.strength, guidanceScale: d.guidanceScale,
          seed: d.seed, scheduler: c.scheduler, batchSize: c.batchSize, image: join(dir, d.image), outputType: 'latent',
        });
        const error = relativeError(result.latents, golden(c.latents));
        if (process.env.SDNODE_TEST_VERBOSE) console.log(`${c.name} ${name}: relative error ${error}`);
        assert.ok(error <= PIPELINE_BOUND, `${name}: relative error ${error}`);
      }
    });
  }

  test('a given depth map wins over the estimator', async () => {
    const c = d.cases[0]!;
    const options = {
      prompt: d.prompt, negativePrompt: d.negativePrompt, steps: d.steps, strength: d.strength, guidanceScale: d.guidanceScale,
      seed: d.seed, scheduler: c.scheduler, image: join(dir, d.image), outputType: 'latent',
    } as const;
    // The pipeline's own (normalised) map given back: the same result; a different map: another.
    const given = await models.get('ldm')!.depth2img({ ...options, depthMap: golden(c.depthMap) });
    assert.ok(relativeError(given.latents, golden(c.latents)) <= PIPELINE_BOUND);
    const flipped = golden(c.depthMap);
    flipped.data.reverse();
    const other = await models.get('ldm')!.depth2img({ ...options, depthMap: flipped });
    assert.ok(relativeError(other.latents, golden(c.latents)) > 1e-2);
  });

  test('bad input: clear errors with codes, the model stays usable', async () => {
    const without = models.get('without')!;
    const d0 = d.cases[0]!;
    const ok = { prompt: d.prompt, steps: 2, outputType: 'latent', image: join(dir, d.image) } as const;
    const noEstimator = (e: unknown) => (e as { code?: string }).code === 'ERR_NO_DEPTH_ESTIMATOR' && /depthMap/.test((e as Error).message);
    await assert.rejects(without.depth2img(ok), noEstimator, 'a depth model without estimator weights');
    await assert.rejects(without.estimateDepth(join(dir, d.image)), noEstimator);
    // …and still runs with a map.
    const withMap = await without.depth2img({ ...ok, depthMap: golden(d0.depthMap) });
    assert.deepEqual(withMap.latents.shape, [1, 4, 16, 16]);

    const sd1 = await StableDiffusion.load({ model: join(tinyDir, 'sd1-diffusers'), ...cpu });
    try {
      await assert.rejects(sd1.estimateDepth(join(dir, d.image)), (e: unknown) => (e as { code?: string }).code === 'ERR_NO_DEPTH_ESTIMATOR');
    } finally {
      await sd1.dispose();
    }

    // A broken estimator given at load: the load fails with the format code.
    const broken = join(scratch, 'broken');
    cpSync(join(ESTIMATOR, 'depth_estimator'), broken, { recursive: true });
    const config = JSON.parse(readFileSync(join(broken, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(broken, 'config.json'), JSON.stringify({ ...config, hidden_size: 64 }));
    const format = (e: unknown) => (e as { code?: string }).code === 'ERR_DEPTH_ESTIMATOR_FORMAT';
    await assert.rejects(StableDiffusion.load({ model: LDM_WITHOUT, depthEstimator: broken, ...cpu }), format);
    writeFileSync(join(broken, 'config.json'), JSON.stringify({ ...config, is_hybrid: false }));
    await assert.rejects(native().loadDepthEstimator(broken, { backend: 'cpu', threads: 1 }), format);
    // DPT names with the wrong shapes: checked before anything is built.
    const partial = join(scratch, 'partial.safetensors');
    writeSafetensors(partial, { 'dpt.embeddings.cls_token': [4], 'neck.convs.0.weight': [2, 2] });
    await assert.rejects(native().loadDepthEstimator(partial, { backend: 'cpu', threads: 1 }), format);
    // Not a model file at all; a model file without DPT weights; a missing path.
    const junk = join(scratch, 'junk.safetensors');
    writeFileSync(junk, 'not a model');
    await assert.rejects(native().loadDepthEstimator(junk, { backend: 'cpu', threads: 1 }), format);
    await assert.rejects(native().loadDepthEstimator(join(tinyDir, 'sd1-ldm.safetensors'), { backend: 'cpu', threads: 1 }),
      (e: unknown) => (e as { code?: string }).code === 'ERR_NO_DEPTH_ESTIMATOR');
    await assert.rejects(StableDiffusion.load({ model: LDM_WITHOUT, depthEstimator: join(scratch, 'nowhere'), ...cpu }),
      (e: unknown) => (e as { code?: string }).code === 'ERR_FILE_NOT_FOUND');
    // A diffusers depth folder whose feature extractor asks for what the pipeline never does.
    const folder = join(scratch, 'depth-folder');
    mkdirSync(join(folder, 'feature_extractor'), { recursive: true });
    cpSync(join(ESTIMATOR, 'depth_estimator'), join(folder, 'depth_estimator'), { recursive: true });
    const processor = JSON.parse(readFileSync(join(ESTIMATOR, 'feature_extractor', 'preprocessor_config.json'), 'utf8')) as object;
    writeFileSync(join(folder, 'feature_extractor', 'preprocessor_config.json'), JSON.stringify({ ...processor, keep_aspect_ratio: true }));
    await assert.rejects(StableDiffusion.load({ model: LDM_WITHOUT, depthEstimator: folder, ...cpu }), format);
    copyFileSync(join(ESTIMATOR, 'feature_extractor', 'preprocessor_config.json'), join(folder, 'feature_extractor', 'preprocessor_config.json'));

    // Wrong option types and pixel shapes.
    await assert.rejects(StableDiffusion.load({ model: LDM_WITHOUT, depthEstimator: 42 as never, ...cpu }), TypeError);
    const handle = await native().loadDepthEstimator(folder, { backend: 'cpu', threads: 1 });
    try {
      assert.throws(() => handle.estimate(new Tensor([1, 3, 32, 32])), RangeError);
      assert.throws(() => handle.estimate(new Tensor([1, 1, 64, 64])), RangeError);
    } finally {
      handle.dispose();
    }
    // The models still work afterwards.
    const depth = await models.get('option')!.estimateDepth(join(dir, goldens.network.source));
    assert.ok(relativeError(depth, golden(goldens.network.predictedDepth)) <= NETWORK_BOUND);
  });
});

test('sdnode depth writes a 16-bit PNG of the estimated depth at the image\'s size; generate --depth-map estimate', async () => {
  const d = goldens.depth2img;
  // The compiled bin, as test/cli.test.ts runs it.
  const bin = process.env.SDNODE_TEST_CLI ?? join(packageRoot, 'dist', 'cli', 'sdnode.js');
  const out = join(scratch, 'depth.png');
  const run = spawnSync(process.execPath, [bin, 'depth', join(dir, goldens.network.source), '--model', LDM, '-o', out, '--backend', 'cpu', '--threads', '1', '--json'],
    { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const report = JSON.parse(run.stdout) as { width: number; height: number; estimator: { layout: string } };
  assert.deepEqual([report.width, report.height, report.estimator.layout], [96, 80, 'midas']);
  const meta = await sharp(out).metadata();
  assert.deepEqual([meta.width, meta.height, meta.channels, meta.depth], [96, 80, 1, 'ushort']);
  const written = await readDepthMap(out, 'depth.png');  // [1, 1, 80, 96] in [0, 1], 65536 levels
  // transformers' depth, resized bicubically and mapped to 0…65535 from its own min and max.
  const side = goldens.imageSize;
  const expected = interpolate(golden(goldens.network.predictedDepth).reshape([1, 1, side, side]), 80, 96, 'bicubic');
  let min = Infinity;
  let max = -Infinity;
  for (const v of expected.data) [min, max] = [Math.min(min, v), Math.max(max, v)];
  let worst = 0;
  for (let i = 0; i < written.size; i++) {
    worst = Math.max(worst, Math.abs(written.data[i]! * 65535 - ((expected.data[i]! - min) / (max - min)) * 65535));
  }
  assert.ok(worst <= 2, `${worst} levels off`);
  // generate --depth-map estimate: depth2img with the model's own estimator.
  const statue = join(scratch, 'statue.png');
  const generate = spawnSync(process.execPath, [bin, 'generate', '-m', LDM, '-p', d.prompt, '--init-image', join(dir, d.image), '--depth-map', 'estimate',
    '--steps', '2', '--backend', 'cpu', '--threads', '1', '-q', '-o', statue], { encoding: 'utf8' });
  assert.equal(generate.status, 0, generate.stderr);
  assert.deepEqual([(await sharp(statue).metadata()).width, (await sharp(statue).metadata()).height], [128, 128]);
  // Bad usage: one line, exit 2.
  const bad = spawnSync(process.execPath, [bin, 'depth', join(dir, goldens.network.source)], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /depth needs --model/);
});
