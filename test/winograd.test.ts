// The CPU's Winograd convolution (native/core/ops/conv2d_winograd.cpp) on every layer it can take.
// By default it runs only where a layer has enough 2×2 output tiles to pay for transforming the
// kernel (SDNODE_WINOGRAD_MIN_TILES, 64), which the tiny fixtures' small layers rarely reach;
// this file sets the minimum to 1 (read when the first graph is built), so that the UNet and
// VAE goldens, odd widths and heights included (the UNet's 12×10 case halves to 6×5 and 3×3,
// the tiled decode's 12×9 case), go through it. The F(2×2, 3×3) transforms are additions and
// halvings in F32, so the bounds are the ones the unfolding path meets.
//
// The 16 GEMMs (native/core/ops/winograd_gemm.h) work on chunks of tiles sized for L2; this file
// shrinks them to 24 tiles (SDNODE_WINOGRAD_CHUNK_BYTES), so that a layer has several chunks and
// most have a short last block of tiles. They run the best micro-kernel the CPU has; the last
// group below asks for the lower ones too (SDNODE_GEMM_KERNEL, read at each graph build), so
// that an AVX-512 machine checks its AVX2 and portable code as well.
process.env.SDNODE_WINOGRAD_MIN_TILES = '1';
process.env.SDNODE_WINOGRAD_CHUNK_BYTES = '4096';

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import { type WeightType } from '../lib/index.js';
import { withEnv } from './helpers/env.js';
import { relativeError, unetGoldens, vaeGoldens, vaeTilingGoldens } from './helpers/goldens.js';
import { cpuModels } from './helpers/models.js';

const { model, dispose } = cpuModels('winograd');
after(dispose);

// f32: the goldens' own bound; f16 as stored: the f16 bound of test/unet.test.ts.
const BOUNDS: Array<[WeightType | undefined, number]> = [
  ['f32', 1e-4],
  [undefined, 3e-3],
];

describe('Winograd convolutions on every 3×3 layer equal the goldens', () => {
  const unet = unetGoldens();
  for (const [weightType, bound] of BOUNDS) {
    for (const c of unet.cases) {
      test(`UNet ${c.name} ${weightType ?? 'f16 as stored'}`, async () => {
        const sd = await model(c.fixture, weightType);
        for (const out of c.outputs) {
          const ours = await sd.unet.predict(unet.tensor(c.sample), out.timestep, unet.tensor(c.context));
          const err = relativeError(ours, unet.tensor(out));
          assert.ok(err <= bound, `t=${JSON.stringify(out.timestep)}: error ${err.toExponential(3)} > ${bound}`);
        }
      });
    }
  }

  const vae = vaeGoldens();
  for (const c of vae.cases) {
    test(`VAE ${c.model} ${c.op} [${c.input.shape.join(', ')}]`, async () => {
      const sd = await model(c.model, 'f32');
      const input = vae.input(c);
      const ours = c.op === 'decode' ? await sd.vae.decode(input) : (await sd.vae.encodeDistribution(input)).moments;
      const err = relativeError(ours, vae.output(c));
      assert.ok(err <= 1e-4, `error ${err.toExponential(3)} > 1e-4`);
    });
  }

  const tiling = vaeTilingGoldens();
  for (const c of tiling.cases) {
    test(`VAE tiled ${c.op} [${c.input.shape.join(', ')}] in ${c.tileSize}-pixel tiles`, async () => {
      const sd = await model('sd1-diffusers', 'f32');
      const options = { tiling: true, tileSize: c.tileSize };
      const input = tiling.input(c);
      const ours = c.op === 'decode' ? await sd.vae.decode(input, options) : (await sd.vae.encodeDistribution(input, options)).moments;
      const err = relativeError(ours, tiling.output(c));
      assert.ok(err <= 1e-4, `error ${err.toExponential(3)} > 1e-4`);
    });
  }
});

describe('each GEMM micro-kernel equals the goldens', () => {
  const unet = unetGoldens();
  const vae = vaeGoldens();
  for (const kernel of ['avx2', 'portable']) {
    const withKernel = <T>(run: () => Promise<T>): Promise<T> => withEnv({ SDNODE_GEMM_KERNEL: kernel }, run);
    for (const c of unet.cases) {
      test(`${kernel}: UNet ${c.name} f32`, async () => {
        const sd = await model(c.fixture, 'f32');
        for (const out of c.outputs) {
          const ours = await withKernel(() => sd.unet.predict(unet.tensor(c.sample), out.timestep, unet.tensor(c.context)));
          const err = relativeError(ours, unet.tensor(out));
          assert.ok(err <= 1e-4, `t=${JSON.stringify(out.timestep)}: error ${err.toExponential(3)} > 1e-4`);
        }
      });
    }
    for (const c of vae.cases.filter((v) => v.op === 'decode')) {
      test(`${kernel}: VAE ${c.model} decode [${c.input.shape.join(', ')}]`, async () => {
        const sd = await model(c.model, 'f32');
        const err = relativeError(await withKernel(() => sd.vae.decode(vae.input(c))), vae.output(c));
        assert.ok(err <= 1e-4, `error ${err.toExponential(3)} > 1e-4`);
      });
    }
  }
});
