// The golden tests on a GPU backend's device: the text encoder, UNet, VAE and txt2img goldens
// that test/text-encoder, unet, vae and txt2img.test.ts check on the CPU, run through ggml's
// Vulkan or CUDA backend, plus the UNet alone on the device with the text encoder and VAE on the
// CPU. Used by test/vulkan.test.ts (Mesa's lavapipe in CI) and test/cuda.test.ts. Skipped,
// saying why, when the addon was built without the backend or no device of it is present.
//
// Bounds (max |ours − golden| / max |golden|, as in the CPU suites). ggml's GPU backends
// multiply matrices with f16 operands and, at ggml's default precision, may accumulate in f16
// (ggml-vulkan does on devices with f16 arithmetic, lavapipe among them); only attention
// scores ask for f32. So every case gets the f16 bound, whatever the weights are stored in,
// with room for f16 accumulation over the tiny models' reductions (hundreds to about a thousand
// terms): f16 rounding (2⁻¹¹ ≈ 5e-4 relative per operation) over such sums of mixed sign,
// through a few layers, stays near 1e-2 of the output scale. Measured worst on lavapipe: text
// encoder 3.5e-3, UNet 1.2e-2, VAE 1.5e-3; the figures are printed with each test.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { StableDiffusion, listDevices, systemInfo } from '../../lib/index.js';
import {
  fixturePath,
  maxAbsDiff,
  pipelineCaseOptions,
  pipelineGoldens,
  relativeError,
  textEncoderGoldens,
  unetGoldens,
  vaeGoldens,
} from './goldens.js';

/** f16 arithmetic on the device (see the header). */
export const F16_BOUND = 3e-2;
/**
 * txt2img: the steps compound the UNet's error, so the final latents get a wider bound; images
 * lie in [0, 1], so their max |Δ| is already relative to their range and gets the f16 bound
 * (3e-2 ≈ 7.7/255; measured up to 4.1/255 on lavapipe, SD2 v-prediction).
 */
export const PIPELINE_LATENT_BOUND = 5e-2;
export const PIPELINE_IMAGE_BOUND = F16_BOUND;

export interface DeviceGoldenOptions {
  /** ggml's backend name, as in listDevices() and systemInfo().backends. */
  backend: 'Vulkan' | 'CUDA';
  /** How to build it into a source build, for the skip message. */
  buildFlag: string;
  /** Why a present backend may list no device, for the skip message. */
  noDeviceHint: string;
  /** Set to '1' where the build and a device are known to be present, so a skip fails instead. */
  requireEnv: string;
  /** txt2img cases to run (by golden name); undefined runs them all. */
  txt2imgSubset?: string[];
  /** Load a fresh model for every golden case instead of one per fixture. */
  modelPerCase?: boolean;
}

