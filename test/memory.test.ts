// Low memory: VAE tiling (against diffusers' enable_tiling() and against the untiled VAE),
// offload (same results, freed device memory), compute buffers freed between networks, and the
// memory report (sd.memoryUsage()).
// Goldens: tools/goldens/make_vae_tiling_goldens.py → test/fixtures/goldens/vae-tiling/.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { StableDiffusion, Tensor } from '../lib/index.js';
import { relativeError, tinyDir, vaeTilingGoldens } from './helpers/goldens.js';

const model = join(tinyDir, 'sd1-diffusers');

const tilingGoldens = vaeTilingGoldens();

/** A seeded pseudo-random tensor in [-1, 1) (no golden needed for self-comparisons). */
function noise(shape: number[], seed: number): Tensor {
  const t = new Tensor(shape);
  let s = seed >>> 0;
  for (let i = 0; i < t.data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    t.data[i] = s / 2 ** 31 - 1;
  }
  return t;
}

describe('VAE tiling', () => {
  let sd: StableDiffusion;
  let tiled: StableDiffusion;
  before(async () => {
    sd = await StableDiffusion.load({ model, weightType: 'f32' });
    tiled = await StableDiffusion.load({ model, weightType: 'f32', vaeTiling: true, vaeTileSize: 64 });
  });
  after(async () => {
    await sd.dispose();
    await tiled.dispose();
  });

  for (const c of tilingGoldens.cases) {
    test(`${c.op} [${c.input.shape.join(', ')}] in ${c.tileSize}-pixel tiles equals diffusers' enable_tiling()`, async () => {
      const input = tilingGoldens.input(c);
      const golden = tilingGoldens.output(c);
      const options = { tiling: true, tileSize: c.tileSize };
      const ours = c.op === 'decode' ? await sd.vae.decode(input, options) : (await sd.vae.encodeDistribution(input, options)).moments;
      const error = relativeError(ours, golden);
      assert.ok(error <= 1e-4, `relative error ${error}`);
    });
  }

  test('the load option tiles by default, a call can turn it off, and small inputs are not tiled', async () => {
    assert.deepEqual({ ...tiled.vae.tiling }, { tiling: true, tileSize: 64 });
    assert.deepEqual({ ...sd.vae.tiling }, { tiling: false, tileSize: 256 });
    const latents = noise([1, 4, 12, 20], 1);
    const plain = await sd.vae.decode(latents);
    const byDefault = await tiled.vae.decode(latents);
    const explicit = await sd.vae.decode(latents, { tiling: true, tileSize: 64 });
    assert.deepEqual(byDefault.data, explicit.data);
    assert.notDeepEqual(byDefault.data, plain.data);
    assert.deepEqual((await tiled.vae.decode(latents, { tiling: false })).data, plain.data);
    // One tile covers it: exactly the untiled result.
    assert.deepEqual((await tiled.vae.decode(latents, { tileSize: 256 })).data, plain.data);
    const small = noise([1, 4, 8, 8], 2);
    assert.deepEqual((await tiled.vae.decode(small)).data, (await sd.vae.decode(small)).data);
  });

  test('tiled results stay close to the untiled ones (no seams) and bound the compute buffer', async () => {
    const latents = noise([1, 4, 24, 24], 3);
    const plain = await sd.vae.decode(latents);
    const computeUntiled = sd.memoryUsage().device.compute.vae;
    // A model of its own: the compute allocator keeps the largest buffer it has needed.
    const fresh = await StableDiffusion.load({ model, weightType: 'f32', vaeTiling: true, vaeTileSize: 128 });
    let image: Tensor;
    let computeTiled: number;
    try {
      image = await fresh.vae.decode(latents);
      computeTiled = fresh.memoryUsage().device.compute.vae;
    } finally {
      await fresh.dispose();
    }
    assert.deepEqual(image.shape, [1, 3, 192, 192]);
    // Each tile's GroupNorms see only its own pixels, so tiles differ from the whole (a lot with
    // random weights: 40% of the mean magnitude here); what tiling must not add is seams.
    let sum = 0;
    let magnitude = 0;
    for (let i = 0; i < image.size; i++) {
      sum += Math.abs(image.data[i]! - plain.data[i]!);
      magnitude += Math.abs(plain.data[i]!);
    }
    assert.ok(sum < 0.5 * magnitude, `mean |tiled − untiled| ${sum / image.size}, mean |untiled| ${magnitude / image.size}`);
    // Seam check: the step between neighbouring columns is no larger across a tile border than elsewhere.
    const columnStep = (x: number): number => {
      let s = 0;
      for (let c = 0; c < 3; c++) for (let y = 0; y < 192; y++) s += Math.abs(image.data[(c * 192 + y) * 192 + x]! - image.data[(c * 192 + y) * 192 + x - 1]!);
      return s / (3 * 192);
    };
    let typical = 0;
    for (let x = 1; x < 192; x++) typical += columnStep(x) / 191;
    // Tiles of 128 pixels keep 96 each and blend over the next 32.
    for (const border of [96, 97, 112, 127, 128]) assert.ok(columnStep(border) < 2 * typical, `column ${border}: ${columnStep(border)} vs ${typical}`);
    assert.ok(computeTiled > 0 && computeTiled * 2 < computeUntiled, `compute buffer ${computeTiled} (tiled) vs ${computeUntiled}`);

    const img = noise([1, 3, 128, 96], 4);
    const mean = await sd.vae.encode(img);
    const meanTiled = await sd.vae.encode(img, { tiling: true, tileSize: 64 });
    assert.deepEqual(meanTiled.shape, [1, 4, 16, 12]);
    let encodeDiff = 0;
    let encodeMagnitude = 0;
    for (let i = 0; i < mean.size; i++) {
      encodeDiff += Math.abs(meanTiled.data[i]! - mean.data[i]!);
      encodeMagnitude += Math.abs(mean.data[i]!);
    }
    assert.ok(encodeDiff < 0.5 * encodeMagnitude, `encode: mean |Δ| ${encodeDiff / mean.size}, mean |untiled| ${encodeMagnitude / mean.size}`);
  });

  test('tile sizes are validated', async () => {
    const latents = noise([1, 4, 8, 8], 5);
    await assert.rejects(sd.vae.decode(latents, { tileSize: 48 }), { name: 'RangeError', message: /multiple of 32/ });
    await assert.rejects(sd.vae.decode(latents, { tileSize: 16 }), RangeError);
    await assert.rejects(sd.vae.decode(latents, { tileSize: 64.5 }), RangeError);
    await assert.rejects(sd.vae.decode(latents, { tileSize: '64' as never }), TypeError);
    await assert.rejects(sd.vae.decode(latents, { tiling: 1 as never }), TypeError);
    await assert.rejects(sd.vae.decode(latents, 3 as never), TypeError);
    await assert.rejects(StableDiffusion.load({ model, vaeTileSize: 100 }), {
      name: 'RangeError',
      message: 'Expected integer options.vaeTileSize to be a multiple of 32 but received 100',
    });
  });
});

