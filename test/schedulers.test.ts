import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

import { performance } from 'node:perf_hooks';

import { createScheduler, SCHEDULER_NAMES, Tensor } from '../lib/index.js';
import { packageRoot } from '../lib/native.js';

// Made by tools/goldens/make_scheduler_goldens.py with diffusers' schedulers built from SD 1.5's
// scheduler config: set_timesteps(10), then the loop with the fake model 0.1·x + 0.05·t/1000.
const DIR = `${packageRoot}/test/fixtures/schedulers`;

interface Case {
  overrides: Record<string, string | boolean | number>;
  resolvedSpacing: string;
  timesteps: number[];
  sigmas: number[] | null;
  initNoiseSigma: number;
  addNoise: { timestep: number; sample: string };
  steps: { t: number; probe: string }[];
  final: string;
  noiseDraws: number;
}
interface Schedule {
  overrides: Record<string, string | boolean>;
  steps: number;
  timesteps: string;
  sigmas: string | null;
  initNoiseSigma: number;
}
interface Golden {
  scheduler: string;
  cases: Case[];
  schedules: Schedule[];
  img2img: { beginIndex: number; setBeginIndex: boolean; noised: string; steps: { t: number; probe: string }[]; final: string; noiseDraws: number };
}
interface Common {
  steps: number;
  shape: number[];
  probe: number[];
  x0: string;
  addNoiseNoise: string;
  noise: string[];
}

function f32(b64: string): Float32Array {
  const bytes = Buffer.from(b64, 'base64');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

const common = JSON.parse(readFileSync(`${DIR}/common.json`, 'utf8')) as Common;
const x0 = new Tensor(common.shape, f32(common.x0));
const noises = common.noise.map((b) => new Tensor(common.shape, f32(b)));

const TOLERANCE = 1e-5;

/**
 * max |a − b| / max |b|: the error relative to the tensor's scale. (Per element it would be
 * meaningless where values cross zero: float32 rounding differences of 1e-7 between torch's
 * kernels and ours are then "large".)
 */
function maxRelError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length);
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return scale === 0 ? worst : worst / scale;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  const err = maxRelError(actual, expected);
  assert.ok(err <= TOLERANCE, `${what}: max relative error ${err} > ${TOLERANCE}`);
}

// The fake model, in float32 as torch computes 0.1 * x + 0.05 * t / 1000.
function fakeModel(x: Tensor, t: number): Tensor {
  const a = Math.fround(0.1);
  const c = Math.fround((0.05 * t) / 1000);
  const out = new Float32Array(x.size);
  for (let i = 0; i < x.size; i++) out[i] = Math.fround(Math.fround(a * x.data[i]!) + c);
  return new Tensor(x.shape, out);
}

test('every scheduler has goldens', () => {
  assert.deepEqual(SCHEDULER_NAMES.filter((n) => !existsSync(`${DIR}/${n}.json`)), []);
});

const goldens = SCHEDULER_NAMES.filter((n) => existsSync(`${DIR}/${n}.json`)).map(
  (n) => JSON.parse(readFileSync(`${DIR}/${n}.json`, 'utf8')) as Golden,
);

