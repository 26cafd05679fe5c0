// sd.txt2img against diffusers' StableDiffusionPipeline (tools/goldens/make_pipeline_goldens.py)
// on the tiny diffusers fixtures with f32 weights: final latents and decoded images for PNDM,
// DDIM, Euler, DPM++ 2M Karras and Euler ancestral (SD1 epsilon, SD2 v-prediction, and SD1 with
// a timestep-sensitive UNet), guidance 1, a batch, injected latents; the component loop (also
// on the timestep-sensitive UNet); onStep, cancellation, the event loop; argument errors.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { StableDiffusion, Tensor, TorchGenerator, type Txt2ImgResult } from '../lib/index.js';
import {
  fixturePath as sharedFixturePath,
  maxAbsDiff,
  pipelineCaseOptions,
  pipelineGoldens,
  pipelineSettings,
  relativeError,
  type PipelineTensor,
} from './helpers/goldens.js';

const index = pipelineGoldens();
const golden = (t: PipelineTensor): Tensor => index.tensor(t);

const base = pipelineSettings(index);

// The tiny UNets' GroupNorm cancels the time embedding (tools/README.md); sd1-unet-t64 is
// sd1-diffusers with the timestep-sensitive UNet of goldens/unet/sd1-unet-t64.
const scratch = mkdtempSync(join(tmpdir(), 'sdnode-txt2img-'));
const fixturePath = (fixture: string): string => sharedFixturePath(fixture, scratch);

const models = new Map<string, StableDiffusion>();
before(async () => {
  for (const fixture of new Set(index.cases.map((c) => c.fixture))) {
    models.set(fixture, await StableDiffusion.load({ model: fixturePath(fixture), backend: 'cpu', weightType: 'f32' }));
  }
});
after(async () => {
  for (const sd of models.values()) await sd.dispose();
  rmSync(scratch, { recursive: true, force: true });
});
const model = (fixture: string): StableDiffusion => models.get(fixture)!;

describe('txt2img equals diffusers (f32 weights)', () => {
  for (const c of index.cases) {
    test(c.name, async () => {
      const sd = model(c.fixture);
      const result = await sd.txt2img(pipelineCaseOptions(index, c));
      const latentError = relativeError(result.latents, golden(c.latents));
      if (process.env.SDNODE_TEST_VERBOSE) console.log(c.name, latentError, maxAbsDiff(result.images!, golden(c.image)));
      assert.ok(latentError <= 1e-3, `final latents: relative error ${latentError}`);
      const imageError = maxAbsDiff(result.images!, golden(c.image));
      assert.ok(imageError <= 1 / 255, `images: max |Δ| ${imageError}`);
      assert.deepEqual(result.seeds, Array(c.batchSize).fill(index.seed));
      assert.equal(result.parameters.scheduler, c.scheduler);
    });
  }
});

