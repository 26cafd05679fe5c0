// LoRA and LyCORIS against diffusers (tools/goldens/make_lora_goldens.py) on the tiny SD models:
// txt2img with a kohya LoRA at 0.8 and 0.4 and split text-encoder/UNet strengths, the same LoRA in
// PEFT names and as a .pt, LoHa, LoKr, an SD2 LoRA; f32 merged, offload (every change at run
// time), q8_0 (quantized weights at run time); the next call without LoRA equal to the base
// exactly; <lora:…> tags and loraDirs; sd.setLoras for the component networks; bad input, each
// leaving the model's outputs equal to the base's.
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  formatParameters, loraHash, networkHashes, StableDiffusion, toInfotext, type GenerationResult, type LoraSpec, type Tensor, type Txt2ImgOptions,
} from '../lib/index.js';
import { loraFixturesDir, loraGoldens, relativeError, tinyDir } from './helpers/goldens.js';

const goldens = loraGoldens();
const scratch = mkdtempSync(join(tmpdir(), 'sdnode-lora-'));
const fixture = (name: string): string => join(loraFixturesDir, name);

const settings: Txt2ImgOptions = {
  prompt: goldens.prompt,
  negativePrompt: goldens.negativePrompt,
  width: goldens.width,
  height: goldens.height,
  steps: goldens.steps,
  guidanceScale: goldens.guidanceScale,
  scheduler: goldens.scheduler,
  seed: goldens.seed,
  outputType: 'latent',
};

/** A safetensors file of float32 tensors (for hand-made bad LoRAs). */
function writeSafetensors(path: string, tensors: Record<string, { shape: number[]; data?: Float32Array }>, metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  const parts: Buffer[] = [];
  let offset = 0;
  for (const [name, { shape, data }] of Object.entries(tensors)) {
    const values = data ?? Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i) * 0.1);
    const bytes = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  if (metadata) header.__metadata__ = metadata;
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  writeFileSync(path, Buffer.concat([length, Buffer.from(json), ...parts]));
}

function assertClose(result: GenerationResult | Tensor, golden: string, bound: number): number {
  const latents = 'latents' in result ? result.latents : result;
  const error = relativeError(latents, goldens.tensor(golden));
  if (process.env.SDNODE_TEST_VERBOSE) console.log(golden, error);
  assert.ok(error <= bound, `${golden}: relative error ${error} > ${bound}`);
  return error;
}

function assertSame(a: Tensor, b: Tensor, what: string): void {
  assert.deepEqual([...a.shape], [...b.shape]);
  const differing = a.data.findIndex((v, i) => v !== b.data[i]);
  assert.equal(differing, -1, `${what}: differs at ${differing}`);
}

let sd: StableDiffusion;
let base: Tensor;  // this model's own result without LoRA (the reference for "exactly the base")
// One text-encoder and one UNet call on the base weights: a cheaper check that the weights are
// back to the base than a whole txt2img.
let baseCond: Tensor;
let baseUNet: Tensor;
const probe = { shape: [2, 4, 16, 16], data: Float32Array.from({ length: 2048 }, (_, i) => Math.cos(i * 0.37)) };

async function networkOutputs(): Promise<[Tensor, Tensor]> {
  const { cond, uncond } = await sd.encodePrompt(settings.prompt, { negativePrompt: settings.negativePrompt! });
  const context = { shape: [2, cond.shape[1]!, cond.shape[2]!], data: new Float32Array([...uncond.data, ...cond.data]) };
  return [cond, await sd.unet.predict(probe, 500, context)];
}

before(async () => {
  sd = await StableDiffusion.load({ model: join(tinyDir, 'sd1-diffusers'), backend: 'cpu', threads: 2, weightType: 'f32', loraDirs: [loraFixturesDir] });
  base = (await sd.txt2img(settings)).latents;
  assertClose(base, 'sd1/base', 1e-3);
  [baseCond, baseUNet] = await networkOutputs();
});
after(async () => {
  await sd?.dispose();
  rmSync(scratch, { recursive: true, force: true });
});

