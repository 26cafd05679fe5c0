// sd.img2img, sd.inpaint and sd.depth2img against diffusers' pipelines
// (tools/goldens/make_image_pipeline_goldens.py) on the tiny fixtures with f32 weights: final
// latents for every case and decoded images for the first case of each model; then previews,
// cancellation and the argument errors.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { AbortError, latentPreview, randn, StableDiffusion, Tensor, type GenerationResult } from '../lib/index.js';
import { fixturePath, goldensDir, maxAbsDiff, relativeError } from './helpers/goldens.js';

interface GoldenTensor {
  shape: number[];
  offset: number;
}
interface GoldenCase {
  name: string;
  pipeline: 'img2img' | 'inpaint' | 'depth2img';
  fixture: string;
  scheduler: string;
  strength: number;
  guidanceScale: number;
  batchSize: number;
  latents: GoldenTensor;
  image?: GoldenTensor;
  /** Run with `inputs.latents` as `options.latents` (inpaint only). */
  givenLatents?: boolean;
}
interface GoldenIndex {
  prompt: string;
  negativePrompt: string;
  steps: number;
  seed: number;
  inputs: { image: GoldenTensor; mask: GoldenTensor; depth: GoldenTensor; latents: GoldenTensor };
  cases: GoldenCase[];
}

const dir = join(goldensDir, 'image-pipelines');
const index = JSON.parse(readFileSync(join(dir, 'goldens.json'), 'utf8')) as GoldenIndex;
const bytes = readFileSync(join(dir, 'goldens.bin'));
const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
function golden(t: GoldenTensor): Tensor {
  return new Tensor(t.shape, all.slice(t.offset, t.offset + t.shape.reduce((a, b) => a * b, 1)));
}
const image = golden(index.inputs.image); // [1, 3, 128, 128] in [0, 1]
const mask = golden(index.inputs.mask); // [1, 1, 128, 128], soft edge around 0.5
const depth = golden(index.inputs.depth); // [1, 100, 120]

const base = { prompt: index.prompt, negativePrompt: index.negativePrompt, steps: index.steps, seed: index.seed };

const scratch = mkdtempSync(join(tmpdir(), 'sdnode-image-pipelines-'));
const models = new Map<string, StableDiffusion>();
before(async () => {
  for (const fixture of new Set(index.cases.map((c) => c.fixture))) {
    models.set(fixture, await StableDiffusion.load({ model: fixturePath(fixture, scratch), backend: 'cpu', weightType: 'f32' }));
  }
});
after(async () => {
  for (const sd of models.values()) await sd.dispose();
  rmSync(scratch, { recursive: true, force: true });
});
const model = (fixture: string): StableDiffusion => models.get(fixture)!;

function runCase(c: GoldenCase, extra: Record<string, unknown> = {}): Promise<GenerationResult> {
  const sd = model(c.fixture);
  const common = { ...base, scheduler: c.scheduler, strength: c.strength, guidanceScale: c.guidanceScale, batchSize: c.batchSize, ...extra };
  if (c.pipeline === 'img2img') return sd.img2img({ ...common, image });
  if (c.pipeline === 'inpaint') return sd.inpaint({ ...common, image, mask });
  return sd.depth2img({ ...common, image, depthMap: depth });
}

describe('img2img, inpaint and depth2img equal diffusers (f32 weights)', () => {
  for (const c of index.cases) {
    test(c.name, async () => {
      const result = await runCase(c, {
        ...(c.image === undefined && { outputType: 'latent' }),
        ...(c.givenLatents && { latents: golden(index.inputs.latents) }),
      });
      const latentError = relativeError(result.latents, golden(c.latents));
      if (process.env.SDNODE_TEST_VERBOSE) console.log(c.name, latentError, c.image && maxAbsDiff(result.images!, golden(c.image)));
      assert.ok(latentError <= 1e-3, `final latents: relative error ${latentError}`);
      if (c.image) {
        const imageError = maxAbsDiff(result.images!, golden(c.image));
        assert.ok(imageError <= 1 / 255, `images: max |Δ| ${imageError}`);
      } else {
        assert.equal(result.images, null);
      }
      assert.equal(result.parameters.pipeline, c.pipeline);
      assert.equal(result.parameters.strength, c.strength);
      assert.equal(result.parameters.width, 128);
      assert.deepEqual(result.seeds, Array(c.batchSize).fill(index.seed));
    });
  }
});