describe('offload', () => {
  let resident: StableDiffusion;
  let offloaded: StableDiffusion;
  before(async () => {
    resident = await StableDiffusion.load({ model, weightType: 'f16' });
    offloaded = await StableDiffusion.load({ model, weightType: 'f16', offload: true });
  });
  after(async () => {
    await resident.dispose();
    await offloaded.dispose();
  });

  test('nothing is on the device until used, then only the network in use', async () => {
    const all = resident.memory();
    assert.ok(all.textEncoder > 0 && all.unet > 0 && all.vae > 0);
    assert.deepEqual(offloaded.memory(), { textEncoder: 0, unet: 0, vae: 0 });

    const { cond } = await offloaded.encodePrompt('a painting of a flooble');
    let usage = offloaded.memoryUsage();
    assert.equal(usage.offload, true);
    assert.deepEqual(usage.device.weights, { textEncoder: all.textEncoder, unet: 0, vae: 0 });
    assert.ok(usage.device.compute.textEncoder > 0);

    const latents = noise([1, 4, 8, 8], 6);
    await offloaded.unet.predict(latents, 500, cond);
    usage = offloaded.memoryUsage();
    assert.deepEqual(usage.device.weights, { textEncoder: 0, unet: all.unet, vae: 0 });
    assert.equal(usage.device.compute.textEncoder, 0);
    assert.ok(usage.device.compute.unet > 0);

    await offloaded.vae.decode(latents);
    usage = offloaded.memoryUsage();
    assert.deepEqual(usage.device.weights, { textEncoder: 0, unet: 0, vae: all.vae });
    assert.deepEqual([usage.device.compute.textEncoder, usage.device.compute.unet], [0, 0]);
    assert.equal(usage.device.total, all.vae + usage.device.compute.vae);

    // The resident model holds all three at once: its peak is above the offloaded one's.
    await resident.encodePrompt('a painting of a flooble');
    await resident.unet.predict(latents, 500, cond);
    await resident.vae.decode(latents);
    const report = resident.memoryUsage();
    const full = report.device;
    assert.equal(full.weights.unet, all.unet);
    assert.ok(full.peak > usage.device.peak, `peak ${full.peak} (resident) vs ${usage.device.peak} (offload)`);
    // All three networks on one device: one per-device entry, the same as the whole.
    assert.deepEqual(report.devices, [full]);
    assert.equal(full.name, resident.device.name);
    assert.deepEqual(usage.devices, [usage.device]);
  });

  test('results are identical with offload on and off', async () => {
    const options = { prompt: 'a painting of a flooble', negativePrompt: 'blurry', width: 64, height: 64, steps: 3, seed: 7 } as const;
    const a = await resident.txt2img(options);
    const b = await offloaded.txt2img(options);
    assert.deepEqual(b.latents.data, a.latents.data);
    assert.deepEqual(b.images!.data, a.images!.data);
    // Weights read back while offloaded come from the file again, unchanged.
    await offloaded.vae.decode(noise([1, 4, 8, 8], 8));
    for (const name of ['unet.conv_in.weight', 'text_encoder.final_layer_norm.weight']) {
      assert.deepEqual((await offloaded.readWeight(name)).data, (await resident.readWeight(name)).data);
    }
    const image = noise([1, 3, 64, 64], 9);
    assert.deepEqual((await offloaded.vae.encode(image)).data, (await resident.vae.encode(image)).data);
  });

  test('concurrent calls of different networks wait for each other', async () => {
    const latents = noise([1, 4, 8, 8], 10);
    const { cond } = await resident.encodePrompt('a cat');
    const [u, v, e] = await Promise.all([
      offloaded.unet.predict(latents, 10, cond),
      offloaded.vae.decode(latents),
      offloaded.textEncoder.encode(offloaded.tokenizer.encode('a cat')),
    ]);
    assert.deepEqual(u.data, (await resident.unet.predict(latents, 10, cond)).data);
    assert.deepEqual(v.data, (await resident.vae.decode(latents)).data);
    assert.deepEqual(e.data, (await resident.textEncoder.encode(resident.tokenizer.encode('a cat'))).data);
  });
});