for (const golden of goldens) {
  for (const c of golden.cases) {
    const label = `${golden.scheduler} ${JSON.stringify(c.overrides)}`;
    test(`${label}: timesteps, sigmas, initNoiseSigma and a 10-step run equal diffusers'`, () => {
      const s = createScheduler(golden.scheduler, c.overrides);
      s.setTimesteps(common.steps);
      assertClose(s.timesteps, c.timesteps, 'timesteps');
      if (c.sigmas === null) {
        assert.equal(s.sigmas, null);
      } else {
        assert.ok(s.sigmas);
        assertClose(s.sigmas, c.sigmas, 'sigmas');
      }
      assertClose([s.initNoiseSigma], [c.initNoiseSigma], 'initNoiseSigma');

      // add_noise at the fourth timestep, on a fresh scheduler.
      const other = createScheduler(golden.scheduler, c.overrides);
      other.setTimesteps(common.steps);
      const noisy = other.addNoise(x0, new Tensor(common.shape, f32(common.addNoiseNoise)), c.addNoise.timestep);
      assertClose(noisy.data, f32(c.addNoise.sample), 'addNoise');

      const init = Math.fround(c.initNoiseSigma);
      let sample = new Tensor(common.shape, x0.data.map((v) => Math.fround(v * init)));
      let draws = 0;
      assert.equal(s.timesteps.length, c.steps.length);
      s.timesteps.forEach((t, i) => {
        const input = s.scaleModelInput(sample, t);
        const out = fakeModel(input, t);
        sample = s.step(out, t, sample, () => noises[draws++]!).prevSample;
        const probe = common.probe.map((j) => sample.data[j]!);
        assertClose(probe, f32(c.steps[i]!.probe), `step ${i} (t = ${t})`);
      });
      assertClose(sample.data, f32(c.final), 'final sample');
      assert.equal(draws, c.noiseDraws, 'noise draws');
    });
  }
}

for (const golden of goldens) {
  test(`${golden.scheduler}: timesteps and sigmas for 1, 2, 3, 25, 50 and 61 steps equal diffusers'`, () => {
    assert.ok(golden.schedules.length > 0);
    for (const schedule of golden.schedules) {
      const what = `${JSON.stringify(schedule.overrides)} ${schedule.steps} steps`;
      const s = createScheduler(golden.scheduler, schedule.overrides);
      s.setTimesteps(schedule.steps);
      const timesteps = f32(schedule.timesteps);
      assert.equal(s.timesteps.length, timesteps.length, what);
      assertClose(s.timesteps, timesteps, `${what}: timesteps`);
      if (schedule.sigmas === null) assert.equal(s.sigmas, null, what);
      else assertClose(s.sigmas!, f32(schedule.sigmas), `${what}: sigmas`);
      assertClose([s.initNoiseSigma], [schedule.initNoiseSigma], `${what}: initNoiseSigma`);
    }
  });
}

for (const golden of goldens) {
  test(`${golden.scheduler}: an img2img-style run from timesteps[begin] (setBeginIndex, addNoise) equals diffusers'`, () => {
    const g = golden.img2img;
    const s = createScheduler(golden.scheduler);
    s.setTimesteps(common.steps);
    assert.equal(g.beginIndex, 4 * s.order);
    if (g.setBeginIndex) s.setBeginIndex(g.beginIndex);
    else assert.throws(() => s.setBeginIndex(g.beginIndex), RangeError);
    const timesteps = s.timesteps.slice(g.beginIndex);
    let sample = s.addNoise(x0, new Tensor(common.shape, f32(common.addNoiseNoise)), timesteps[0]!);
    assertClose(sample.data, f32(g.noised), 'noised');
    let draws = 0;
    assert.equal(timesteps.length, g.steps.length);
    timesteps.forEach((t, i) => {
      const out = fakeModel(s.scaleModelInput(sample, t), t);
      sample = s.step(out, t, sample, () => noises[draws++]!).prevSample;
      assertClose(common.probe.map((j) => sample.data[j]!), f32(g.steps[i]!.probe), `step ${i} (t = ${t})`);
    });
    assertClose(sample.data, f32(g.final), 'final sample');
    assert.equal(draws, g.noiseDraws);
  });
}

