// Our CPU ops, with each of their alternatives. The attention op (native/core/ops/attention_cpu.cpp:
// scores, softmax and the product with v per block of queries, through our own GEMM,
// native/core/ops/gemm_f32.cpp) and the norm ops (native/core/ops/norm_cpu.cpp: GroupNorm and LayerNorm
// with their affine, and the SiLU after GroupNorm, in one op each) run in every UNet and VAE
// golden of test/unet.test.ts and vae.test.ts with the best GEMM kernel this CPU has. Here the
// same f32 goldens run with each lower kernel (SDNODE_GEMM_KERNEL, read whenever a graph is
// built), so that the AVX2 and portable kernels, with their own row blocks (6 and 2 rows) and
// remainders, are checked on a machine with AVX-512 too; and with SDNODE_ATTENTION=ggml and
// SDNODE_NORM=ggml, the ggml graphs that other backends use. Query counts include 120, 30 and 9
// (the 12×10 case), so no kernel's row block divides every one; keys include 77 text tokens
// (padded to 80). The attention op's query blocks are shrunk to 8 queries here (read when the
// first graph is built), so that every head takes several blocks and a short last one.
process.env.SDNODE_ATTENTION_BLOCK_BYTES = '1024';

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import { relativeError, unetGoldens, vaeGoldens } from './helpers/goldens.js';
import { withEnv } from './helpers/env.js';
import { cpuModels } from './helpers/models.js';

const { model, dispose } = cpuModels('cpu-ops');
after(async () => {
  await dispose();
  delete process.env.SDNODE_GEMM_KERNEL;
  delete process.env.SDNODE_ATTENTION;
  delete process.env.SDNODE_NORM;
});

const SETTINGS: Array<[string, Record<string, string>]> = [
  ['AVX2 GEMM kernel', { SDNODE_GEMM_KERNEL: 'avx2' }],
  ['portable GEMM kernel', { SDNODE_GEMM_KERNEL: 'portable' }],
  ["ggml's attention graph", { SDNODE_ATTENTION: 'ggml' }],
  ["ggml's norm ops", { SDNODE_NORM: 'ggml' }],
];

for (const [label, env] of SETTINGS) {
  describe(`f32 goldens with the ${label}`, () => {
    const unet = unetGoldens();
    for (const c of unet.cases) {
      test(`UNet ${c.name}`, () =>
        withEnv(env, async () => {
          const sd = await model(c.fixture, 'f32');
          for (const out of c.outputs) {
            const ours = await sd.unet.predict(unet.tensor(c.sample), out.timestep, unet.tensor(c.context));
            const err = relativeError(ours, unet.tensor(out));
            assert.ok(err <= 1e-4, `t=${JSON.stringify(out.timestep)}: error ${err.toExponential(3)} > 1e-4`);
          }
        }));
    }
    const vae = vaeGoldens();
    for (const c of vae.cases) {
      test(`VAE ${c.model} ${c.op} [${c.input.shape.join(', ')}]`, () =>
        withEnv(env, async () => {
          const sd = await model(c.model, 'f32');
          const input = vae.input(c);
          const ours = c.op === 'decode' ? await sd.vae.decode(input) : (await sd.vae.encodeDistribution(input)).moments;
          const err = relativeError(ours, vae.output(c));
          assert.ok(err <= 1e-4, `error ${err.toExponential(3)} > 1e-4`);
        }));
    }
  });
}
