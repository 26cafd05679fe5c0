// The hires fix: interpolate() against torch.nn.functional.interpolate in every latent mode, and
// txt2img with `hires` against diffusers' pipelines composed as A1111 composes the two passes
// (tools/goldens/make_hires_goldens.py), with the latent modes and the tiny Real-ESRGAN; then
// A1111's target sizes, the infotext, onStep's passes and the argument errors.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  formatParameters, interpolate, StableDiffusion, toInfotext, Upscaler, type HiresOptions, type InterpolationMode, type StepInfo,
} from '../lib/index.js';
import { hiresTarget } from '../lib/pipelines/hires.js';
import { fixturePath, hiresGoldens, maxAbsDiff, pipelineSettings, relativeError, tinyDir, type HiresCase } from './helpers/goldens.js';

const goldens = hiresGoldens();
const golden = goldens.tensor;

describe('interpolate equals torch.nn.functional.interpolate', () => {
  for (const { input, outputs } of goldens.interpolation) {
    for (const { mode, size, output } of outputs) {
      test(`${mode} [${input.shape.join(', ')}] → ${size.join('×')}`, () => {
        const ours = interpolate(golden(input), size[0], size[1], mode as InterpolationMode);
        const error = relativeError(ours, golden(output));
        // torch computes the bicubic weights in float32: about 1e-6 when shrinking.
        assert.ok(error <= 1e-5, `relative error ${error}`);
      });
    }
  }
});

const base = { ...pipelineSettings(goldens), guidanceScale: goldens.guidanceScale };
const scratch = mkdtempSync(join(tmpdir(), 'sdnode-hires-'));
const models = new Map<string, StableDiffusion>();
const upscalers = new Map<string, Upscaler>();
before(async () => {
  for (const fixture of new Set(goldens.cases.map((c) => c.fixture))) {
    models.set(fixture, await StableDiffusion.load({ model: fixturePath(fixture, scratch), backend: 'cpu', weightType: 'f32' }));
  }
  upscalers.set('tiny-x2', await Upscaler.load(join(tinyDir, 'esrgan', 'tiny-x2.safetensors'), { backend: 'cpu' }));
});
after(async () => {
  for (const sd of models.values()) await sd.dispose();
  for (const u of upscalers.values()) await u.dispose();
  rmSync(scratch, { recursive: true, force: true });
});

function hiresOf(c: HiresCase): HiresOptions {
  const { upscaler, ...rest } = c.hires;
  return { ...rest, upscaler: upscalers.get(upscaler) ?? (upscaler === 'bilinear' ? 'latent' : (`latent-${upscaler}` as HiresOptions['upscaler'])), denoisingStrength: c.denoisingStrength };
}

describe('txt2img with hires equals diffusers txt2img → upscale → img2img (f32 weights)', () => {
  for (const c of goldens.cases) {
    test(c.name, async () => {
      const passes: string[] = [];
      const result = await models.get(c.fixture)!.txt2img({
        ...base, scheduler: c.scheduler, hires: hiresOf(c), ...(c.image === undefined && { outputType: 'latent' }),
        onStep: (info: StepInfo) => void passes.push(info.pass!),
      });
      const latentError = relativeError(result.latents, golden(c.latents));
      assert.ok(latentError <= 1e-3, `final latents: relative error ${latentError}`);
      if (c.image) {
        const imageError = maxAbsDiff(result.images!, golden(c.image));
        assert.ok(imageError <= 1 / 255, `images: max |Δ| ${imageError}`);
      }
      const expected = golden(c.latents).shape;
      assert.equal(result.parameters.width, expected[3]! * 8);
      assert.equal(result.parameters.height, expected[2]! * 8);
      assert.equal(result.parameters.steps, goldens.steps);
      assert.equal(result.parameters.strength, c.denoisingStrength);
      assert.equal(result.parameters.hires!.firstWidth, goldens.width);
      // Both passes reported their steps: the first's, then ⌊steps · strength⌋ of the second's (PNDM aside).
      const secondSteps = Math.floor((c.hires.steps ?? goldens.steps) * c.denoisingStrength);
      assert.equal(passes.filter((p) => p === 'first').length, goldens.steps);
      assert.equal(passes.filter((p) => p === 'hires').length, secondSteps);
      assert.equal(passes.lastIndexOf('first') < passes.indexOf('hires'), true);
    });
  }
});