const firstCase = (pipeline: GoldenCase['pipeline'], fixture: string) =>
  index.cases.find((c) => c.pipeline === pipeline && c.fixture === fixture)!;

describe('image pipelines: behaviour', () => {
  test('img2img runs ⌊strength · steps⌋ steps from the kept timesteps', async () => {
    const sd = model('sd1-diffusers');
    const seen: number[] = [];
    await sd.img2img({ ...base, image, steps: 10, strength: 0.35, scheduler: 'ddim', outputType: 'latent', onStep: (s) => void seen.push(s.timestep) });
    const ddim = sd.createScheduler('ddim');
    ddim.setTimesteps(10);
    assert.deepEqual(seen, ddim.timesteps.slice(7)); // int(10 · 0.35) = 3 steps
  });

  test('4-channel inpainting ends with the encoded image wherever the mask is black', async () => {
    // Latent blending puts the image's latents back outside the mask after every step, un-noised
    // after the last: the first draw of the generator samples the VAE's latent distribution.
    const c = index.cases.find((k) => k.pipeline === 'inpaint' && k.fixture === 'sd1-diffusers')!;
    const sd = model(c.fixture);
    const result = await runCase(c, { outputType: 'latent' });
    const { mean, logvar } = await sd.vae.encodeDistribution(new Tensor(image.shape, image.data.map((v) => 2 * v - 1)));
    const noise = await randn(mean.shape, index.seed);
    let kept = 0;
    let repainted = 0;
    for (let y = 0; y < 16; y++) {
      for (let x = 0; x < 16; x++) {
        const outside = mask.data[8 * y * 128 + 8 * x]! < 0.5;
        for (let ch = 0; ch < 4; ch++) {
          const i = (ch * 16 + y) * 16 + x;
          const expected = sd.vae.scalingFactor * (mean.data[i]! + Math.exp(0.5 * logvar.data[i]!) * noise.data[i]!);
          const close = Math.abs(result.latents.data[i]! - expected) <= 1e-5 * Math.max(1, Math.abs(expected));
          if (outside) {
            assert.ok(close, `latent (${ch}, ${y}, ${x}) outside the mask`);
            kept++;
          } else if (!close) {
            repainted++;
          }
        }
      }
    }
    assert.ok(kept > 100 && repainted > 100, `kept ${kept}, repainted ${repainted}`);
  });

  test('latent previews each step, VAE previews every N steps and at the last', async () => {
    const c = index.cases.find((k) => k.name.startsWith('img2img/sd1-diffusers/ddim/s0.6/g7.5'))!;
    const previews: Array<{ step: number; preview?: Tensor }> = [];
    const result = await runCase(c, { preview: 'latent', onStep: (s: { step: number; preview?: Tensor }) => void previews.push(s) });
    assert.equal(previews.length, 3); // ⌊5 · 0.6⌋
    for (const p of previews) assert.deepEqual([...p.preview!.shape], [1, 3, 16, 16]);
    assert.deepEqual([...previews.at(-1)!.preview!.data], [...latentPreview(result.latents).data]);
    assert.ok(relativeError(result.latents, golden(c.latents)) <= 1e-3, 'previews change nothing');
    for (const v of previews[0]!.preview!.data) assert.ok(v >= 0 && v <= 1);

    const vae: Array<{ step: number; preview?: Tensor }> = [];
    const again = await runCase(c, { preview: 'vae', previewEvery: 2, onStep: (s: { step: number; preview?: Tensor }) => void vae.push(s) });
    assert.deepEqual(vae.map((s) => s.preview !== undefined), [false, true, true]);
    assert.ok(maxAbsDiff(vae.at(-1)!.preview!, again.images!) === 0, 'the last VAE preview is the final image');
  });

  test('cancelling an inpaint mid-run rejects with AbortError and the next call reproduces the golden', async () => {
    const c = firstCase('inpaint', 'sd1-inpaint-ldm.ckpt');
    const controller = new AbortController();
    await assert.rejects(
      runCase(c, { signal: controller.signal, onStep: (s: { step: number }) => void (s.step === 2 && controller.abort()) }),
      (e: unknown) => e instanceof AbortError && (e as AbortError).code === 'ABORT_ERR',
    );
    await assert.rejects(runCase(c, { onStep: () => false }), AbortError);
    const result = await runCase(c, { outputType: 'latent' });
    assert.ok(relativeError(result.latents, golden(c.latents)) <= 1e-3);
  });

  test('depth2img takes a depth map of any size and shape [H, W], [B, H, W] or [B, 1, H, W]', async () => {
    const c = firstCase('depth2img', 'sd2-depth-ldm.safetensors');
    const sd = model(c.fixture);
    const options = { ...base, scheduler: c.scheduler, strength: c.strength, image, outputType: 'latent' } as const;
    for (const shape of [[100, 120], [1, 1, 100, 120]]) {
      const result = await sd.depth2img({ ...options, depthMap: depth.reshape(shape) });
      assert.ok(relativeError(result.latents, golden(c.latents)) <= 1e-3, `depth map [${shape}]`);
    }
    // Depth is normalised per image: an affine change of the map gives the same result.
    const shifted = new Tensor(depth.shape, depth.data.map((v) => 3 * v + 100));
    const result = await sd.depth2img({ ...options, depthMap: shifted });
    assert.ok(relativeError(result.latents, golden(c.latents)) <= 1e-3);
  });
});

