// The golden tests on a Vulkan device: the text encoder, UNet, VAE and txt2img goldens that
// test/text-encoder, unet, vae and txt2img.test.ts check on the CPU, run through ggml's Vulkan
// backend (in CI: Mesa's lavapipe, a software Vulkan device that ggml uses only when
// GGML_VK_VISIBLE_DEVICES names it). Skipped, saying why, when the addon was built without
// Vulkan or no Vulkan device is present. Also: backend selection and its errors (always run).
//
// Bounds (max |ours − golden| / max |golden|, as in the CPU suites). ggml-vulkan multiplies
// matrices with f16 operands and, at ggml's default precision, f16 accumulators on devices with
// f16 arithmetic (lavapipe has it); only attention scores ask for f32. So every case gets the
// f16 bound, whatever the weights are stored in, with room for f16 accumulation over the
// tiny models' reductions (hundreds to about a thousand terms): f16 rounding (2⁻¹¹ ≈ 5e-4
// relative per operation) over such sums of mixed sign, through a few layers, stays near 1e-2
// of the output scale. Measured worst: text encoder 3.5e-3, UNet 1.2e-2, VAE 1.5e-3; the
// figures are printed with each test.
//
// Known issue (open): on lavapipe, running a graph that needs more device resources than the
// graphs before it on the same model (e.g. the text encoder on 77 tokens after 8, or the UNet
// on a new latent size) corrupts the host heap, which lavapipe's device memory lives in; the
// process aborts later ("malloc(): unsorted double linked list corrupted"). Fresh models do not
// show it, so until it is found every golden case here loads its own model; txt2img runs a
// named subset because each case takes 15–80 s on lavapipe (README, "Vulkan").
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { StableDiffusion, listDevices, systemInfo } from '../lib/index.js';
import {
  fixturePath,
  maxAbsDiff,
  pipelineGoldens,
  relativeError,
  textEncoderGoldens,
  tinyDir,
  unetGoldens,
  vaeGoldens,
} from './helpers/goldens.js';

const built = systemInfo().backends.includes('Vulkan');
const device = listDevices().find((d) => d.backend === 'Vulkan');
const skip = !built
  ? 'this addon was built without Vulkan (node scripts/build-native.mjs --vulkan)'
  : !device
    ? 'Vulkan is built but no Vulkan device is present (CPU-type devices such as lavapipe need GGML_VK_VISIBLE_DEVICES=0)'
    : false;

// CI sets SDNODE_REQUIRE_VULKAN=1 where the Vulkan build and lavapipe are installed, so that a
// broken driver setup fails there instead of passing as skipped.
test('a Vulkan device is present where one is required', { skip: process.env.SDNODE_REQUIRE_VULKAN !== '1' }, () => {
  assert.equal(skip, false, `SDNODE_REQUIRE_VULKAN=1 but ${skip}`);
});

/** f16 arithmetic on the device (see the header). */
const F16_BOUND = 3e-2;
/**
 * txt2img: the steps compound the UNet's error, so the final latents get a wider bound; images
 * lie in [0, 1], so their max |Δ| is already relative to their range and gets the f16 bound
 * (3e-2 ≈ 7.7/255; measured up to 4.1/255, SD2 v-prediction).
 */
const PIPELINE_LATENT_BOUND = 5e-2;
const PIPELINE_IMAGE_BOUND = F16_BOUND;

/**
 * txt2img on lavapipe takes 15–80 s a case, so one case per model and feature: SD1 with a batch
 * and a stochastic scheduler, SD2 v-prediction, the timestep-sensitive UNet, and injected latents.
 */
const TXT2IMG_SUBSET = [
  'sd1-diffusers/euler_a/g7.5/b2',
  'sd1-diffusers/ddim/g7.5/b1/injected',
  'sd2-v-diffusers/dpmpp_2m_karras/g7.5/b1',
  'sd1-unet-t64/pndm/g7.5/b1',
];

type Coded = Error & { code?: string };

/** What every txt2img golden case shares: prompts, size, steps and seed. */
function sharedSettings(goldens: ReturnType<typeof pipelineGoldens>) {
  const { prompt, negativePrompt, width, height, steps, seed } = goldens;
  return { prompt, negativePrompt, width, height, steps, seed };
}