describe('txt2img behaviour', () => {
  test('guidance ≤ 1 runs no unconditional pass', async () => {
    const sd = model('sd1-diffusers');
    const batches: number[] = [];
    const predict = sd.unet.predict.bind(sd.unet);
    sd.unet.predict = async (sample, t, context) => {
      batches.push(sample.shape[0]!);
      return predict(sample, t, context);
    };
    try {
      const ddim = { ...base, steps: 2, scheduler: 'ddim', outputType: 'latent' } as const;
      await sd.txt2img({ ...ddim, guidanceScale: 1 });
      assert.deepEqual(batches, [1, 1]);
      batches.length = 0;
      await sd.txt2img({ ...ddim, guidanceScale: 0.5 });
      assert.deepEqual(batches, [1, 1]);
      batches.length = 0;
      await sd.txt2img({ ...ddim, guidanceScale: 7.5, batchSize: 2 });
      assert.deepEqual(batches, [4, 4]);
    } finally {
      // @ts-expect-error remove the instance property, back to the prototype's method
      delete sd.unet.predict;
    }
  });

  test("outputType 'latent' gives no images and the same latents", async () => {
    const sd = model('sd1-diffusers');
    const a = await sd.txt2img({ ...base, scheduler: 'euler', outputType: 'latent' });
    const b = await sd.txt2img({ ...base, scheduler: 'euler' });
    assert.equal(a.images, null);
    assert.deepEqual([...b.images!.shape], [1, 3, index.height, index.width]);
    assert.deepEqual(a.latents.data, b.latents.data);
  });

  test('the hand-written component loop equals sd.txt2img', async () => {
    const sd = model('sd1-unet-t64');
    for (const name of ['dpmpp_2m_karras', 'euler_a']) {
      const expected = await sd.txt2img({ ...base, scheduler: name, outputType: 'latent' });
      const g = 7.5;
      const { cond, uncond } = await sd.encodePrompt(base.prompt, { negativePrompt: base.negativePrompt });
      const context = new Tensor([2, ...cond.shape.slice(1)], Float32Array.from([...uncond.data, ...cond.data]));
      const scheduler = sd.createScheduler(name);
      const generator = new TorchGenerator(base.seed);
      scheduler.setTimesteps(base.steps);
      const noise = await generator.randn([1, 4, base.height / 8, base.width / 8]);
      let latents = new Tensor(noise.shape, noise.data.map((v) => v * scheduler.initNoiseSigma));
      for (const t of scheduler.timesteps) {
        const x = scheduler.scaleModelInput(latents, t);
        const out = await sd.unet.predict(new Tensor([2, ...x.shape.slice(1)], Float32Array.from([...x.data, ...x.data])), t, context);
        const half = out.size / 2;
        const guided = new Tensor(x.shape, out.data.slice(0, half).map((u, i) => u + g * (out.data[half + i]! - u)));
        const stepNoise = scheduler.stochastic ? await generator.randn(latents.shape) : undefined;
        latents = scheduler.step(guided, t, latents, stepNoise).prevSample;
      }
      const error = relativeError(latents, expected.latents);
      // The loop above computes the guidance in float64 before rounding; txt2img in float32 as torch.
      assert.ok(error <= 1e-5, `${name}: ${error}`);
    }
  });

  test('sd.createScheduler takes the model prediction type', () => {
    const v = model('sd2-v-diffusers').createScheduler('ddim');
    const eps = model('sd1-diffusers').createScheduler('DPM++ 2M Karras', { timestepSpacing: 'trailing' });
    assert.equal(v.name, 'ddim');
    assert.equal(eps.name, 'dpmpp_2m_karras');
    assert.throws(() => model('sd1-diffusers').createScheduler('nope'), RangeError);
    assert.throws(() => model('sd1-diffusers').createScheduler('ddim', 'x' as never), TypeError);
  });

  test('a Scheduler object can be passed', async () => {
    const sd = model('sd2-v-diffusers');
    const c = index.cases.find((x) => x.fixture === 'sd2-v-diffusers' && x.scheduler === 'ddim')!;
    const result = await sd.txt2img({ ...base, scheduler: sd.createScheduler('ddim'), outputType: 'latent' });
    assert.ok(relativeError(result.latents, golden(c.latents)) <= 1e-3);
  });

  test('onStep is called once per step with increasing steps', async () => {
    const sd = model('sd1-diffusers');
    const seen: Array<{ step: number; steps: number; timestep: number; elapsedMs: number; latents: Tensor }> = [];
    const timesteps = sd.createScheduler('ddim');
    timesteps.setTimesteps(4);
    const result = await sd.txt2img({ ...base, steps: 4, scheduler: 'ddim', outputType: 'latent', onStep: (info) => void seen.push(info) });
    assert.deepEqual(seen.map((s) => s.step), [1, 2, 3, 4]);
    // Each step hands over the latents it produced; the last ones are the result's.
    assert.deepEqual([...seen[3]!.latents.data], [...result.latents.data]);
    assert.notDeepEqual([...seen[2]!.latents.data], [...result.latents.data]);
    assert.ok(seen.every((s) => s.steps === 4));
    assert.deepEqual(seen.map((s) => s.timestep), timesteps.timesteps);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.elapsedMs >= seen[i - 1]!.elapsedMs);
  });

  async function assertStillGenerates(sd: StableDiffusion): Promise<void> {
    const c = index.cases.find((x) => x.fixture === 'sd1-diffusers' && x.scheduler === 'pndm' && x.guidanceScale === 7.5)!;
    const result: Txt2ImgResult = await sd.txt2img({ ...base, scheduler: 'pndm' });
    assert.ok(relativeError(result.latents, golden(c.latents)) <= 1e-3);
  }

  test('onStep returning false rejects with AbortError; the model still generates', async () => {
    const sd = model('sd1-diffusers');
    let calls = 0;
    await assert.rejects(
      sd.txt2img({ ...base, onStep: ({ step }) => (calls++, step < 2) }),
      (e: Error & { code?: string }) => e.name === 'AbortError' && e.code === 'ABORT_ERR',
    );
    assert.equal(calls, 2);
    await assertStillGenerates(sd);
  });

  test('an AbortController rejects with AbortError; the model still generates', async () => {
    const sd = model('sd1-diffusers');
    const controller = new AbortController();
    let calls = 0;
    await assert.rejects(
      sd.txt2img({ ...base, signal: controller.signal, onStep: () => { calls++; controller.abort(); } }),
      (e: Error & { code?: string }) => e.name === 'AbortError' && e.code === 'ABORT_ERR',
    );
    assert.equal(calls, 1);
    await assert.rejects(sd.txt2img({ ...base, signal: AbortSignal.abort() }), { name: 'AbortError' });
    await assertStillGenerates(sd);
  });

  test('memoryReport gives the memory of each stage', async () => {
    const sd = model('sd1-diffusers');
    const ddim = { ...base, steps: 2, scheduler: 'ddim' } as const;
    const { memory } = await sd.txt2img({ ...ddim, memoryReport: true });
    assert.ok(memory?.encode && memory.sample && memory.decode);
    for (const stage of [memory.encode, memory.sample, memory.decode]) {
      assert.ok(stage.device.weights.unet > 0 && stage.device.total > 0 && stage.device.peak >= stage.device.total);
      if (process.platform === 'linux') assert.ok(stage.host.rss! > 0 && stage.host.peak! >= stage.host.rss!);
    }
    // Each stage's network has its compute buffers by the end of that stage.
    assert.ok(memory.encode.device.compute.textEncoder > 0);
    assert.ok(memory.sample.device.compute.unet > 0);
    assert.ok(memory.decode.device.compute.vae > 0);
    const latentOnly = await sd.txt2img({ ...ddim, memoryReport: true, outputType: 'latent' });
    assert.equal(latentOnly.memory!.decode, undefined);
    assert.equal((await sd.txt2img({ ...ddim, outputType: 'latent' })).memory, undefined);
  });

  test('the event loop keeps running during a generation', async () => {
    const sd = model('sd1-diffusers');
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    try {
      await sd.txt2img({ ...base, steps: 10, batchSize: 4, outputType: 'latent' });
    } finally {
      clearInterval(timer);
    }
    assert.ok(ticks > 0, 'setInterval never fired');
  });

  test('bad options give TypeError or RangeError', async () => {
    const sd = model('sd1-diffusers');
    const cases: Array<[unknown, ErrorConstructor, RegExp]> = [
      [undefined, TypeError, /Expected options to be an object/],
      [{}, TypeError, /Expected options.prompt to be a string/],
      [{ prompt: 'x', steps: 0 }, RangeError, /^Expected integer steps between 1 and 1000 but received 0$/],
      [{ prompt: 'x', steps: 2.5 }, RangeError, /steps between 1 and 1000 but received 2.5/],
      [{ prompt: 'x', steps: '4' }, TypeError, /steps/],
      [{ prompt: 'x', width: 100 }, RangeError, /^Expected width to be a multiple of 8 but received 100$/],
      [{ prompt: 'x', height: 0 }, RangeError, /height between 8 and/],
      [{ prompt: 'x', guidanceScale: -1 }, RangeError, /guidanceScale/],
      [{ prompt: 'x', guidanceScale: Number.NaN }, TypeError, /guidanceScale/],
      [{ prompt: 'x', batchSize: 0 }, RangeError, /batchSize/],
      [{ prompt: 'x', scheduler: 'nope' }, RangeError, /Unknown scheduler "nope"/],
      [{ prompt: 'x', scheduler: 3 }, TypeError, /options.scheduler/],
      [{ prompt: 'x', seed: -1 }, RangeError, /seed/],
      [{ prompt: 'x', seed: 'a' }, TypeError, /seed/],
      [{ prompt: 'x', width: 64, height: 64, latents: Tensor.zeros([1, 4, 16, 16]) }, RangeError, /latents of shape \[1, 4, 8, 8\]/],
      [{ prompt: 'x', latents: [1, 2] }, TypeError, /options.latents/],
      [{ prompt: 'x', onStep: 1 }, TypeError, /onStep/],
      [{ prompt: 'x', signal: {} }, TypeError, /AbortSignal/],
      [{ prompt: 'x', outputType: 'png' }, RangeError, /outputType/],
      [{ prompt: 'x', promptWeighting: 1 }, TypeError, /promptWeighting/],
    ];
    for (const [options, type, message] of cases) {
      await assert.rejects(sd.txt2img(options as never), (e: Error) => {
        assert.ok(e instanceof type, `${JSON.stringify(options)}: ${e.name}: ${e.message}`);
        assert.match(e.message, message);
        return true;
      });
    }
  });
});
