// StableDiffusion.load, sd.info, weightType at load time and convertModel, on the tiny fixtures.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import {
  convertModel,
  inspectModel,
  readCanonicalTensors,
  StableDiffusion,
  StableDiffusionError,
  Tensor,
  writeGgufFile,
} from '../lib/index.js';
import { packageRoot } from '../lib/native.js';

const tiny = join(packageRoot, 'test', 'fixtures', 'tiny');
const dir = mkdtempSync(join(tmpdir(), 'sdnode-load-'));
after(() => rmSync(dir, { recursive: true, force: true }));

type Coded = Error & { code?: string; path?: string };

/** The canonical tensors the networks read, with their source values. */
async function sourceTensors(path: string): Promise<Map<string, Tensor>> {
  const { info, tensors } = await inspectModel(path);
  const unused = new Set(info.unusedTensors);
  const names = tensors.map((t) => t.name).filter((n) => !unused.has(n));
  const values = await readCanonicalTensors(path, names);
  return new Map(names.map((n, i) => [n, values[i]!]));
}

function isLinear(name: string, shape: number[]): boolean {
  return shape.length === 2 && name.endsWith('.weight') && !name.includes('embedding') && shape[1]! % 32 === 0;
}

/** Max over 32-value blocks of (|loaded - source| - bound(block)), ≤ 0 when every block is in bound. */
function worstBlockExcess(loaded: Float32Array, source: Float32Array, bound: (amax: number) => number): number {
  let worst = -Infinity;
  for (let b = 0; b < source.length; b += 32) {
    let amax = 0;
    for (let i = b; i < b + 32; i++) amax = Math.max(amax, Math.abs(source[i]!));
    for (let i = b; i < b + 32; i++) worst = Math.max(worst, Math.abs(loaded[i]! - source[i]!) - bound(amax));
  }
  return worst;
}

test('load: sd.info says what detection found; the tokenizer pads as the model does', async () => {
  const sd1 = await StableDiffusion.load({ model: join(tiny, 'sd1-diffusers'), backend: 'cpu', threads: 1 });
  assert.equal(sd1.info.family, 'sd1');
  assert.equal(sd1.info.variant, 'base');
  assert.equal(sd1.info.predictionType, 'epsilon');
  assert.equal(sd1.info.imageSize, 512);
  assert.equal(sd1.info.layout, 'diffusers');
  assert.equal(sd1.info.vae.scalingFactor, 0.18215);
  assert.equal(sd1.tokenizer.padId, 49407);
  assert.deepEqual(sd1.tokenizer.encode('A painting of a flooble'), [49406, 320, 3086, 539, 320, 4062, 1059, 49407]);
  assert.equal(sd1.device.name, 'CPU');
  assert.equal(sd1.device.threads, 1);
  await sd1.dispose();

  const sd2 = await StableDiffusion.load({ model: join(tiny, 'sd2-v-ldm.safetensors') });
  assert.equal(sd2.info.family, 'sd2');
  assert.equal(sd2.info.predictionType, 'v_prediction');
  assert.equal(sd2.info.imageSize, 768);
  assert.equal(sd2.tokenizer.padId, 0);
  // SD2's original checkpoints store one more text layer than SD runs; it is not loaded.
  const textLayers = new Set(sd2.weights().map((w) => /^text_encoder\.encoder\.layers\.(\d+)\./.exec(w.name)?.[1]).filter(Boolean));
  assert.equal(textLayers.size, sd2.info.textEncoder.layersUsed);
  await sd2.dispose();

  const forced = await StableDiffusion.load({ model: join(tiny, 'sd2-v-ldm.safetensors'), predictionType: 'epsilon' });
  assert.equal(forced.info.predictionType, 'epsilon');
  assert.equal(forced.info.predictionTypeSource, 'option');
  await forced.dispose();
});