describe('image pipelines: bad arguments', () => {
  test('each gives a clear TypeError or RangeError', async () => {
    const sd1 = model('sd1-diffusers');
    const inpainting = model('sd1-inpaint-ldm.ckpt');
    const depthModel = model('sd2-depth-ldm.safetensors');
    const ok = { ...base, steps: 2, outputType: 'latent' } as const;
    const cases: Array<[string, () => Promise<unknown>, RegExp, ErrorConstructor]> = [
      ['strength above 1', () => sd1.img2img({ ...ok, image, strength: 1.5 }), /strength between 0 and 1 but received 1\.5/, RangeError],
      ['strength below 0', () => sd1.img2img({ ...ok, image, strength: -0.1 }), /strength between 0 and 1/, RangeError],
      ['strength leaving no step', () => sd1.img2img({ ...ok, image, strength: 0.2 }), /leaves none/, RangeError],
      ['width not a multiple of 8', () => sd1.img2img({ ...ok, image, width: 100 }), /width to be a multiple of 8 but received 100/, RangeError],
      ['steps < 1', () => sd1.inpaint({ ...ok, image, mask, steps: 0 }), /integer steps between 1 and 1000 but received 0/, RangeError],
      ['no image', () => sd1.img2img({ ...ok } as never), /img2img needs options.image/, TypeError],
      ['empty image', () => sd1.img2img({ ...ok, image: { shape: [1, 3, 0, 0], data: new Float32Array(0) } }), /shape/, RangeError],
      ['image not a tensor', () => sd1.img2img({ ...ok, image: 42 as never }), /options.image/, TypeError],
      ['mask of another size', () => inpainting.inpaint({ ...ok, image, mask: new Tensor([1, 1, 64, 64]) }), /mask to be the image's size 128×128 but received 64×64/, RangeError],
      ['no mask', () => inpainting.inpaint({ ...ok, image } as never), /inpaint needs options.mask/, TypeError],
      ['unknown scheduler', () => sd1.img2img({ ...ok, image, scheduler: 'warp' }), /scheduler/i, RangeError],
      ['img2img on an inpainting model', () => inpainting.img2img({ ...ok, image }), /base model.*9 input channels/, RangeError],
      ['depth2img on a base model', () => sd1.depth2img({ ...ok, image, depthMap: depth }), /depth model.*4 input channels/, RangeError],
      ['depth2img without a depth map or an estimator', () => depthModel.depth2img({ ...ok, image }), /No depth estimator.*depthMap/, Error],
      ['a flat depth map', () => depthModel.depth2img({ ...ok, image, depthMap: new Tensor([1, 100, 120]) }), /not all equal/, RangeError],
      ['image batch ≠ batchSize', () => sd1.img2img({ ...ok, image: new Tensor([2, 3, 128, 128]), batchSize: 3 }), /1 or 3 \(batchSize\) items but received 2/, RangeError],
      ['preview without onStep', () => sd1.img2img({ ...ok, image, preview: 'latent' }), /preview needs options.onStep/, TypeError],
    ];
    for (const [what, call, message, type] of cases) {
      await assert.rejects(call, (e: unknown) => e instanceof type && message.test((e as Error).message), what);
    }
    // The models still work afterwards.
    const c = firstCase('img2img', 'sd1-diffusers');
    const result = await runCase(c, { outputType: 'latent' });
    assert.ok(relativeError(result.latents, golden(c.latents)) <= 1e-3);
  });
});