export function describeDeviceGoldens(options: DeviceGoldenOptions): void {
  const { backend } = options;
  const name = backend.toLowerCase() as 'vulkan' | 'cuda';
  const info = systemInfo();
  const built = info.backends.includes(backend);
  const device = listDevices().find((d) => d.backend === backend);
  const why = info.gpu.find((g) => g.backend === name)?.reason;
  const skip = !built
    ? `no ${backend} backend is loaded (${why ?? 'not built'}; or build it in: node scripts/build-native.mjs ${options.buildFlag})`
    : !device
      ? `${backend} is built but no ${backend} device is present (${options.noDeviceHint})`
      : false;

  test(`a ${backend} device is present where one is required`, { skip: process.env[options.requireEnv] !== '1' }, () => {
    assert.equal(skip, false, `${options.requireEnv}=1 but ${skip}`);
  });

  const scratch = mkdtempSync(join(tmpdir(), `sdnode-${name}-`));
  const shared = new Map<string, StableDiffusion>();
  after(async () => {
    for (const sd of shared.values()) await sd.dispose();
    rmSync(scratch, { recursive: true, force: true });
  });

  /** Runs `use` on a model of `fixture` on the device: shared per fixture unless modelPerCase. */
  async function withModel<T>(fixture: string, weightType: 'f32' | undefined, use: (sd: StableDiffusion) => Promise<T>): Promise<T> {
    const load = () => StableDiffusion.load({ model: fixturePath(fixture, scratch), backend: name, ...(weightType && { weightType }) });
    if (options.modelPerCase) {
      const sd = await load();
      try {
        return await use(sd);
      } finally {
        await sd.dispose();
      }
    }
    const key = `${fixture}/${weightType ?? 'file'}`;
    let sd = shared.get(key);
    if (!sd) {
      sd = await load();
      shared.set(key, sd);
    }
    return use(sd);
  }

  describe(`${backend} device`, { skip }, () => {
    test(`listDevices() lists it with its memory; backend: ${name} loads onto it`, async () => {
      assert.ok(device);
      assert.ok(device.name.startsWith(backend), device.name);
      assert.ok(device.memoryTotal > 0 && device.memoryFree > 0 && device.memoryFree <= device.memoryTotal);
      console.log(`# ${device.name}: ${device.description} (${device.type}), ${(device.memoryTotal / 2 ** 30).toFixed(1)} GiB`);
      await withModel('sd1-diffusers', undefined, async (sd) => {
        assert.equal(sd.device.name, device.name);
        assert.equal(sd.device.backend, backend);
      });
    });
  });

  describe(`UNet on ${backend}, text encoder and VAE on the CPU`, { skip }, () => {
    test('each network runs where it was placed; memory is reported per device', async () => {
      const goldens = pipelineGoldens();
      const c = goldens.cases.find((g) => g.name === 'sd1-diffusers/ddim/g7.5/b1/injected')!;
      const model = fixturePath(c.fixture, scratch);
      const split = await StableDiffusion.load({ model, weightType: 'f32', backend: name, devices: { textEncoder: 'cpu', vae: 'cpu' } });
      const cpu = await StableDiffusion.load({ model, weightType: 'f32', backend: 'cpu' });
      try {
        assert.equal(split.devices.unet.backend, backend);
        assert.equal(split.devices.textEncoder.backend, 'CPU');
        assert.equal(split.devices.vae.backend, 'CPU');
        const result = await split.txt2img(pipelineCaseOptions(goldens, c));
        const latentError = relativeError(result.latents, goldens.tensor(c.latents));
        const imageError = maxAbsDiff(result.images!, goldens.tensor(c.image));
        console.log(`# split txt2img ${c.name}: latents ${latentError.toExponential(2)}, images ${(imageError * 255).toFixed(2)}/255`);
        assert.ok(latentError <= PIPELINE_LATENT_BOUND, `final latents: relative error ${latentError}`);
        assert.ok(imageError <= PIPELINE_IMAGE_BOUND, `images: max |Δ| ${imageError}`);

        // The CPU-placed networks give the CPU's results exactly (the device's f16 arithmetic
        // would not).
        const ids = split.tokenizer.encode(goldens.prompt);
        assert.deepEqual((await split.textEncoder.encode(ids)).data, (await cpu.textEncoder.encode(ids)).data);
        assert.deepEqual((await split.vae.decode(result.latents)).data, (await cpu.vae.decode(result.latents)).data);

        const usage = split.memoryUsage();
        assert.equal(usage.devices.length, 2);
        const onDevice = usage.devices.find((d) => d.name === split.devices.unet.name)!;
        const onCpu = usage.devices.find((d) => d.name === split.devices.vae.name)!;
        assert.ok(onDevice.weights.unet > 0 && onDevice.compute.unet > 0);
        assert.deepEqual([onDevice.weights.textEncoder, onDevice.weights.vae, onDevice.compute.textEncoder, onDevice.compute.vae], [0, 0, 0, 0]);
        assert.ok(onCpu.weights.textEncoder > 0 && onCpu.weights.vae > 0 && onCpu.compute.vae > 0);
        assert.deepEqual([onCpu.weights.unet, onCpu.compute.unet], [0, 0]);
        assert.equal(usage.device.total, onDevice.total + onCpu.total);
        assert.equal(onDevice.total, onDevice.weights.unet + onDevice.compute.unet);
        assert.ok(onDevice.peak >= onDevice.total && onCpu.peak >= onCpu.weights.textEncoder + onCpu.weights.vae);
        assert.equal(usage.device.name, usage.devices.map((d) => d.name).join(' + '));
      } finally {
        await split.dispose();
        await cpu.dispose();
      }
    });
  });

  describe(`text encoder goldens on ${backend}`, { skip }, () => {
    const goldens = textEncoderGoldens();
    for (const fixture of ['sd1-diffusers', 'sd2-v-diffusers']) {
      test(`${fixture}: last_hidden_state within ${F16_BOUND} for every clip skip`, async () => {
        const cases = goldens.cases.filter((c) => c.fixture === fixture && c.ids?.length === 1 && c.clipSkip !== undefined);
        assert.ok(cases.length >= 10);
        let worst = 0;
        for (const c of cases) {
          await withModel(fixture, undefined, async (sd) => {
            const ids = c.ids![0]!;
            const out = await sd.textEncoder.encode(ids, { clipSkip: c.clipSkip! });
            assert.deepEqual(out.shape, [1, ids.length, sd.textEncoder.hidden], c.name);
            const err = relativeError(out.data, goldens.data(c));
            assert.ok(err <= F16_BOUND, `${c.name}: error ${err} > ${F16_BOUND}`);
            worst = Math.max(worst, err);
          });
        }
        console.log(`# ${name} text encoder ${fixture}: worst ${worst.toExponential(2)} over ${cases.length} cases`);
      });
    }
  });

  describe(`UNet goldens on ${backend}`, { skip }, () => {
    const goldens = unetGoldens();
    for (const c of goldens.cases) {
      test(`${c.name} (${c.fixture}, sample [${c.sample.shape.join(', ')}]) within ${F16_BOUND}`, async () => {
        await withModel(c.fixture, undefined, async (sd) => {
          const sample = goldens.tensor(c.sample);
          const context = goldens.tensor(c.context);
          let worst = 0;
          for (const out of c.outputs) {
            const err = relativeError(await sd.unet.predict(sample, out.timestep, context), goldens.tensor(out));
            assert.ok(err <= F16_BOUND, `t=${JSON.stringify(out.timestep)}: error ${err.toExponential(3)} > ${F16_BOUND}`);
            worst = Math.max(worst, err);
          }
          console.log(`# ${name} unet ${c.name}: worst ${worst.toExponential(2)}`);
        });
      });
    }
  });

  describe(`VAE goldens on ${backend}`, { skip }, () => {
    const goldens = vaeGoldens();
    for (const c of goldens.cases) {
      test(`${c.model}: ${c.op} [${c.input.shape.join(', ')}] within ${F16_BOUND}`, async () => {
        await withModel(c.model, undefined, async (sd) => {
          const input = goldens.input(c);
          const ours = c.op === 'decode' ? await sd.vae.decode(input) : (await sd.vae.encodeDistribution(input)).moments;
          const err = relativeError(ours, goldens.output(c));
          console.log(`# ${name} vae ${c.model} ${c.op} [${c.input.shape.join(', ')}]: ${err.toExponential(2)}`);
          assert.ok(err <= F16_BOUND, `error ${err} > ${F16_BOUND}`);
        });
      });
    }
  });

  describe(`txt2img goldens on ${backend}`, { skip }, () => {
    const goldens = pipelineGoldens();
    const subset = options.txt2imgSubset;
    if (subset) {
      test('the named subset exists in the goldens', () => {
        for (const caseName of subset) assert.ok(goldens.cases.some((c) => c.name === caseName), `no txt2img golden ${caseName}`);
      });
    }
    for (const c of goldens.cases.filter((c) => !subset || subset.includes(c.name))) {
      test(`${c.name}: latents within ${PIPELINE_LATENT_BOUND}, images within ${PIPELINE_IMAGE_BOUND}`, async () => {
        // The same f32 weights as test/txt2img.test.ts; the device may still compute in f16 (header).
        await withModel(c.fixture, 'f32', async (sd) => {
          const result = await sd.txt2img(pipelineCaseOptions(goldens, c));
          const latentError = relativeError(result.latents, goldens.tensor(c.latents));
          const imageError = maxAbsDiff(result.images!, goldens.tensor(c.image));
          console.log(`# ${name} txt2img ${c.name}: latents ${latentError.toExponential(2)}, images ${(imageError * 255).toFixed(2)}/255`);
          assert.ok(latentError <= PIPELINE_LATENT_BOUND, `final latents: relative error ${latentError}`);
          assert.ok(imageError <= PIPELINE_IMAGE_BOUND, `images: max |Δ| ${imageError}`);
        });
      });
    }
  });
}