test('load keeps the file types by default and holds exactly the source values', async () => {
  const path = join(tiny, 'sd1-ldm.safetensors');
  const source = await sourceTensors(path);
  const sd = await StableDiffusion.load({ model: path });
  const weights = sd.weights();
  assert.deepEqual(weights.map((w) => w.name).sort(), [...source.keys()].sort());
  for (const w of weights) assert.equal(w.type, w.shape.length === 1 ? 'f32' : 'f16', w.name);
  const memory = sd.memory();
  assert.ok(memory.unet > 0 && memory.vae > 0 && memory.textEncoder > 0);
  for (const name of ['unet.conv_in.weight', 'text_encoder.embeddings.token_embedding.weight', 'vae.decoder.mid_block.attentions.0.to_q.weight']) {
    const loaded = await sd.readWeight(name);
    assert.deepEqual(loaded.shape, source.get(name)!.shape);
    assert.deepEqual(loaded.data, source.get(name)!.data);
  }
  await sd.dispose();
});

function roundToBf16(values: Float32Array): Float32Array {
  const out = Float32Array.from(values);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) bits[i] = ((bits[i]! + 0x7fff + ((bits[i]! >>> 16) & 1)) & 0xffff0000) >>> 0;
  return out;
}

test('weightType at load: f32 is exact, bf16 rounds to nearest even, q8_0 and q4_0 follow the weight-type rule within their error bounds', async () => {
  const path = join(tiny, 'sd1-diffusers');
  const source = await sourceTensors(path);

  const f32 = await StableDiffusion.load({ model: path, weightType: 'f32' });
  for (const w of f32.weights()) assert.equal(w.type, 'f32', w.name);
  const probe = 'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight';
  assert.deepEqual((await f32.readWeight(probe)).data, source.get(probe)!.data);
  await f32.dispose();

  // bf16: every tensor but the 1-D ones, each value rounded to nearest-even in the top 16 bits.
  const bf16 = await StableDiffusion.load({ model: path, weightType: 'bf16' });
  for (const w of bf16.weights()) {
    assert.equal(w.type, w.shape.length === 1 ? 'f32' : 'bf16', w.name);
    if (w.shape.length === 1) continue;
    const loaded = await bf16.readWeight(w.name);
    assert.deepEqual(loaded.data, roundToBf16(source.get(w.name)!.data), w.name);
  }
  await bf16.dispose();

  // Bounds of ggml's reference quantizers per 32-value block (amax = the block's largest |x|):
  // q8_0 rounds to amax/127 steps (error ≤ amax/254); q4_0 to amax/8 steps with the end opposite
  // the extreme clamped (error ≤ amax/8); plus f16 rounding of the block scale.
  for (const [weightType, bound] of [
    ['q8_0', (amax: number) => amax / 254 + amax * 2 ** -11],
    ['q4_0', (amax: number) => amax / 8 + amax * 2 ** -11],
  ] as const) {
    const sd = await StableDiffusion.load({ model: path, weightType });
    let quantized = 0;
    for (const w of sd.weights()) {
      const expected = w.shape.length === 1 ? 'f32' : isLinear(w.name, w.shape) ? weightType : 'f16';
      assert.equal(w.type, expected, `${w.name} ${JSON.stringify(w.shape)}`);
      if (w.type !== weightType) continue;
      quantized++;
      const loaded = await sd.readWeight(w.name);
      const excess = worstBlockExcess(loaded.data, source.get(w.name)!.data, bound);
      assert.ok(excess <= 0, `${w.name}: ${weightType} error exceeds the bound by ${excess}`);
      assert.notDeepEqual(loaded.data, source.get(w.name)!.data, `${w.name} was not quantized`);
    }
    assert.ok(quantized >= 20, `only ${quantized} tensors quantized`);
    await sd.dispose();
  }
});

