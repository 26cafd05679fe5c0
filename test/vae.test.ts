// sd.vae.decode / encode against diffusers' AutoencoderKL on the tiny fixtures
// (goldens: tools/goldens/make_vae_goldens.py → test/fixtures/goldens/vae/).
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { convertModel, inspectModelFile, StableDiffusion, Tensor } from '../lib/index.js';
import { native } from '../lib/native.js';
import { relativeError, tinyDir, vaeGoldens, vaeGroupsGoldens } from './helpers/goldens.js';

const goldens = vaeGoldens();

// q8_0 quantizes only the mid-block attention's linear weights; convolution kernels stay f16.
const BOUNDS = { f32: 1e-4, f16: 2e-3, q8_0: 3e-2 } as const;

for (const weightType of ['f32', 'f16', 'q8_0'] as const) {
  for (const model of ['sd1-diffusers', 'sd2-v-diffusers']) {
    describe(`VAE ${model} (${weightType === 'f16' ? 'f16 as stored' : weightType})`, () => {
      let sd: StableDiffusion;
      before(async () => {
        sd = await StableDiffusion.load({ model: join(tinyDir, model), ...(weightType !== 'f16' && { weightType }) });
      });
      after(() => sd.dispose());

      for (const c of goldens.cases.filter((c) => c.model === model)) {
        test(`${c.op} [${c.input.shape.join(', ')}] within ${BOUNDS[weightType]}`, async () => {
          const input = goldens.input(c);
          const golden = goldens.output(c);
          let ours: Tensor;
          if (c.op === 'decode') {
            ours = await sd.vae.decode(input);
          } else {
            const dist = await sd.vae.encodeDistribution(input);
            ours = dist.moments;
            const mean = await sd.vae.encode(input);
            const [b, ch, h, w] = golden.shape as [number, number, number, number];
            assert.deepEqual([...mean.shape], [b, ch / 2, h, w]);
            assert.deepEqual(mean.data, dist.mean.data);
            const half = (ch / 2) * h * w;
            for (let i = 0; i < b; i++) {
              assert.equal(dist.mean.data[i * half], ours.data[2 * i * half]);
              assert.equal(dist.logvar.data[i * half], Math.min(20, Math.max(-30, ours.data[(2 * i + 1) * half]!)));
            }
          }
          const error = relativeError(ours, golden);
          console.log(`# ${model} ${weightType} ${c.op} [${c.input.shape.join(', ')}]: error ${error.toExponential(2)}`);
          assert.ok(error <= BOUNDS[weightType], `error ${error} > ${BOUNDS[weightType]}`);
        });
      }
    });
  }
}

/** Loads `model` in f32 and checks each case's decode (or encode moments) against its golden. */
async function expectVaeGoldens(model: string, set: typeof goldens, cases: typeof goldens.cases): Promise<void> {
  const sd = await StableDiffusion.load({ model, weightType: 'f32' });
  try {
    for (const c of cases) {
      const input = set.input(c);
      const ours = c.op === 'decode' ? await sd.vae.decode(input) : (await sd.vae.encodeDistribution(input)).moments;
      const error = relativeError(ours, set.output(c));
      assert.ok(error <= 1e-4, `${c.op}: error ${error}`);
    }
  } finally {
    await sd.dispose();
  }
}

// The same SD1 weights in the original single-file layouts (the VAE's 1×1-conv attention
// projections read as linear weights) give diffusers' results too.
for (const file of ['sd1-ldm.safetensors', 'sd1-ldm.gguf']) {
  test(`VAE from ${file} equals the diffusers-folder goldens`, () =>
    expectVaeGoldens(join(tinyDir, file), goldens, goldens.cases.filter((c) => c.model === 'sd1-diffusers').slice(0, 3)));
}

// GroupNorm's group count comes from the VAE's config (diffusers' norm_num_groups), not SD's 32
// always: a model folder whose vae/ has 4 groups equals diffusers, and so does its conversion to
// GGUF (the count travels as sdnode.vae.norm_groups); a count that does not divide the widths is
// a format error.
describe('VAE with norm_num_groups other than 32', () => {
  const work = mkdtempSync(join(tmpdir(), 'sdnode-vae-groups-'));
  const folder = join(work, 'model');
  after(() => rmSync(work, { recursive: true, force: true }));
  before(() => {
    cpSync(join(tinyDir, 'sd1-diffusers'), folder, { recursive: true });
    rmSync(join(folder, 'vae'), { recursive: true });
    cpSync(join(tinyDir, 'vae-groups4', 'vae'), join(folder, 'vae'), { recursive: true });
  });

  async function expectGoldens(model: string): Promise<void> {
    const groups = vaeGroupsGoldens();
    assert.equal(groups.cases.length, 2);
    await expectVaeGoldens(model, groups, groups.cases);
  }

  test('a diffusers folder with 4 groups equals diffusers', () => expectGoldens(folder));

  test('its GGUF conversion keeps the group count', async () => {
    const gguf = join(work, 'model.gguf');
    await convertModel(folder, gguf, { weightType: 'f32' });
    assert.equal((await inspectModelFile(gguf)).metadata['sdnode.vae.norm_groups'], '4');
    await expectGoldens(gguf);
  });

  test('a group count that does not divide the widths is ERR_MODEL_FORMAT', async () => {
    const bad = join(work, 'bad');
    cpSync(folder, bad, { recursive: true });
    const configPath = join(bad, 'vae', 'config.json');
    writeFileSync(configPath, JSON.stringify({ ...JSON.parse(readFileSync(configPath, 'utf8')), norm_num_groups: 3 }));
    await assert.rejects(StableDiffusion.load({ model: bad }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'ERR_MODEL_FORMAT');
      assert.match(e.message, /VAE level 0 has 8 channels, which do not divide into 3 groups/);
      return true;
    });
  });
});

