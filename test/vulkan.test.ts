// Vulkan: backend selection and network placement and their errors (always run), then the
// golden tests on a Vulkan device (test/helpers/device-goldens.ts): in CI Mesa's lavapipe, a
// software Vulkan device that ggml uses only when GGML_VK_VISIBLE_DEVICES names it. CI sets
// SDNODE_REQUIRE_VULKAN=1 where the Vulkan build and lavapipe are installed, so that a broken
// driver setup fails there instead of passing as skipped, and runs it on the prebuilt addon with
// the Vulkan package (SDNODE_EXPECT_VULKAN_PACKAGE=1 checks that the module came from there).
//
// Known issue: Mesa 22.3's lavapipe (Debian 12's, what CI installs) corrupts the host heap when
// a graph needs more device resources than the graphs before it on the same model (e.g. the
// text encoder on 77 tokens after 8, or the UNet on a new latent size); the process aborts later
// ("malloc(): unsorted double linked list corrupted"). Mesa 25.0's lavapipe does not (README,
// "Vulkan"), and fresh models do not show it, so every golden case here loads its own model;
// txt2img runs a named subset because each case takes 15–80 s on lavapipe.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { StableDiffusion, listDevices, systemInfo } from '../lib/index.js';
import { describeDeviceGoldens } from './helpers/device-goldens.js';
import { tinyDir } from './helpers/goldens.js';

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

const device = listDevices().find((d) => d.backend === 'Vulkan');

describe('backend selection', () => {
  test('asking for a backend that is not built or has no device gives ERR_BACKEND_UNAVAILABLE listing what is available', async () => {
    const missing = ['cuda', 'vulkan'].filter((b) => !listDevices().some((d) => d.backend.toLowerCase() === b));
    for (const backend of missing) {
      await assert.rejects(StableDiffusion.load({ model: join(tinyDir, 'sd1-diffusers'), backend: backend as 'cuda' }), (e: Coded) => {
        assert.equal(e.code, 'ERR_BACKEND_UNAVAILABLE');
        assert.match(e.message, /available: .*CPU \(CPU\)/);
        const info = systemInfo();
        const isLoaded = info.backends.some((b) => b.toLowerCase() === backend);
        const reason = info.gpu.find((g) => g.backend === backend)?.reason;
        if (isLoaded) assert.match(e.message, /is loaded but no/);
        else assert.ok(reason !== undefined && e.message.includes(`backend is not available: ${reason}`), `${e.message} does not say ${reason}`);
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

test('the Vulkan backend comes from the @stable-diffusion-node Vulkan package when CI asks for it', { skip: process.env.SDNODE_EXPECT_VULKAN_PACKAGE !== '1' ? 'set SDNODE_EXPECT_VULKAN_PACKAGE=1 to check' : false }, () => {
  const vulkan = systemInfo().gpu.find((g) => g.backend === 'vulkan')!;
  assert.equal(vulkan.status, 'loaded', JSON.stringify(vulkan));
  assert.match(vulkan.modulePath ?? '', /[\\/][^\\/]+-vulkan[\\/]libggml-vulkan\.so$/);
  assert.equal(systemInfo().modules.Vulkan, vulkan.modulePath);
});

describeDeviceGoldens({
  backend: 'Vulkan',
  buildFlag: '--vulkan',
  noDeviceHint: 'CPU-type devices such as lavapipe need GGML_VK_VISIBLE_DEVICES=0',
  requireEnv: 'SDNODE_REQUIRE_VULKAN',
  txt2imgSubset: TXT2IMG_SUBSET,
  modelPerCase: true, // see the known issue above
});