test('convertModel: safetensors → GGUF f16 loads to the source values and the same info', async () => {
  for (const name of ['sd1-ldm.safetensors', 'sd2-v-ldm.safetensors', 'sd1-inpaint-ldm.ckpt', 'sd2-depth-ldm.safetensors']) {
    const input = join(tiny, name);
    const output = join(dir, `${name}.f16.gguf`);
    const result = await convertModel(input, output, { weightType: 'f16' });
    assert.ok(result.bytes > 0 && result.tensors > 0);
    const source = await sourceTensors(input);
    const [from, to] = [await StableDiffusion.load({ model: input }), await StableDiffusion.load({ model: output })];
    for (const key of ['family', 'variant', 'predictionType', 'imageSize', 'contextDim'] as const) {
      assert.equal(to.info[key], from.info[key], `${name}: ${key}`);
    }
    assert.equal(to.info.layout, 'canonical');
    assert.equal(to.info.format, 'gguf');
    assert.deepEqual(to.info.unet, from.info.unet);
    // Only the text layers SD runs are written: SD2's unused last layer is dropped.
    assert.deepEqual(to.info.textEncoder, { ...from.info.textEncoder, layers: from.info.textEncoder.layersUsed });
    const converted = await sourceTensors(output);
    assert.deepEqual([...converted.keys()].sort(), [...source.keys()].sort());
    for (const [tensorName, tensor] of source) {
      assert.deepEqual(converted.get(tensorName)!.shape, tensor.shape, tensorName);
      assert.deepEqual(converted.get(tensorName)!.data, tensor.data, tensorName);
    }
    await from.dispose();
    await to.dispose();
  }
});

test('convertModel to bf16 stores what a bf16 load gives, and it generates close to f32', async () => {
  const input = join(tiny, 'sd1-ldm.gguf');
  const output = join(dir, 'sd1.bf16.gguf');
  await convertModel(input, output, { weightType: 'bf16' });
  const fromFile = await StableDiffusion.load({ model: output });
  const atLoad = await StableDiffusion.load({ model: input, weightType: 'bf16' });
  const f32 = await StableDiffusion.load({ model: input, weightType: 'f32' });
  assert.deepEqual(fromFile.weights(), atLoad.weights());
  const options = { prompt: 'a red cube', steps: 2, seed: 7, width: 64, height: 64 };
  const [a, b, reference] = await Promise.all([fromFile, atLoad, f32].map((sd) => sd.txt2img(options)));
  assert.deepEqual(a!.latents.data, b!.latents.data);
  // bf16 keeps 8 significant bits: close to f32, but not equal to it.
  let worst = 0;
  for (let i = 0; i < reference!.latents.size; i++) worst = Math.max(worst, Math.abs(a!.latents.data[i]! - reference!.latents.data[i]!));
  assert.ok(worst > 0 && worst < 0.5, `bf16 vs f32 latents differ by ${worst}`);
  for (const sd of [fromFile, atLoad, f32]) await sd.dispose();
});

test('convertModel to q8_0 stores what a q8_0 load gives, bit for bit', async () => {
  const input = join(tiny, 'sd1-ldm.gguf');
  const output = join(dir, 'sd1.q8_0.gguf');
  await convertModel(input, output, { weightType: 'q8_0' });
  const fromFile = await StableDiffusion.load({ model: output });
  const atLoad = await StableDiffusion.load({ model: input, weightType: 'q8_0' });
  assert.deepEqual(fromFile.weights(), atLoad.weights());
  for (const w of fromFile.weights().filter((w) => w.type === 'q8_0').slice(0, 10)) {
    assert.deepEqual((await fromFile.readWeight(w.name)).data, (await atLoad.readWeight(w.name)).data, w.name);
  }
  await fromFile.dispose();
  await atLoad.dispose();
});

test('convertModel over its own input, and over a file another model reads with offload, harms neither', async () => {
  // The output is written beside the path and renamed into place: the input is read whole, and a
  // model that maps the old file keeps the old file's data.
  const source = join(dir, 'self.gguf');
  copyFileSync(join(tiny, 'sd1-ldm.gguf'), source);
  const held = await StableDiffusion.load({ model: source, offload: true });
  const options = { prompt: 'a red cube', steps: 2, seed: 7, width: 64, height: 64 };
  const before = await held.txt2img(options);
  const fresh = join(dir, 'self.fresh.q8_0.gguf');
  await convertModel(source, fresh, { weightType: 'q8_0' });
  await convertModel(source, source, { weightType: 'q8_0' });
  assert.ok(readFileSync(source).equals(readFileSync(fresh)), 'converting onto the input gave other bytes than to a new file');
  assert.deepEqual(readdirSync(dir).filter((name) => name.includes('.sdnode-partial-')), []);
  const again = await held.txt2img(options);
  assert.deepEqual(again.latents.data, before.latents.data);
  await held.dispose();
});

