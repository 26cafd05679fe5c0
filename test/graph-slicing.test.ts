// Large graphs are cut into pieces that the allocator computes one after another: the CPU
// convolution unfolds a layer, or transforms its Winograd tiles, in stripes of rows
// (native/core/ops/conv2d_unfold.cpp, conv2d_winograd.cpp) and attention computes its scores for a
// group of heads at a time (nn::attention). The tiny fixtures are far below the default sizes,
// so this file shrinks both (read when the first graph is built) and checks the VAE and UNet
// goldens, batches of 2 included, through the pieces. Winograd takes every 3×3 layer that fits
// in at most 32 stripes of one tile row each; unfolding takes the others.
process.env.SDNODE_CONV_STRIPE_BYTES = '2048';
process.env.SDNODE_ATTENTION_GROUP_BYTES = '1024';
process.env.SDNODE_WINOGRAD_MIN_TILES = '1';
// The head groups are nn::attention's, which the CPU uses only with SDNODE_ATTENTION=ggml (its
// own attention op has no score buffer to cut; test/cpu-ops.test.ts covers that one).
process.env.SDNODE_ATTENTION = 'ggml';

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import { relativeError, unetGoldens, vaeGoldens } from './helpers/goldens.js';
import { cpuModels } from './helpers/models.js';

const { model, dispose } = cpuModels('stripes');
after(dispose);

// f32 weights: the unfolded inputs stay F32, so the bounds are the f32 goldens' own.
const BOUND = 1e-4;

describe('convolutions in stripes and attention in head groups equal the goldens', () => {
  const vae = vaeGoldens();
  for (const c of vae.cases) {
    test(`VAE ${c.model} ${c.op} [${c.input.shape.join(', ')}]`, async () => {
      const sd = await model(c.model, 'f32');
      const input = vae.input(c);
      const ours = c.op === 'decode' ? await sd.vae.decode(input) : (await sd.vae.encodeDistribution(input)).moments;
      const err = relativeError(ours, vae.output(c));
      assert.ok(err <= BOUND, `error ${err.toExponential(3)} > ${BOUND}`);
    });
  }

  const unet = unetGoldens();
  for (const c of unet.cases.filter((u) => u.fixture === 'sd1-diffusers' || u.fixture === 'sd1-unet-t64')) {
    test(`UNet ${c.name} [${c.sample.shape.join(', ')}]`, async () => {
      const sd = await model(c.fixture, 'f32');
      for (const out of c.outputs) {
        const ours = await sd.unet.predict(unet.tensor(c.sample), out.timestep, unet.tensor(c.context));
        const err = relativeError(ours, unet.tensor(out));
        assert.ok(err <= BOUND, `t=${JSON.stringify(out.timestep)}: error ${err.toExponential(3)} > ${BOUND}`);
      }
    });
  }
});