describe('hires fix', () => {
  test("A1111's target sizes: scale, one side, both sides covered then cropped", () => {
    assert.deepEqual(hiresTarget(512, 768, { scale: 1.5, width: undefined, height: undefined }), { upscaleWidth: 768, upscaleHeight: 1152, cropX: 0, cropY: 0 });
    assert.deepEqual(hiresTarget(512, 768, { scale: 1.33, width: undefined, height: undefined }), { upscaleWidth: 680, upscaleHeight: 1021, cropX: 0, cropY: 0 });
    assert.deepEqual(hiresTarget(512, 768, { scale: undefined, width: 1000, height: undefined }), { upscaleWidth: 1000, upscaleHeight: 1500, cropX: 0, cropY: 0 });
    assert.deepEqual(hiresTarget(512, 768, { scale: undefined, width: undefined, height: 1000 }), { upscaleWidth: 666, upscaleHeight: 1000, cropX: 0, cropY: 0 });
    // 512×768 to cover 1024×1024: 1024×1536, 64 latent rows cropped.
    assert.deepEqual(hiresTarget(512, 768, { scale: undefined, width: 1024, height: 1024 }), { upscaleWidth: 1024, upscaleHeight: 1536, cropX: 0, cropY: 64 });
    assert.deepEqual(hiresTarget(768, 512, { scale: undefined, width: 1024, height: 1024 }), { upscaleWidth: 1536, upscaleHeight: 1024, cropX: 64, cropY: 0 });
  });

  test("pixel resizes run, and the infotext has A1111's hires fields with the first pass's size", async () => {
    const sd = models.get('sd1-diffusers')!;
    for (const upscaler of ['lanczos', 'nearest'] as const) {
      const result = await sd.txt2img({ ...base, steps: 2, scheduler: 'euler', hires: { scale: 1.25, upscaler, steps: 3, denoisingStrength: 0.5 } });
      assert.deepEqual(result.images!.shape, [1, 3, 160, 160]);
      const text = formatParameters(toInfotext(result.parameters));
      assert.match(text, /Size: 128x128/);
      assert.match(text, /Denoising strength: 0\.5, Hires upscale: 1\.25, Hires steps: 3, Hires upscaler: (Lanczos|Nearest)/);
    }
    const resized = await sd.txt2img({ ...base, steps: 2, scheduler: 'euler', outputType: 'latent', hires: { width: 160, denoisingStrength: 0.5 } });
    assert.deepEqual(resized.latents.shape, [1, 4, 20, 20]);
    assert.match(formatParameters(toInfotext(resized.parameters)), /Hires resize: 160x0, Hires steps: 2, Hires upscaler: Latent/);
  });

  test('bad hires options are argument errors before any work', async () => {
    const sd = models.get('sd1-diffusers')!;
    const bad: [unknown, RegExp][] = [
      [{ scale: 0.5 }, /hires\.scale between 1 and 8/],
      [{ scale: 2, width: 256 }, /either scale or a target/],
      [{ width: 250 }, /hires\.width to be a multiple of 8/],
      [{ upscaler: 'Latent' }, /options\.hires\.upscaler/],
      [{ upscaler: 4 }, /options\.hires\.upscaler/],
      [{ steps: 0 }, /hires\.steps between 1 and 1000/],
      [{ denoisingStrength: 0.1, steps: 5 }, /leave at least one step/],
      [{ strength: 0.5 }, /Unknown option|unknown/i],
      ['2x', /options\.hires/],
    ];
    for (const [hires, message] of bad) {
      let stepped = false;
      await assert.rejects(sd.txt2img({ ...base, steps: 2, hires: hires as HiresOptions, onStep: () => void (stepped = true) }), message);
      assert.equal(stepped, false, `no step ran for ${JSON.stringify(hires)}`);
    }
  });
});