test('a separate VAE file replaces the model\'s own', async () => {
  const model = join(tiny, 'sd1-diffusers');
  const { tensors } = await inspectModel(model);
  const vaeNames = tensors.map((t) => t.name).filter((n) => n.startsWith('vae.'));
  const values = await readCanonicalTensors(model, vaeNames);
  const doubled = values.map((t) => new Tensor(t.shape, t.data.map((x) => 2 * x)));
  const vaePath = join(dir, 'vae.gguf');
  await writeGgufFile(vaePath, vaeNames.map((name, i) => ({ name, tensor: doubled[i]!, type: 'f32' as const })));
  const sd = await StableDiffusion.load({ model, vae: vaePath });
  const probe = 'vae.decoder.conv_out.weight';
  assert.deepEqual((await sd.readWeight(probe)).data, doubled[vaeNames.indexOf(probe)]!.data);
  await sd.dispose();
});

test('load errors are coded, name the file, and leave the package usable', async () => {
  const missing = join(dir, 'no-such-model.safetensors');
  await assert.rejects(StableDiffusion.load({ model: missing }), (e: Coded) => {
    assert.equal(e.code, 'ERR_FILE_NOT_FOUND');
    assert.equal(e.path, missing);
    return true;
  });
  await assert.rejects(StableDiffusion.load({ model: join(tiny, 'sd1-diffusers'), backend: 'cuda' }), (e: Coded) => {
    assert.equal(e.code, 'ERR_BACKEND_UNAVAILABLE');
    assert.match(e.message, /available: .*CPU/);
    return true;
  });
  await assert.rejects(StableDiffusion.load({ model: join(tiny, 'sd1-diffusers'), vaeTileSize: 100 }), RangeError);
  await assert.rejects(StableDiffusion.load({ model: join(tiny, 'sd1-diffusers'), offload: 'yes' as never }), TypeError);
  await assert.rejects(StableDiffusion.load({ model: 'x', vae: '' }), RangeError);
  await assert.rejects(convertModel(join(tiny, 'sd1-diffusers'), join(dir, 'x.gguf'), { weightType: 'q3_k' as never }), RangeError);
  await assert.rejects(convertModel(join(tiny, 'sd1-diffusers'), 42 as never), TypeError);
  await assert.rejects(convertModel(missing, join(dir, 'y.gguf')), { code: 'ERR_FILE_NOT_FOUND' });

  const sd = await StableDiffusion.load({ model: join(tiny, 'sd1-diffusers') });
  assert.equal(sd.info.family, 'sd1');
  await sd.dispose();
  assert.throws(() => sd.weights(), (e: StableDiffusionError) => e.code === 'ERR_DISPOSED');
  await assert.rejects(sd.readWeight('unet.conv_in.weight'), { code: 'ERR_DISPOSED' });
});

test('dispose: disposed, [Symbol.asyncDispose] and await using; calls afterwards give ERR_DISPOSED', async () => {
  const model = join(tiny, 'sd1-diffusers');
  const sd = await StableDiffusion.load({ model });
  assert.equal(sd.disposed, false);
  assert.ok(sd.weights().length > 0);
  await sd[Symbol.asyncDispose]();
  assert.equal(sd.disposed, true);
  assert.throws(() => sd.weights(), { code: 'ERR_DISPOSED' });
  assert.throws(() => sd.memoryUsage(), { code: 'ERR_DISPOSED' });
  await assert.rejects(sd.encodePrompt('a'), { code: 'ERR_DISPOSED' });
  await assert.rejects(sd.txt2img({ prompt: 'a', steps: 1 }), { code: 'ERR_DISPOSED' });
  await assert.rejects(sd.unet.predict(new Tensor([1, 4, 8, 8]), 1, new Tensor([1, 77, 16])), { code: 'ERR_DISPOSED' });
  await sd.dispose(); // again: nothing to do
  await sd[Symbol.asyncDispose]();
  assert.equal(sd.disposed, true);

  let scoped: StableDiffusion | undefined;
  {
    await using inner = await StableDiffusion.load({ model });
    scoped = inner;
    assert.equal(inner.disposed, false);
  }
  assert.equal(scoped.disposed, true);
  assert.throws(() => scoped.weights(), { code: 'ERR_DISPOSED' });
});