describe('memoryUsage', () => {
  test('without offload every network keeps its weights, but only the one that ran last its compute buffer', async () => {
    const sd = await StableDiffusion.load({ model, weightType: 'f16' });
    try {
      const weights = sd.memory();
      const { cond } = await sd.encodePrompt('a painting of a flooble');
      const latents = noise([1, 4, 8, 8], 12);
      const first = await sd.unet.predict(latents, 500, cond);
      let usage = sd.memoryUsage();
      assert.deepEqual(usage.device.weights, weights);
      assert.equal(usage.device.compute.textEncoder, 0);
      assert.ok(usage.device.compute.unet > 0);

      const decoded = await sd.vae.decode(latents);
      usage = sd.memoryUsage();
      assert.deepEqual(usage.device.weights, weights);
      assert.deepEqual([usage.device.compute.textEncoder, usage.device.compute.unet], [0, 0]);
      assert.ok(usage.device.compute.vae > 0);

      // Running again reallocates and gives the same results.
      assert.deepEqual((await sd.unet.predict(latents, 500, cond)).data, first.data);
      assert.equal(sd.memoryUsage().device.compute.vae, 0);
      assert.deepEqual((await sd.vae.decode(latents)).data, decoded.data);
    } finally {
      await sd.dispose();
    }
  });

  test('reports host and device memory with resettable peaks', async () => {
    const sd = await StableDiffusion.load({ model, weightType: 'f32' });
    try {
      const first = sd.memoryUsage({ resetPeak: true });
      const weights = sd.memory();
      assert.deepEqual(first.device.weights, weights);
      assert.deepEqual(first.device.compute, { textEncoder: 0, unet: 0, vae: 0 });
      assert.equal(first.device.total, weights.textEncoder + weights.unet + weights.vae);
      assert.equal(first.device.name, 'CPU');
      assert.equal(first.offload, false);
      if (process.platform === 'linux') {
        assert.ok(first.host.rss! > 0 && first.host.peak! >= first.host.rss!);
      } else {
        assert.equal(first.host.rss, null);
      }

      await sd.vae.decode(noise([1, 4, 16, 16], 11));
      const decoded = sd.memoryUsage({ resetPeak: true });
      assert.ok(decoded.device.compute.vae > 0);
      assert.equal(decoded.device.peak, decoded.device.total);
      // After a reset the peak starts again from what is allocated now.
      const again = sd.memoryUsage();
      assert.equal(again.device.peak, again.device.total);

      // Host: a larger decode's compute buffer (~90 MB) goes back to the system when another
      // network runs (the CPU backend frees idle networks' buffers), so the resident set falls
      // well below its peak, and a reset brings the peak down to it.
      await sd.vae.decode(noise([1, 4, 32, 32], 12));
      await sd.textEncoder.encode(sd.tokenizer.encode('a cat'));
      const released = sd.memoryUsage({ resetPeak: true });
      assert.equal(released.device.compute.vae, 0);
      if (released.host.peakReset) {
        const MiB = 2 ** 20;
        assert.ok(released.host.peak! - released.host.rss! > 32 * MiB, `peak ${released.host.peak}, now ${released.host.rss}`);
        const after = sd.memoryUsage();
        assert.ok(after.host.peak! < released.host.peak! - 32 * MiB, `peak ${after.host.peak} after a reset from ${released.host.peak}`);
      }

      assert.throws(() => sd.memoryUsage({ resetPeak: 1 as never }), TypeError);
      assert.throws(() => sd.memoryUsage(3 as never), TypeError);
    } finally {
      await sd.dispose();
    }
  });
});