test('SD 1.5 config defaults: pndm, ddim leading; euler linspace', () => {
  for (const golden of goldens) {
    const defaults = golden.cases.find((c) => Object.keys(c.overrides).length === 0);
    assert.ok(defaults, golden.scheduler);
    const s = createScheduler(golden.scheduler);
    s.setTimesteps(common.steps);
    assert.deepEqual(s.timesteps, defaults.timesteps.map(Math.fround), golden.scheduler);
  }
  const pndm = createScheduler('PLMS');
  pndm.setTimesteps(10);
  assert.deepEqual(pndm.timesteps, [901, 801, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
  const euler = createScheduler('euler');
  euler.setTimesteps(4);
  assert.deepEqual(euler.timesteps, [999, 666, 333, 0]);
});

test('A1111 names and any case are accepted', () => {
  assert.equal(createScheduler('PLMS').name, 'pndm');
  assert.equal(createScheduler('ddim').name, 'ddim');
  assert.equal(createScheduler('DDIM').name, 'ddim');
  assert.equal(createScheduler('Euler').name, 'euler');
  assert.equal(createScheduler('EULER').name, 'euler');
  assert.equal(createScheduler('Euler a').name, 'euler_a');
  assert.equal(createScheduler('euler A').name, 'euler_a');
  assert.equal(createScheduler('DPM++ 2M Karras').name, 'dpmpp_2m_karras');
  assert.equal(createScheduler('DPM++ 2M').name, 'dpmpp_2m');
  assert.equal(createScheduler('LMS').name, 'lms');
  assert.equal(createScheduler('Heun').name, 'heun');
  assert.equal(createScheduler('UniPC').name, 'unipc');
  assert.equal(createScheduler('LCM').name, 'lcm');
  assert.equal(createScheduler('DPM++ 2M SDE').name, 'dpmpp_2m_sde');
  assert.equal(createScheduler('dpm++ 2m sde karras').name, 'dpmpp_2m_sde_karras');
  assert.equal(createScheduler('ddpm').name, 'ddpm');
  for (const name of SCHEDULER_NAMES) assert.equal(createScheduler(name).name, name);
  assert.deepEqual(
    SCHEDULER_NAMES.map((n) => createScheduler(n).stochastic),
    [false, false, false, false, true, false, false, false, true, true, false, true, true],
  );
});

test('bad names and arguments give TypeError or RangeError', () => {
  assert.throws(() => createScheduler('nope'), (e: Error) => e instanceof RangeError && /expected one of pndm, ddim/.test(e.message) && /"Euler a"/.test(e.message));
  assert.throws(() => createScheduler(42 as unknown as string), TypeError);
  assert.throws(() => createScheduler('euler', { timestepSpacing: 'middle' as 'leading' }), RangeError);
  assert.throws(() => createScheduler('euler', { predictionType: 'sample' as 'epsilon' }), RangeError);
  assert.throws(() => createScheduler('euler', { useKarrasSigmas: 1 as unknown as boolean }), TypeError);
  assert.throws(() => createScheduler('ddim', { eta: 2 }), RangeError);
  assert.throws(() => createScheduler('euler_a', { useKarrasSigmas: true }), RangeError);
  assert.throws(() => createScheduler('pndm', { useKarrasSigmas: true }), RangeError);
  assert.equal(createScheduler('pndm', { useKarrasSigmas: false }).name, 'pndm');
  assert.throws(() => createScheduler('lcm').setTimesteps(51), RangeError, 'LCM takes at most original_inference_steps (50)');
  assert.throws(() => createScheduler('ddim', { stepsOffset: 1.5 }), RangeError);
  assert.throws(() => createScheduler('ddim', { clipSample: true } as object), {
    name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /^Unknown option 'clipSample' in the scheduler overrides/,
  });
  assert.throws(() => createScheduler('ddim', 'x' as unknown as object), TypeError);
  const s = createScheduler('euler');
  assert.throws(() => s.setTimesteps(0), { name: 'RangeError', message: 'Expected integer steps between 1 and 1000 but received 0' });
  assert.throws(() => s.setTimesteps(1001), RangeError);
  assert.throws(() => s.setTimesteps(2.5), RangeError);
  assert.throws(() => s.setTimesteps('10' as unknown as number), TypeError);
  // Using a scheduler before setTimesteps, or at a timestep it does not have.
  assert.throws(() => s.scaleModelInput(x0, 999), RangeError);
  s.setTimesteps(10);
  assert.throws(() => s.scaleModelInput(x0, 500), RangeError);
  assert.throws(() => s.step(x0, 999, new Tensor([1, 4, 8, 4])), RangeError);
  assert.throws(() => s.step(x0, Number.NaN, x0), TypeError);
  assert.throws(() => s.step({} as Tensor, 999, x0), TypeError);
  assert.throws(() => s.addNoise(x0, x0, 'a' as unknown as number), TypeError);
  // Stochastic steps need noise.
  const ddim = createScheduler('ddim', { eta: 1 });
  ddim.setTimesteps(10);
  assert.throws(() => ddim.step(x0, 901, x0), RangeError);
  assert.throws(() => ddim.step(x0, 901, x0, new Tensor([3])), RangeError);
  assert.throws(() => ddim.step(x0, 900.5, x0, x0), RangeError);
  assert.throws(() => ddim.step(x0, 901, x0, () => new Float32Array(3)), TypeError);
  assert.throws(() => ddim.step(x0, 901, x0, () => { throw new Error('boom'); }), /boom/);
  // A tensor works as noise too, and is what the function form hands over.
  const a = createScheduler('ddim', { eta: 1 });
  a.setTimesteps(10);
  const b = createScheduler('ddim', { eta: 1 });
  b.setTimesteps(10);
  assert.deepEqual(a.step(x0, 901, x0, noises[0]).prevSample.data, b.step(x0, 901, x0, () => noises[0]!).prevSample.data);
});

test('a finished scheduler refuses more steps instead of reading past its sigmas', () => {
  const s = createScheduler('euler');
  s.setTimesteps(2);
  let x = x0;
  for (const t of s.timesteps) x = s.step(fakeModel(x, t), t, x).prevSample;
  assert.throws(() => s.step(x, s.timesteps[1]!, x), RangeError);
});

test('a run keeps one sample size; setTimesteps starts a new run', () => {
  for (const name of SCHEDULER_NAMES) {
    const s = createScheduler(name);
    s.setTimesteps(5);
    const [t0, t1] = s.timesteps;
    const noise = (shape: number[]) => new Tensor(shape, new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5));
    s.step(fakeModel(x0, t0!), t0!, x0, noise);
    const small = new Tensor([1, 4, 4, 4], x0.data.slice(0, 64));
    assert.throws(() => s.step(fakeModel(small, t1!), t1!, small, noise), RangeError, name);
    s.setTimesteps(5);
    assert.equal(s.step(fakeModel(small, t0!), t0!, small, noise).prevSample.size, 64, name);
  }
});

test('addNoise takes one timestep per batch item', () => {
  const s = createScheduler('ddim');
  s.setTimesteps(10);
  const batch = new Tensor([2, 4, 8, 8], new Float32Array(512).fill(1));
  const noise = new Tensor([2, 4, 8, 8], new Float32Array(512).fill(0));
  const out = s.addNoise(batch, noise, [1, 901]);
  assert.ok(out.data[0]! > out.data[256]!, 'less noise (more signal) at t = 1 than at t = 901');
  assert.deepEqual(s.addNoise(batch, noise, 901).data.slice(0, 256), out.data.slice(256));
  assert.throws(() => s.addNoise(batch, noise, [1, 2, 3]), RangeError);
  assert.throws(() => s.addNoise(batch, noise, 1000), RangeError);
  assert.throws(() => s.addNoise(batch, noise, 2.5), RangeError);
  assert.throws(() => s.setBeginIndex(0), RangeError, 'ddim has no begin index');
  const e = createScheduler('euler');
  assert.throws(() => e.setBeginIndex(0), RangeError, 'before setTimesteps');
  e.setTimesteps(10);
  assert.throws(() => e.setBeginIndex(10), RangeError);
  assert.throws(() => e.addNoise(batch, noise, 500), RangeError, 'not one of the timesteps');
});

test('a step over a 512×512 latent is fast enough to run synchronously', () => {
  const shape = [1, 4, 64, 64];
  const x = new Tensor(shape, new Float32Array(4 * 64 * 64).fill(0.3));
  for (const name of ['euler', 'dpmpp_2m_karras', 'unipc', 'lms'] as const) {
    const s = createScheduler(name);
    s.setTimesteps(20);
    const start = performance.now();
    for (const t of s.timesteps) s.step(fakeModel(x, t), t, x);
    const perStep = (performance.now() - start) / s.timesteps.length;
    assert.ok(perStep < 50, `${name}: ${perStep.toFixed(2)} ms per step`);
  }
});