async function assertBaseAgain(what: string): Promise<void> {
  assertSame((await sd.txt2img(settings)).latents, base, `${what}: the next call without LoRA`);
}

/** The text encoder and the UNet give exactly their base outputs. */
async function assertBaseWeights(what: string): Promise<void> {
  const [cond, unet] = await networkOutputs();
  assertSame(cond, baseCond, `${what}: the text encoder`);
  assertSame(unet, baseUNet, `${what}: the UNet`);
}

describe('txt2img with a LoRA equals diffusers with it fused (f32 weights)', () => {
  const cases: [string, string, number, number][] = [
    ['sd1/kohya/0.8', 'sd1-kohya.safetensors', 0.8, 0.8],
    ['sd1/kohya/0.4', 'sd1-kohya.safetensors', 0.4, 0.4],
    ['sd1/kohya/0.8', 'sd1-peft.safetensors', 0.8, 0.8],
    ['sd1/kohya/0.4', 'sd1-peft.safetensors', 0.4, 0.4],
    ['sd1/kohya/0.8', 'sd1-kohya.pt', 0.8, 0.8],
    ['sd1/kohya/te0.5-unet1', 'sd1-kohya.safetensors', 0.5, 1],
    ['sd1/kohya/unet-only', 'sd1-kohya.safetensors', 0, 0.8],
    ['sd1/kohya/te-only', 'sd1-peft.safetensors', 0.8, 0],
    ['sd1/loha/1', 'sd1-loha.safetensors', 1, 1],
    ['sd1/lokr/1', 'sd1-lokr.safetensors', 1, 1],
  ];
  for (const [golden, file, te, unet] of cases) {
    test(`${file} text encoder ${te}, UNet ${unet} → ${golden}`, async () => {
      // The golden is far from the base: a test that ignored the LoRA would fail.
      assert.ok(goldens.case(golden).changeFromBase! > 0.05);
      const result = await sd.txt2img({ ...settings, loras: [{ path: fixture(file), textEncoderWeight: te, unetWeight: unet }] });
      assertClose(result, golden, 1e-3);
      assert.deepEqual(result.parameters.loras, [{ name: file.replace(/\.[^.]+$/, ''), path: fixture(file), textEncoderWeight: te, unetWeight: unet }]);
      if (golden === 'sd1/kohya/0.8') await assertBaseAgain(file);
      else await assertBaseWeights(file);
    });
  }

  test('the same LoRA twice in a row is applied once, and a weight change re-applies it', async () => {
    const lora = [{ path: fixture('sd1-kohya.safetensors'), weight: 0.8 }];
    assertClose(await sd.txt2img({ ...settings, loras: lora }), 'sd1/kohya/0.8', 1e-3);
    assertClose(await sd.txt2img({ ...settings, loras: lora }), 'sd1/kohya/0.8', 1e-3);
    assertClose(await sd.txt2img({ ...settings, loras: [{ path: fixture('sd1-kohya.safetensors'), weight: 0.4 }] }), 'sd1/kohya/0.4', 1e-3);
    const status = sd.loraStatus();
    assert.ok(status.merged > 0 && status.runtime === 0, JSON.stringify(status));
    await assertBaseAgain('after three LoRA calls');
    assert.equal(sd.loraStatus().merged, 0);
    assert.equal(sd.loraStatus().backupBytes, 0);
  });

  test('two files together add their changes (LoHa and LoKr)', async () => {
    // Each alone matches its golden; together the result differs from both.
    const both = await sd.txt2img({ ...settings, loras: [{ path: fixture('sd1-loha.safetensors') }, { path: fixture('sd1-lokr.safetensors') }] });
    assert.ok(relativeError(both.latents, goldens.tensor('sd1/loha/1')) > 1e-2);
    assert.ok(relativeError(both.latents, goldens.tensor('sd1/lokr/1')) > 1e-2);
    await assertBaseWeights('LoHa + LoKr');
  });

  test('SD 2.x: a kohya LoRA on the SD2 model (linear projections, v-prediction)', async () => {
    const sd2 = await StableDiffusion.load({ model: join(tinyDir, 'sd2-v-diffusers'), backend: 'cpu', threads: 2, weightType: 'f32' });
    try {
      assertClose(await sd2.txt2img(settings), 'sd2/base', 1e-3);
      assertClose(await sd2.txt2img({ ...settings, loras: [{ path: fixture('sd2-kohya.safetensors'), weight: 0.8 }] }), 'sd2/kohya/0.8', 1e-3);
    } finally {
      await sd2.dispose();
    }
  });
});