const scratch = mkdtempSync(join(tmpdir(), 'sdnode-vulkan-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

async function loadOnVulkan(fixture: string, weightType?: 'f32'): Promise<StableDiffusion> {
  return StableDiffusion.load({ model: fixturePath(fixture, scratch), backend: 'vulkan', ...(weightType && { weightType }) });
}

describe('backend selection', () => {
  test('asking for a backend that is not built or has no device gives ERR_BACKEND_UNAVAILABLE listing what is available', async () => {
    const missing = ['cuda', 'vulkan'].filter((b) => !listDevices().some((d) => d.backend.toLowerCase() === b));
    for (const backend of missing) {
      await assert.rejects(StableDiffusion.load({ model: join(tinyDir, 'sd1-diffusers'), backend: backend as 'cuda' }), (e: Coded) => {
        assert.equal(e.code, 'ERR_BACKEND_UNAVAILABLE');
        assert.match(e.message, /available: .*CPU \(CPU\)/);
        const isBuilt = systemInfo().backends.some((b) => b.toLowerCase() === backend);
        assert.match(e.message, isBuilt ? /is built into this binary but no/ : new RegExp(`not built into this binary \\(build with --${backend}\\)`));
        if (device) assert.match(e.message, new RegExp(`${device.name} \\(Vulkan\\)`));
        return true;
      });
    }
  });

  test("'auto' takes CUDA, then Vulkan, then the CPU, and sd.device says which", async () => {
    const devices = listDevices();
    const expected = ['CUDA', 'Vulkan', 'CPU'].map((b) => devices.find((d) => d.backend === b)).find((d) => d !== undefined)!;
    const sd = await StableDiffusion.load({ model: join(tinyDir, 'sd1-diffusers') });
    try {
      assert.equal(sd.device.name, expected.name);
      assert.equal(sd.device.backend, expected.backend);
    } finally {
      await sd.dispose();
    }
  });
});

describe('network placement (devices)', () => {
  const model = join(tinyDir, 'sd1-diffusers');

  test('bad placements are TypeErrors and RangeErrors naming the option', async () => {
    await assert.rejects(StableDiffusion.load({ model, devices: 'cpu' as never }), /Expected options\.devices to be an object/);
    await assert.rejects(StableDiffusion.load({ model, devices: { unet: 1 as never } }), TypeError);
    await assert.rejects(StableDiffusion.load({ model, devices: { text_encoder: 'cpu' } as never }), (e: Error) => {
      assert.ok(e instanceof RangeError);
      assert.match(e.message, /textEncoder, unet, vae but received "text_encoder"/);
      return true;
    });
    await assert.rejects(StableDiffusion.load({ model, devices: { vae: ' ' } }), RangeError);
  });

  test('a device or backend that is not there gives ERR_BACKEND_UNAVAILABLE listing what is', async () => {
    await assert.rejects(StableDiffusion.load({ model, backend: 'cpu', devices: { vae: 'Vulkan7' } }), (e: Coded) => {
      assert.equal(e.code, 'ERR_BACKEND_UNAVAILABLE');
      assert.match(e.message, /Device "Vulkan7" is not available; present: .*CPU/);
      return true;
    });
    if (!listDevices().some((d) => d.backend === 'CUDA')) {
      await assert.rejects(StableDiffusion.load({ model, backend: 'cpu', devices: { unet: 'cuda' } }), (e: Coded) => {
        assert.equal(e.code, 'ERR_BACKEND_UNAVAILABLE');
        assert.match(e.message, /The cuda backend .*; available: .*CPU \(CPU\)/);
        return true;
      });
    }
  });

  test('sd.devices says where each network went; names and backends both place', async () => {
    const cpu = listDevices().find((d) => d.backend === 'CPU')!;
    const sd = await StableDiffusion.load({ model, backend: 'cpu', devices: { textEncoder: cpu.name.toLowerCase(), vae: 'cpu' } });
    try {
      for (const network of ['textEncoder', 'unet', 'vae'] as const) assert.equal(sd.devices[network].name, cpu.name);
      assert.equal(sd.device, sd.devices.unet);
      assert.equal(sd.memoryUsage().devices.length, 1);
    } finally {
      await sd.dispose();
    }
  });
});

describe('Vulkan device', { skip }, () => {
  test('listDevices() lists it with its memory; backend: vulkan loads onto it', async () => {
    assert.ok(device);
    assert.ok(device.name.startsWith('Vulkan'), device.name);
    assert.ok(device.memoryTotal > 0 && device.memoryFree > 0 && device.memoryFree <= device.memoryTotal);
    console.log(`# ${device.name}: ${device.description} (${device.type}), ${(device.memoryTotal / 2 ** 30).toFixed(1)} GiB`);
    const sd = await loadOnVulkan('sd1-diffusers');
    try {
      assert.equal(sd.device.name, device.name);
      assert.equal(sd.device.backend, 'Vulkan');
    } finally {
      await sd.dispose();
    }
  });
});

describe('UNet on Vulkan, text encoder and VAE on the CPU', { skip }, () => {
  test('each network runs where it was placed; memory is reported per device', async () => {
    const goldens = pipelineGoldens();
    const c = goldens.cases.find((g) => g.name === 'sd1-diffusers/ddim/g7.5/b1/injected')!;
    const model = fixturePath(c.fixture, scratch);
    const split = await StableDiffusion.load({ model, weightType: 'f32', backend: 'vulkan', devices: { textEncoder: 'cpu', vae: 'cpu' } });
    const cpu = await StableDiffusion.load({ model, weightType: 'f32', backend: 'cpu' });
    try {
      assert.equal(split.devices.unet.backend, 'Vulkan');
      assert.equal(split.devices.textEncoder.backend, 'CPU');
      assert.equal(split.devices.vae.backend, 'CPU');
      const result = await split.txt2img({
        ...sharedSettings(goldens),
        scheduler: c.scheduler,
        guidanceScale: c.guidanceScale,
        latents: goldens.tensor(c.injected!),
      });
      const latentError = relativeError(result.latents, goldens.tensor(c.latents));
      const imageError = maxAbsDiff(result.images!, goldens.tensor(c.image));
      console.log(`# split txt2img ${c.name}: latents ${latentError.toExponential(2)}, images ${(imageError * 255).toFixed(2)}/255`);
      assert.ok(latentError <= PIPELINE_LATENT_BOUND, `final latents: relative error ${latentError}`);
      assert.ok(imageError <= PIPELINE_IMAGE_BOUND, `images: max |Δ| ${imageError}`);

      // The CPU-placed networks give the CPU's results exactly (the Vulkan device's f16
      // arithmetic would not).
      const ids = split.tokenizer.encode(goldens.prompt);
      assert.deepEqual((await split.textEncoder.encode(ids)).data, (await cpu.textEncoder.encode(ids)).data);
      assert.deepEqual((await split.vae.decode(result.latents)).data, (await cpu.vae.decode(result.latents)).data);

      const usage = split.memoryUsage();
      assert.equal(usage.devices.length, 2);
      const onVulkan = usage.devices.find((d) => d.name === split.devices.unet.name)!;
      const onCpu = usage.devices.find((d) => d.name === split.devices.vae.name)!;
      assert.ok(onVulkan.weights.unet > 0 && onVulkan.compute.unet > 0);
      assert.deepEqual([onVulkan.weights.textEncoder, onVulkan.weights.vae, onVulkan.compute.textEncoder, onVulkan.compute.vae], [0, 0, 0, 0]);
      assert.ok(onCpu.weights.textEncoder > 0 && onCpu.weights.vae > 0 && onCpu.compute.vae > 0);
      assert.deepEqual([onCpu.weights.unet, onCpu.compute.unet], [0, 0]);
      assert.equal(usage.device.total, onVulkan.total + onCpu.total);
      assert.equal(onVulkan.total, onVulkan.weights.unet + onVulkan.compute.unet);
      assert.ok(onVulkan.peak >= onVulkan.total && onCpu.peak >= onCpu.weights.textEncoder + onCpu.weights.vae);
      assert.equal(usage.device.name, usage.devices.map((d) => d.name).join(' + '));
    } finally {
      await split.dispose();
      await cpu.dispose();
    }
  });
});

describe('text encoder goldens on Vulkan', { skip }, () => {
  const goldens = textEncoderGoldens();
  for (const fixture of ['sd1-diffusers', 'sd2-v-diffusers']) {
    test(`${fixture}: last_hidden_state within ${F16_BOUND} for every clip skip`, async () => {
      const cases = goldens.cases.filter((c) => c.fixture === fixture && c.ids?.length === 1 && c.clipSkip !== undefined);
      assert.ok(cases.length >= 10);
      let worst = 0;
      for (const c of cases) {
        const sd = await loadOnVulkan(fixture);  // one model per case: see the known issue above
        try {
          const ids = c.ids![0]!;
          const out = await sd.textEncoder.encode(ids, { clipSkip: c.clipSkip! });
          assert.deepEqual(out.shape, [1, ids.length, sd.textEncoder.hidden], c.name);
          const err = relativeError(out.data, goldens.data(c));
          assert.ok(err <= F16_BOUND, `${c.name}: error ${err} > ${F16_BOUND}`);
          worst = Math.max(worst, err);
        } finally {
          await sd.dispose();
        }
      }
      console.log(`# vulkan text encoder ${fixture}: worst ${worst.toExponential(2)} over ${cases.length} cases`);
    });
  }
});

describe('UNet goldens on Vulkan', { skip }, () => {
  const goldens = unetGoldens();
  for (const c of goldens.cases) {
    test(`${c.name} (${c.fixture}, sample [${c.sample.shape.join(', ')}]) within ${F16_BOUND}`, async () => {
      const sd = await loadOnVulkan(c.fixture);  // one model per case: see the known issue above
      try {
        const sample = goldens.tensor(c.sample);
        const context = goldens.tensor(c.context);
        let worst = 0;
        for (const out of c.outputs) {
          const err = relativeError(await sd.unet.predict(sample, out.timestep, context), goldens.tensor(out));
          assert.ok(err <= F16_BOUND, `t=${JSON.stringify(out.timestep)}: error ${err.toExponential(3)} > ${F16_BOUND}`);
          worst = Math.max(worst, err);
        }
        console.log(`# vulkan unet ${c.name}: worst ${worst.toExponential(2)}`);
      } finally {
        await sd.dispose();
      }
    });
  }
});

describe('VAE goldens on Vulkan', { skip }, () => {
  const goldens = vaeGoldens();
  for (const c of goldens.cases) {
    test(`${c.model}: ${c.op} [${c.input.shape.join(', ')}] within ${F16_BOUND}`, async () => {
      const sd = await loadOnVulkan(c.model);  // one model per case: see the known issue above
      try {
        const input = goldens.input(c);
        const ours = c.op === 'decode' ? await sd.vae.decode(input) : (await sd.vae.encodeDistribution(input)).moments;
        const err = relativeError(ours, goldens.output(c));
        console.log(`# vulkan vae ${c.model} ${c.op} [${c.input.shape.join(', ')}]: ${err.toExponential(2)}`);
        assert.ok(err <= F16_BOUND, `error ${err} > ${F16_BOUND}`);
      } finally {
        await sd.dispose();
      }
    });
  }
});

describe('txt2img goldens on Vulkan', { skip }, () => {
  const goldens = pipelineGoldens();
  const base = sharedSettings(goldens);
  test('the named subset exists in the goldens', () => {
    for (const name of TXT2IMG_SUBSET) assert.ok(goldens.cases.some((c) => c.name === name), `no txt2img golden ${name}`);
  });
  for (const c of goldens.cases.filter((c) => TXT2IMG_SUBSET.includes(c.name))) {
    test(`${c.name}: latents within ${PIPELINE_LATENT_BOUND}, images within ${PIPELINE_IMAGE_BOUND}`, async () => {
      // The same f32 weights as test/txt2img.test.ts; the device still computes in f16 (header).
      const sd = await loadOnVulkan(c.fixture, 'f32');
      try {
        const result = await sd.txt2img({
          ...base,
          scheduler: c.scheduler,
          guidanceScale: c.guidanceScale,
          batchSize: c.batchSize,
          ...(c.eta > 0 && { schedulerOptions: { eta: c.eta } }),
          ...(c.injected && { latents: goldens.tensor(c.injected) }),
        });
        const latentError = relativeError(result.latents, goldens.tensor(c.latents));
        const imageError = maxAbsDiff(result.images!, goldens.tensor(c.image));
        console.log(`# vulkan txt2img ${c.name}: latents ${latentError.toExponential(2)}, images ${(imageError * 255).toFixed(2)}/255`);
        assert.ok(latentError <= PIPELINE_LATENT_BOUND, `final latents: relative error ${latentError}`);
        assert.ok(imageError <= PIPELINE_IMAGE_BOUND, `images: max |Δ| ${imageError}`);
      } finally {
        await sd.dispose();
      }
    });
  }
});