describe('VAE argument checks', () => {
  let sd: StableDiffusion;
  before(async () => {
    sd = await StableDiffusion.load({ model: join(tinyDir, 'sd1-diffusers') });
  });
  after(() => sd.dispose());

  test('scalingFactor and factors', () => {
    assert.equal(sd.vae.scalingFactor, 0.18215);
    assert.equal(sd.vae.latentChannels, 4);
    assert.equal(sd.vae.downscaleFactor, 8);
  });

  test('wrong types → TypeError', async () => {
    for (const bad of [undefined, null, 42, 'x', { shape: [1, 4, 8, 8] }, { shape: [1, 4, 8, 8], data: new Float64Array(256) }, { shape: 'abc', data: new Float32Array(1) }]) {
      await assert.rejects(sd.vae.decode(bad as never), TypeError);
      await assert.rejects(sd.vae.encode(bad as never), TypeError);
    }
  });

  test('wrong shapes → RangeError', async () => {
    const bad = (shape: number[]) => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
    for (const shape of [[4, 8, 8], [1, 3, 8, 8], [1, 8, 8, 8], [1, 1, 4, 8, 8], [65, 4, 1, 1], [1, 4, 1025, 1]]) {
      await assert.rejects(sd.vae.decode(bad(shape)), RangeError, `decode ${shape}`);
    }
    for (const shape of [[3, 64, 64], [1, 4, 64, 64], [1, 1, 64, 64], [1, 3, 60, 64], [1, 3, 64, 7], [1, 3, 4, 4]]) {
      await assert.rejects(sd.vae.encode(bad(shape)), RangeError, `encode ${shape}`);
    }
    await assert.rejects(sd.vae.decode({ shape: [1, 4, 8, 8], data: new Float32Array(10) }), RangeError);
    await assert.rejects(sd.vae.decode({ shape: [1, 4, 0, 8], data: new Float32Array(0) }), RangeError);
  });

  test('the native methods check shapes too (no abort)', async () => {
    // Bypass the TypeScript checks: the addon must reject on its own.
    const addon = native() as unknown as {
      loadModel(path: string, options: { backend: string }): Promise<{
        vaeDecode(t: unknown): Promise<unknown>;
        vaeEncode(t: unknown): Promise<unknown>;
        dispose(): void;
      }>;
    };
    const m = await addon.loadModel(join(tinyDir, 'sd1-diffusers'), { backend: 'cpu' });
    const bad = (shape: number[]) => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
    assert.throws(() => m.vaeDecode(bad([1, 3, 8, 8])), RangeError);
    assert.throws(() => m.vaeDecode(bad([4, 8, 8])), RangeError);
    assert.throws(() => m.vaeEncode(bad([1, 3, 60, 64])), RangeError);
    assert.throws(() => m.vaeEncode(bad([1, 3, 0, 64])), RangeError);
    assert.throws(() => m.vaeDecode({ shape: [1, 4, 8, 8], data: [1, 2] }), TypeError);
    assert.throws(() => m.vaeEncode(undefined), TypeError);
    const out = (await m.vaeDecode(bad([1, 4, 1, 1]))) as { shape: number[] };
    assert.deepEqual(out.shape, [1, 3, 8, 8]);
    m.dispose();
  });

  test('the model stays usable after rejected calls', async () => {
    const out = await sd.vae.decode(new Tensor([1, 4, 2, 3]));
    assert.deepEqual([...out.shape], [1, 3, 16, 24]);
    assert.ok(out.data.every(Number.isFinite));
    const latents = await sd.vae.encode(new Tensor([1, 3, 16, 8]));
    assert.deepEqual([...latents.shape], [1, 4, 2, 1]);
  });

  test('concurrent calls', async () => {
    const results = await Promise.all([sd.vae.decode(new Tensor([1, 4, 2, 2])), sd.vae.encode(new Tensor([1, 3, 16, 16])), sd.vae.decode(new Tensor([2, 4, 1, 1]))]);
    assert.deepEqual(results.map((r) => [...r.shape]), [[1, 3, 16, 16], [1, 4, 2, 2], [2, 3, 8, 8]]);
  });

  test('after dispose → ERR_DISPOSED', async () => {
    const other = await StableDiffusion.load({ model: join(tinyDir, 'sd1-diffusers') });
    await other.dispose();
    await assert.rejects(other.vae.decode(new Tensor([1, 4, 2, 2])), { code: 'ERR_DISPOSED' });
  });
});