describe('prompt tags and loraDirs', () => {
  test('<lora:NAME:W> in the prompt equals the loras option; the tag stays in the parameters', async () => {
    const prompt = `${settings.prompt} <lora:sd1-kohya:0.8>`;
    const result = await sd.txt2img({ ...settings, prompt });
    assertClose(result, 'sd1/kohya/0.8', 1e-3);
    assert.equal(result.parameters.prompt, prompt);
    assert.deepEqual(result.parameters.loras, [{ name: 'sd1-kohya', path: fixture('sd1-kohya.safetensors'), textEncoderWeight: 0.8, unetWeight: 0.8 }]);
    await assertBaseAgain('a prompt tag');
  });

  test('<lora:NAME:TE:UNET>, the tag anywhere, whatever promptWeighting is', async () => {
    for (const promptWeighting of [true, false]) {
      const prompt = `a painting <lora:sd1-kohya:0.5:1> of a flooble`;
      assertClose(await sd.txt2img({ ...settings, prompt, promptWeighting }), 'sd1/kohya/te0.5-unet1', 1e-3);
    }
    // A1111's named arguments.
    assertClose(await sd.txt2img({ ...settings, prompt: `${settings.prompt}<lora:sd1-kohya:te=0.5:unet=1>` }), 'sd1/kohya/te0.5-unet1', 1e-3);
    await assertBaseWeights('TE/UNET tags');
  });

  test('{ name } looks the file up in loraDirs; subfolders count, the first folder wins', async () => {
    const dir = join(scratch, 'loras');
    mkdirSync(join(dir, 'styles'), { recursive: true });
    copyFileSync(fixture('sd1-peft.safetensors'), join(dir, 'styles', 'ink.safetensors'));
    const sd2 = await StableDiffusion.load({ model: join(tinyDir, 'sd1-diffusers'), backend: 'cpu', threads: 2, weightType: 'f32', loraDirs: [dir, loraFixturesDir] });
    try {
      assertClose(await sd2.txt2img({ ...settings, loras: [{ name: 'ink', weight: 0.4 }] }), 'sd1/kohya/0.4', 1e-3);
      assertClose(await sd2.txt2img({ ...settings, loras: [{ name: 'styles/ink', weight: 0.4 }] }), 'sd1/kohya/0.4', 1e-3);
      assertClose(await sd2.txt2img({ ...settings, prompt: `${settings.prompt} <lora:SD1-KOHYA:0.8>` }), 'sd1/kohya/0.8', 1e-3);
    } finally {
      await sd2.dispose();
    }
  });

  test('sd.encodePrompt removes tags and does not apply them', async () => {
    const plain = await sd.encodePrompt('a painting of a flooble');
    const tagged = await sd.encodePrompt('a painting of a flooble<lora:sd1-kohya:0.8>');
    assertSame(tagged.cond, plain.cond, 'cond');
  });
});

describe('sd.setLoras: the LoRAs of every call, the component networks included', () => {
  test('setLoras, then txt2img and the networks run with it; setLoras([]) restores the base', async () => {
    assert.deepEqual(sd.loras, []);
    const plainContext = await sd.encodePrompt(settings.prompt);
    const sample = plainContext.cond;
    const baseWeight = await sd.readWeight('unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight');
    await sd.setLoras([{ path: fixture('sd1-kohya.safetensors'), weight: 0.8 }]);
    try {
      assert.equal(sd.loras.length, 1);
      assertClose(await sd.txt2img(settings), 'sd1/kohya/0.8', 1e-3);
      const context = await sd.encodePrompt(settings.prompt);
      assert.ok(relativeError(context.cond, sample) > 1e-2, 'the text encoder runs with the LoRA');
      const merged = await sd.readWeight('unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight');
      assert.ok(relativeError(merged, baseWeight) > 1e-2, 'readWeight shows the merged weight');
      // A call's own LoRAs add to sd.loras.
      const both = await sd.txt2img({ ...settings, loras: [{ path: fixture('sd1-kohya.safetensors'), weight: -0.8 }] });
      assert.ok(relativeError(both.latents, base) < 1e-4, 'sd.loras + the same LoRA at -0.8 cancel out');
    } finally {
      await sd.setLoras([]);
    }
    assert.deepEqual(sd.loras, []);
    assertSame(await sd.readWeight('unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight'), baseWeight, 'weight after setLoras([])');
    assertSame((await sd.encodePrompt(settings.prompt)).cond, sample, 'text encoder after setLoras([])');
    await assertBaseAgain('setLoras([])');
  });
});

describe('run-time LoRA: offload (f32) and quantized weights (q8_0)', () => {
  test('offload: every change at run time, equal to diffusers', async () => {
    const off = await StableDiffusion.load({ model: join(tinyDir, 'sd1-diffusers'), backend: 'cpu', threads: 2, weightType: 'f32', offload: true });
    try {
      for (const [golden, file, te, unet] of [
        ['sd1/kohya/0.8', 'sd1-kohya.safetensors', 0.8, 0.8], ['sd1/kohya/te0.5-unet1', 'sd1-peft.safetensors', 0.5, 1],
        ['sd1/loha/1', 'sd1-loha.safetensors', 1, 1], ['sd1/lokr/1', 'sd1-lokr.safetensors', 1, 1],
      ] as const) {
        assertClose(await off.txt2img({ ...settings, loras: [{ path: fixture(file), textEncoderWeight: te, unetWeight: unet }] }), golden, 1e-3);
        const status = off.loraStatus();
        assert.ok(status.runtime > 0 && status.merged === 0 && status.adapterBytes > 0, JSON.stringify(status));
      }
      assertClose(await off.txt2img(settings), 'sd1/base', 1e-3);
      assert.equal(off.loraStatus().adapterBytes, 0);
    } finally {
      await off.dispose();
    }
  });

  test('q8_0: quantized weights keep their bytes and the LoRA its effect, within the q8_0 bound of the f32 golden', async () => {
    const q8 = await StableDiffusion.load({ model: join(tinyDir, 'sd1-diffusers'), backend: 'cpu', threads: 2, weightType: 'q8_0' });
    try {
      const q8Base = (await q8.txt2img(settings)).latents;
      const baseError = assertClose(q8Base, 'sd1/base', 1e-1);
      const weight = 'unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight';
      const before = await q8.readWeight(weight);
      for (const [golden, file] of [['sd1/kohya/0.8', 'sd1-kohya.safetensors'], ['sd1/loha/1', 'sd1-loha.safetensors'], ['sd1/lokr/1', 'sd1-lokr.safetensors']] as const) {
        const spec: LoraSpec = { path: fixture(file), weight: golden === 'sd1/kohya/0.8' ? 0.8 : 1 };
        const result = await q8.txt2img({ ...settings, loras: [spec] });
        const error = assertClose(result, golden, 1e-1);
        // The LoRA's effect is there: far closer to its golden than the LoRA moves the result.
        assert.ok(error < goldens.case(golden).changeFromBase! / 3, `${golden}: ${error} vs change ${goldens.case(golden).changeFromBase}`);
        const status = q8.loraStatus();
        assert.ok(status.runtime > 0, JSON.stringify(status));
      }
      await q8.setLoras([{ path: fixture('sd1-kohya.safetensors'), weight: 0.8 }]);
      assertSame(await q8.readWeight(weight), before, 'a quantized weight keeps its bytes');
      await q8.setLoras([]);
      assertSame((await q8.txt2img(settings)).latents, q8Base, 'q8_0 base after LoRAs');
      assert.ok(baseError < 1e-1);
    } finally {
      await q8.dispose();
    }
  });
});

describe('bad input: clear errors, and the model gives the base result afterwards', () => {
  const expectFailure = async (loras: LoraSpec[] | undefined, expected: RegExp | object, prompt = settings.prompt): Promise<void> => {
    await assert.rejects(sd.txt2img({ ...settings, prompt, ...(loras && { loras }) }), expected);
    await assertBaseWeights(JSON.stringify(loras ?? prompt));
  };

  test('a LoRA of another family (SD2 on SD1): ERR_LORA_INCOMPATIBLE naming the file', async () => {
    const path = fixture('sd2-kohya.safetensors');
    await expectFailure([{ path }], { code: 'ERR_LORA_INCOMPATIBLE', path, message: /sd2-kohya\.safetensors does not fit this model: .* is \[/ });
  });

  test('an SDXL LoRA: ERR_LORA_INCOMPATIBLE saying SDXL', async () => {
    const path = join(scratch, 'sdxl.safetensors');
    writeSafetensors(path, {
      'lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight': { shape: [4, 1280] },
      'lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight': { shape: [1280, 4] },
    });
    await expectFailure([{ path }], { code: 'ERR_LORA_INCOMPATIBLE', path, message: /SDXL/ });
  });

  test('wrong shapes: ERR_LORA_INCOMPATIBLE listing the layer', async () => {
    const path = join(scratch, 'wrong-shape.safetensors');
    writeSafetensors(path, {
      'lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight': { shape: [4, 32] },
      'lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight': { shape: [33, 4] },
    });
    await expectFailure([{ path }], { code: 'ERR_LORA_INCOMPATIBLE', path, message: /attn1_to_q changes \[33, 32\] but unet\.mid_block.*is \[32, 32\]/ });
  });

  test('factors that do not multiply, or half a module: ERR_LORA_FORMAT', async () => {
    const path = join(scratch, 'bad-rank.safetensors');
    writeSafetensors(path, {
      'lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight': { shape: [4, 32] },
      'lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight': { shape: [32, 3] },
    });
    await expectFailure([{ path }], { code: 'ERR_LORA_FORMAT', path });
    const half = join(scratch, 'half.safetensors');
    writeSafetensors(half, { 'lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight': { shape: [4, 32] } });
    await expectFailure([{ path: half }], { code: 'ERR_LORA_FORMAT', path: half, message: /no up matrix/ });
  });

  test('a truncated file: ERR_LORA_FORMAT', async () => {
    const path = join(scratch, 'truncated.safetensors');
    const bytes = readFileSync(fixture('sd1-kohya.safetensors'));
    writeFileSync(path, bytes.subarray(0, bytes.length >> 1));
    await expectFailure([{ path }], { code: 'ERR_LORA_FORMAT', path });
    const pt = join(scratch, 'truncated.pt');
    const ptBytes = readFileSync(fixture('sd1-kohya.pt'));
    writeFileSync(pt, ptBytes.subarray(0, ptBytes.length - 200));
    await expectFailure([{ path: pt }], { code: 'ERR_LORA_FORMAT', path: pt });
  });

  test('a pickle that is not a state dict, a file without LoRA keys, a model file: ERR_LORA_FORMAT', async () => {
    const notDict = fixture('not-a-state-dict.pt');
    await expectFailure([{ path: notDict }], { code: 'ERR_LORA_FORMAT', path: notDict });
    const plain = join(scratch, 'plain.safetensors');
    writeSafetensors(plain, { 'some.weight': { shape: [2, 2] } });
    await expectFailure([{ path: plain }], { code: 'ERR_LORA_FORMAT', path: plain, message: /holds no LoRA tensors/ });
    const model = join(tinyDir, 'sd1-ldm.safetensors');
    await expectFailure([{ path: model }], { code: 'ERR_LORA_FORMAT', path: model });
  });

  test('a LoRA whose modules name no layer of this model: ERR_LORA_INCOMPATIBLE', async () => {
    const path = join(scratch, 'nothing.safetensors');
    writeSafetensors(path, {
      'lora_unet_no_such_layer.lora_down.weight': { shape: [4, 32] },
      'lora_unet_no_such_layer.lora_up.weight': { shape: [32, 4] },
    });
    await expectFailure([{ path }], { code: 'ERR_LORA_INCOMPATIBLE', path, message: /changes no layer of this model/ });
  });

  test('a file or name that is not there: ERR_FILE_NOT_FOUND / ERR_LORA_NOT_FOUND', async () => {
    const path = join(scratch, 'missing.safetensors');
    await expectFailure([{ path }], { code: 'ERR_FILE_NOT_FOUND', path });
    await expectFailure([{ name: 'no-such-lora' }], { code: 'ERR_LORA_NOT_FOUND', message: /No LoRA named "no-such-lora"/ });
    await expectFailure(undefined, { code: 'ERR_LORA_NOT_FOUND', message: /<lora:nope:1>/ }, `${settings.prompt} <lora:nope:1>`);
  });

  test('weights that are not finite numbers: TypeError / RangeError at the edge', async () => {
    const path = fixture('sd1-kohya.safetensors');
    await expectFailure([{ path, weight: Number.NaN }], { name: 'RangeError', message: /options\.loras\[0\]\.weight to be a finite number but received NaN/ });
    await expectFailure([{ path, unetWeight: Infinity }], { name: 'RangeError' });
    await expectFailure([{ path, weight: '0.8' as unknown as number }], { name: 'TypeError' });
    await expectFailure(undefined, { name: 'TypeError', message: /weight in <lora:sd1-kohya:abc>/ }, '<lora:sd1-kohya:abc>');
    await expectFailure(undefined, { name: 'RangeError', message: /finite weight in <lora:sd1-kohya:inf>/ }, '<lora:sd1-kohya:inf>');
    await expectFailure(undefined, { name: 'RangeError', message: /finite weight/ }, '<lora:sd1-kohya:1e999>');
  });

  test('malformed options: TypeError', async () => {
    const path = fixture('sd1-kohya.safetensors');
    await expectFailure('x' as unknown as LoraSpec[], { name: 'TypeError', message: /options\.loras to be an array/ });
    await expectFailure([{ path, name: 'x' }], { name: 'TypeError', message: /either a path or a name/ });
    await expectFailure([{}], { name: 'TypeError', message: /either a path or a name/ });
    await expectFailure([{ path, strength: 1 } as LoraSpec], { name: 'TypeError', message: /^Unknown option 'strength' in options\.loras\[0\]/ });
    await assert.rejects(sd.setLoras([{ path, weight: Number.NaN }]), { name: 'RangeError' });
    await assert.rejects(StableDiffusion.load({ model: join(tinyDir, 'sd1-diffusers'), loraDirs: [join(scratch, 'none')] }), { code: 'ERR_FILE_NOT_FOUND' });
    await assert.rejects(StableDiffusion.load({ model: join(tinyDir, 'sd1-diffusers'), loraDirs: 'x' as unknown as string[] }), { name: 'TypeError' });
  });

  test('a good LoRA with a bad one: nothing is applied', async () => {
    await expectFailure([{ path: fixture('sd1-kohya.safetensors') }, { path: fixture('sd2-kohya.safetensors') }], { code: 'ERR_LORA_INCOMPATIBLE' });
  });

  test('keys that change nothing: one warning per file, the rest applies', async () => {
    const path = join(scratch, 'extra-keys.safetensors');
    const source = readFileSync(fixture('sd1-kohya.safetensors'));
    const headerLength = Number(source.readBigUInt64LE(0));
    const header = JSON.parse(source.subarray(8, 8 + headerLength).toString()) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    const tensors: Record<string, { shape: number[]; data?: Float32Array }> = {};
    for (const [name, t] of Object.entries(header)) {
      if (name === '__metadata__' || !name.startsWith('lora_unet_mid_block')) continue;
      const raw = source.subarray(8 + headerLength + t.data_offsets[0], 8 + headerLength + t.data_offsets[1]);
      const data = new Float32Array(raw.length / (t.dtype === 'F16' ? 2 : 4));
      for (let i = 0; i < data.length; i++) data[i] = t.dtype === 'F16' ? f16(raw.readUInt16LE(i * 2)) : raw.readFloatLE(i * 4);
      tensors[name] = { shape: t.shape, data };
    }
    tensors['lora_unet_mid_block_attentions_0_norm.w_norm'] = { shape: [32] };
    tensors['lora_te_no_such_module.lora_down.weight'] = { shape: [4, 16] };
    tensors['lora_te_no_such_module.lora_up.weight'] = { shape: [16, 4] };
    writeSafetensors(path, tensors);
    const warnings: Error[] = [];
    const listener = (w: Error): void => void warnings.push(w);
    process.on('warning', listener);
    try {
      const first = await sd.txt2img({ ...settings, loras: [{ path, weight: 0.8 }] });
      await sd.txt2img({ ...settings, loras: [{ path, weight: 0.4 }] });
      await new Promise((done) => setImmediate(done));
      const ours = warnings.filter((w) => (w as { code?: string }).code === 'SDNODE_LORA_UNMATCHED_KEYS');
      assert.equal(ours.length, 1);
      assert.match(ours[0]!.message, /extra-keys\.safetensors: 3 of its keys change nothing in this model and are ignored: lora_te_no_such_module/);
      assert.ok(relativeError(first.latents, base) > 1e-2, 'the matching modules apply');
    } finally {
      process.off('warning', listener);
    }
    await assertBaseWeights('a LoRA with extra keys');
  });

  test('a cancelled call still leaves the base weights for the next', async () => {
    const controller = new AbortController();
    await assert.rejects(
      sd.txt2img({ ...settings, loras: [{ path: fixture('sd1-kohya.safetensors') }], onStep: () => { controller.abort(); }, signal: controller.signal }),
      { name: 'AbortError' },
    );
    await assertBaseAgain('a cancelled LoRA call');
  });
});

describe('behaviour', () => {
  test('calls with different LoRAs at the same time each get their own', async () => {
    const [a, b, c] = await Promise.all([
      sd.txt2img({ ...settings, loras: [{ path: fixture('sd1-kohya.safetensors'), weight: 0.8 }] }),
      sd.txt2img(settings),
      sd.txt2img({ ...settings, loras: [{ path: fixture('sd1-kohya.safetensors'), weight: 0.4 }] }),
    ]);
    assertClose(a, 'sd1/kohya/0.8', 1e-3);
    assertSame(b.latents, base, 'the call without LoRA');
    assertClose(c, 'sd1/kohya/0.4', 1e-3);
  });

  test('changing LoRAs never reads the model file again', async () => {
    const folder = join(scratch, 'model');
    cpSync(join(tinyDir, 'sd1-diffusers'), folder, { recursive: true });
    const m = await StableDiffusion.load({ model: folder, backend: 'cpu', threads: 2, weightType: 'f32' });
    try {
      rmSync(folder, { recursive: true, force: true });
      assertClose(await m.txt2img({ ...settings, loras: [{ path: fixture('sd1-kohya.safetensors'), weight: 0.8 }] }), 'sd1/kohya/0.8', 1e-3);
      assertClose(await m.txt2img({ ...settings, loras: [{ path: fixture('sd1-loha.safetensors') }] }), 'sd1/loha/1', 1e-3);
      assertClose(await m.txt2img(settings), 'sd1/base', 1e-3);
    } finally {
      await m.dispose();
    }
  });

  test('sd.inspectLoras reports format and layers; the file cache follows changes on disk', async () => {
    const [kohya, peft, loha, lokr, pt] = await sd.inspectLoras([
      { path: fixture('sd1-kohya.safetensors') }, { path: fixture('sd1-peft.safetensors') }, { path: fixture('sd1-loha.safetensors') },
      { path: fixture('sd1-lokr.safetensors') }, { path: fixture('sd1-kohya.pt') },
    ]);
    assert.deepEqual([kohya!.format, peft!.format, loha!.format, lokr!.format, pt!.format], ['kohya', 'peft', 'loha', 'lokr', 'kohya']);
    assert.deepEqual([kohya!.textEncoderLayers, kohya!.unetLayers], [12, 39]);
    assert.deepEqual([peft!.textEncoderLayers, peft!.unetLayers], [12, 39]);
    assert.deepEqual(kohya!.unmatched, []);
    const path = join(scratch, 'changing.safetensors');
    copyFileSync(fixture('sd1-loha.safetensors'), path);
    assert.equal((await sd.inspectLoras([{ path }]))[0]!.format, 'loha');
    await new Promise((done) => setTimeout(done, 20));
    copyFileSync(fixture('sd1-lokr.safetensors'), path);
    assert.equal((await sd.inspectLoras([{ path }]))[0]!.format, 'lokr');
  });
});

describe('the other pipelines, the infotext and the few-step recipes', () => {
  test('img2img with a LoRA differs from img2img without; the next call is the base again', async () => {
    const image = { shape: [1, 3, 128, 128], data: Float32Array.from({ length: 3 * 128 * 128 }, (_, i) => Math.sin(i * 0.01)) };
    const o = { ...settings, image, strength: 0.6 };
    const plain = await sd.img2img(o);
    const withLora = await sd.img2img({ ...o, loras: [{ path: fixture('sd1-kohya.safetensors'), weight: 0.8 }] });
    assert.ok(relativeError(withLora.latents, plain.latents) > 1e-2);
    assertSame((await sd.img2img(o)).latents, plain.latents, 'img2img after a LoRA call');
  });

  test('the infotext: LoRAs of options.loras become prompt tags, Lora hashes as A1111 writes them', async () => {
    const result = await sd.txt2img({ ...settings, prompt: `${settings.prompt} <lora:sd1-loha:0.5>`, loras: [{ path: fixture('sd1-kohya.safetensors'), textEncoderWeight: 0.5, unetWeight: 1 }] });
    const hashes = await networkHashes(result.parameters);
    assert.deepEqual(Object.keys(hashes.loraHashes!), ['sd1-kohya', 'sd1-loha']);
    assert.equal(hashes.loraHashes!['sd1-kohya'], await loraHash(fixture('sd1-kohya.safetensors')));
    const text = formatParameters(toInfotext(result.parameters, 0, hashes));
    const [first] = text.split('\n');
    assert.equal(first, `${settings.prompt} <lora:sd1-loha:0.5> <lora:sd1-kohya:0.5:1>`);
    assert.match(text, /, Lora hashes: "sd1-kohya: [0-9a-f]{12}, sd1-loha: [0-9a-f]{12}"$/);
    // The infotext's prompt alone (with loraDirs) gives the same image.
    const again = await sd.txt2img({ ...settings, prompt: first! });
    assertSame(again.latents, result.latents, 'the infotext prompt');
  });

  test('LCM-LoRA recipe (LCM scheduler, 4 steps, guidance 1.5) equals diffusers', async () => {
    const c = goldens.case('recipe/lcm-lora') as unknown as { scheduler: string; steps: number; guidanceScale: number };
    const result = await sd.txt2img({ ...settings, scheduler: c.scheduler, steps: c.steps, guidanceScale: c.guidanceScale, loras: [{ path: fixture('sd1-kohya.safetensors') }] });
    assertClose(result, 'recipe/lcm-lora', 1e-3);
  });

  test('SD-Turbo recipe (Euler a, trailing spacing, 1 step, guidance 0) equals diffusers on the SD2 model', async () => {
    const sd2 = await StableDiffusion.load({ model: join(tinyDir, 'sd2-v-diffusers'), backend: 'cpu', threads: 2, weightType: 'f32' });
    try {
      const result = await sd2.txt2img({ ...settings, scheduler: sd2.createScheduler('euler_a', { timestepSpacing: 'trailing' }), steps: 1, guidanceScale: 0 });
      assertClose(result, 'recipe/turbo', 1e-3);
    } finally {
      await sd2.dispose();
    }
  });
});

function f16(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? Number.NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}
