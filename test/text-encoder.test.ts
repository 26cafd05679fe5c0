// sd.textEncoder.encode and sd.encodePrompt on the tiny fixtures, against goldens made by
// transformers' CLIPTextModel and diffusers' encode_prompt (tools/goldens/make_text_encoder_goldens.py).
// Error measure: max |ours − golden| / max |golden|.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { StableDiffusion, type Tensor } from '../lib/index.js';
import { native, packageRoot } from '../lib/native.js';

const tiny = join(packageRoot, 'test', 'fixtures', 'tiny');
const goldenDir = join(packageRoot, 'test', 'fixtures', 'goldens', 'text-encoder');

interface GoldenCase {
  name: string;
  shape: number[];
  offset: number;
  fixture: string;
  ids?: number[][];
  clipSkip?: number;
  prompt?: string;
  negativePrompt?: string;
  diffusersClipSkip?: number | null;
}

const index = JSON.parse(readFileSync(join(goldenDir, 'goldens.json'), 'utf8')) as { cases: GoldenCase[] };
const bin = readFileSync(join(goldenDir, 'goldens.bin'));
const goldenData = new Float32Array(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength));

function golden(name: string): { c: GoldenCase; data: Float32Array } {
  const c = index.cases.find((x) => x.name === name);
  assert.ok(c, `no golden ${name}`);
  const size = c.shape.reduce((a, b) => a * b, 1);
  return { c, data: goldenData.subarray(c.offset, c.offset + size) };
}

function relError(ours: Float32Array, ref: Float32Array): number {
  assert.equal(ours.length, ref.length);
  let diff = 0;
  let max = 0;
  for (let i = 0; i < ref.length; i++) {
    diff = Math.max(diff, Math.abs(ours[i]! - ref[i]!));
    max = Math.max(max, Math.abs(ref[i]!));
  }
  return diff / max;
}

function mean(a: Float32Array): number {
  let s = 0;
  for (const x of a) s += x;
  return s / a.length;
}

// Bounds per weightType. f32 and f16 as issue 4 asks. q8_0 (measured 1.2e-2 SD1, 1.4e-2 SD2 on
// these tiny random models: only the MLP weights have rows of whole 32-blocks, and ggml also
// quantizes their activations to q8_0): 3e-2.
const BOUNDS = { f32: 1e-4, f16: 2e-3, q8_0: 3e-2 } as const;
type Kind = keyof typeof BOUNDS;

// model file → the goldens it must match (sd1-ldm holds the same weights as sd1-diffusers).
const MODELS: [string, string][] = [
  ['sd1-diffusers', 'sd1-diffusers'],
  ['sd1-ldm.safetensors', 'sd1-diffusers'],
  ['sd1-ldm.gguf', 'sd1-diffusers'],
  ['sd2-v-diffusers', 'sd2-v-diffusers'],
  ['sd2-v-ldm.safetensors', 'sd2-v-ldm.safetensors'],
];

async function load(file: string, kind: Kind): Promise<StableDiffusion> {
  // f16: the fixtures are stored in f16 and the default load keeps the file's types.
  return StableDiffusion.load({ model: join(tiny, file), backend: 'cpu', ...(kind !== 'f16' && { weightType: kind }) });
}

for (const [file, fixture] of MODELS) {
  for (const kind of ['f32', 'f16', 'q8_0'] as const) {
    test(`${file} (${kind}): text embeddings equal transformers' within ${BOUNDS[kind]}`, async () => {
      const sd = await load(file, kind);
      try {
        const cases = index.cases.filter((c) => c.fixture === fixture && c.ids?.length === 1 && c.clipSkip !== undefined);
        assert.ok(cases.length >= 10);
        let worst = 0;
        for (const c of cases) {
          const ids = c.ids![0]!;
          const out = await sd.textEncoder.encode(ids, { clipSkip: c.clipSkip! });
          assert.deepEqual(out.shape, [1, ids.length, sd.textEncoder.hidden], c.name);
          const err = relError(out.data, golden(c.name).data);
          assert.ok(err <= BOUNDS[kind], `${c.name}: error ${err} > ${BOUNDS[kind]}`);
          worst = Math.max(worst, err);
        }
        if (process.env.SDNODE_TEST_VERBOSE) console.log(`${file} ${kind}: worst ${worst.toExponential(2)}`);
      } finally {
        await sd.dispose();
      }
    });
  }
}

describe('text encoder (sd1-diffusers, f32)', () => {
  let sd: StableDiffusion;
  before(async () => {
    sd = await load('sd1-diffusers', 'f32');
  });
  after(async () => sd.dispose());

  test('tokenizer ids → golden; Int32Array and number[] agree; an empty prompt', async () => {
    const ids = sd.tokenizer.encode('A painting of a flooble');
    assert.deepEqual(ids, golden('sd1-diffusers/flooble/skip1').c.ids![0]);
    const a = await sd.textEncoder.encode(ids);
    const b = await sd.textEncoder.encode(Int32Array.from(ids));
    assert.deepEqual(a.data, b.data);
    assert.ok(relError(a.data, golden('sd1-diffusers/flooble/skip1').data) <= 1e-4);
    // The empty prompt as diffusers pads it: bos, eos, 75 × pad.
    const empty = golden('sd1-diffusers/empty-77/skip1');
    assert.deepEqual(empty.c.ids![0], [49406, ...new Array<number>(76).fill(49407)]);
    assert.ok(relError((await sd.textEncoder.encode(empty.c.ids![0]!)).data, empty.data) <= 1e-4);
  });

  test('clip skip 2 is the penultimate layer after the final layer norm, and differs from clip skip 1', async () => {
    const ids = golden('sd1-diffusers/flooble-77/skip1').c.ids![0]!;
    const one = await sd.textEncoder.encode(ids, { clipSkip: 1 });
    const two = await sd.textEncoder.encode(ids, { clipSkip: 2 });
    assert.ok(relError(two.data, golden('sd1-diffusers/flooble-77/skip2').data) <= 1e-4);
    assert.ok(relError(one.data, two.data) > 0.1);
  });

  test('encodePrompt without weighting equals diffusers encode_prompt (with and without a negative prompt)', async () => {
    const neg = golden('sd1-diffusers/encode_prompt/neg/diffusers-skip-None/cond');
    const prompt = neg.c.prompt!;
    for (const longPrompts of ['chunks', 'truncate'] as const) {
      const r = await sd.encodePrompt(prompt, { negativePrompt: neg.c.negativePrompt!, promptWeighting: false, longPrompts });
      assert.deepEqual(r.cond.shape, [1, 77, 16]);
      assert.deepEqual(r.uncond.shape, [1, 77, 16]);
      assert.ok(relError(r.cond.data, neg.data) <= 1e-4);
      assert.ok(relError(r.uncond.data, golden('sd1-diffusers/encode_prompt/neg/diffusers-skip-None/uncond').data) <= 1e-4);
    }
    const r = await sd.encodePrompt(prompt, { promptWeighting: false });
    assert.ok(relError(r.uncond.data, golden('sd1-diffusers/encode_prompt/noneg/diffusers-skip-None/uncond').data) <= 1e-4);
    // A prompt without brackets is the same with weighting on (all weights 1).
    const weighted = await sd.encodePrompt(prompt);
    assert.deepEqual(weighted.cond.data, r.cond.data);
  });

  test('encodePrompt clipSkip 2 = diffusers clip_skip 1 (hidden_states[-2] + final_layer_norm)', async () => {
    const g = golden('sd1-diffusers/flooble-77/skip2');
    const r = await sd.encodePrompt('A painting of a flooble', { clipSkip: 2, promptWeighting: false });
    assert.ok(relError(r.cond.data, g.data) <= 1e-4);
    // A1111 skips in the negative prompt too (diffusers' encode_prompt does not).
    assert.ok(relError(r.uncond.data, golden('sd1-diffusers/empty-77/skip2').data) <= 1e-4);
  });

  test('over-long prompts: chunks → [1, 154, dim] with a padded uncond; truncate → diffusers', async () => {
    const words = ['cat', 'dog', 'tree', 'house', 'red', 'blue'];
    const long = 'a photo of ' + Array.from({ length: 90 }, (_, i) => words[i % words.length]).join(' ');  // 93 tokens
    const chunks = sd.tokenizer.tokenizePrompt(long, { weighting: false }).chunks;
    assert.equal(chunks.length, 2);
    const r = await sd.encodePrompt(long, { negativePrompt: 'blurry', promptWeighting: false });
    assert.deepEqual(r.cond.shape, [1, 154, 16]);
    assert.deepEqual(r.uncond.shape, [1, 154, 16]);
    // Each 77-token slice is that chunk encoded on its own.
    for (let i = 0; i < 2; i++) {
      const e = await sd.textEncoder.encode(chunks[i]!.ids);
      assert.ok(relError(r.cond.data.subarray(i * 77 * 16, (i + 1) * 77 * 16), e.data) <= 1e-6);
    }
    // The negative prompt's second chunk is the empty prompt's encoding (A1111's padding).
    const empty = golden('sd1-diffusers/empty-77/skip1').data;
    assert.ok(relError(r.uncond.data.subarray(77 * 16), empty) <= 1e-4);
    // Truncated: the 75 first tokens, as diffusers' tokenizer truncates.
    const t = await sd.encodePrompt(long, { longPrompts: 'truncate', promptWeighting: false });
    assert.deepEqual(t.cond.shape, [1, 77, 16]);
    assert.deepEqual(t.cond.data, (await sd.textEncoder.encode(sd.tokenizer.tokenizePrompt(long, { mode: 'truncate', weighting: false }).chunks[0]!.ids)).data);
    // The golden 77-token prompt (truncated by transformers' tokenizer) in truncate mode.
    const g = golden('sd1-diffusers/long-77/skip1');
    assert.deepEqual(g.c.ids![0]!.length, 77);
    assert.ok(relError((await sd.textEncoder.encode(g.c.ids![0]!)).data, g.data) <= 1e-4);
    // A long negative prompt pads the short prompt instead.
    const s = await sd.encodePrompt('a cat', { negativePrompt: long, promptWeighting: false });
    assert.deepEqual(s.cond.shape, [1, 154, 16]);
    assert.ok(relError(s.cond.data.subarray(77 * 16), empty) <= 1e-4);
  });

  test('many chunks (BREAK): every 77-token slice is its chunk encoded alone', async () => {
    const prompt = 'a cat BREAK a dog BREAK a tree BREAK a (house:1.3) BREAK red BREAK blue';
    const { chunks } = sd.tokenizer.tokenizePrompt(prompt);
    assert.equal(chunks.length, 6);
    const r = await sd.encodePrompt(prompt, { negativePrompt: 'blurry BREAK dark' });  // 12 chunks in all
    assert.deepEqual(r.cond.shape, [1, 6 * 77, 16]);
    assert.deepEqual(r.uncond.shape, [1, 6 * 77, 16]);
    for (let i = 0; i < 6; i++) {
      if (chunks[i]!.weights.some((w) => w !== 1)) continue;
      const e = await sd.textEncoder.encode(chunks[i]!.ids);
      assert.ok(relError(r.cond.data.subarray(i * 77 * 16, (i + 1) * 77 * 16), e.data) <= 1e-6, `chunk ${i}`);
    }
    const empty = golden('sd1-diffusers/empty-77/skip1').data;
    for (let i = 2; i < 6; i++) assert.ok(relError(r.uncond.data.subarray(i * 77 * 16, (i + 1) * 77 * 16), empty) <= 1e-4);
  });

  test("weighting: A1111's rule (multiply by token weights, restore the chunk's mean)", async () => {
    const prompt = 'a (red:1.5) cat on a [blue] mat';
    const { chunks } = sd.tokenizer.tokenizePrompt(prompt);
    assert.ok(chunks[0]!.weights.some((w) => w !== 1));
    const plain = await sd.textEncoder.encode(chunks[0]!.ids);
    const r = await sd.encodePrompt(prompt);
    // Our own reference in float64 from the unweighted encoding.
    const expected = new Float64Array(plain.data.length);
    for (let t = 0; t < 77; t++) for (let h = 0; h < 16; h++) expected[t * 16 + h] = plain.data[t * 16 + h]! * chunks[0]!.weights[t]!;
    const before = mean(plain.data);
    const afterWeights = expected.reduce((a, b) => a + b, 0) / expected.length;
    for (let i = 0; i < expected.length; i++) expected[i]! *= before / afterWeights;
    assert.ok(relError(r.cond.data, Float32Array.from(expected)) <= 1e-5);
    assert.ok(Math.abs(mean(r.cond.data) - before) <= 1e-5 * Math.abs(before) + 1e-7);
    assert.ok(relError(r.cond.data, plain.data) > 1e-3, 'weighting changes the result');
    // promptWeighting false takes the brackets literally: other tokens.
    const literal = await sd.encodePrompt(prompt, { promptWeighting: false });
    assert.notDeepEqual(literal.cond.data, r.cond.data);
  });

  test('bad ids and options: TypeError / RangeError, and the model stays usable', async () => {
    const enc = sd.textEncoder;
    await assert.rejects(enc.encode('a cat' as never), TypeError);
    await assert.rejects(enc.encode([49406, '1' as never]), TypeError);
    await assert.rejects(enc.encode([49406, 1.5]), RangeError);
    await assert.rejects(enc.encode([49406, 49408]), RangeError);
    await assert.rejects(enc.encode([-1]), RangeError);
    await assert.rejects(enc.encode([]), RangeError);
    await assert.rejects(enc.encode(new Array<number>(78).fill(0)), RangeError);
    await assert.rejects(enc.encode([49406, 49407], { clipSkip: 0 }), {
      name: 'RangeError',
      message: 'Expected integer clipSkip between 1 and 12 but received 0',
    });
    await assert.rejects(enc.encode([49406, 49407], { clipSkip: 13 }), RangeError);
    await assert.rejects(enc.encode([49406, 49407], { clipSkip: 3 }), /between 1 and 2/);  // the tiny model runs 2 layers
    await assert.rejects(enc.encode([49406, 49407], { clipSkip: '2' as never }), TypeError);
    await assert.rejects(enc.encode([49406, 49407], null as never), TypeError);
    await assert.rejects(sd.encodePrompt(5 as never), TypeError);
    await assert.rejects(sd.encodePrompt('a', { negativePrompt: 5 as never }), TypeError);
    await assert.rejects(sd.encodePrompt('a', { clipSkip: 0 }), RangeError);
    await assert.rejects(sd.encodePrompt('a', { longPrompts: 'split' as never }), RangeError);
    await assert.rejects(sd.encodePrompt('a', { promptWeighting: 'yes' as never }), TypeError);
    const g = golden('sd1-diffusers/negative-77/skip1');
    assert.ok(relError((await enc.encode(g.c.ids![0]!)).data, g.data) <= 1e-4);
  });

  test('concurrent calls give the same results; dispose() during a call lets it finish', async () => {
    const ids = golden('sd1-diffusers/flooble-77/skip1').c.ids![0]!;
    const results = await Promise.all([
      sd.textEncoder.encode(ids),
      sd.encodePrompt('a (red:1.2) cat'),
      sd.textEncoder.encode(ids),
      sd.textEncoder.encode(ids, { clipSkip: 2 }),
    ]);
    assert.deepEqual((results[0] as Tensor).data, (results[2] as Tensor).data);
    assert.ok(relError((results[3] as Tensor).data, golden('sd1-diffusers/flooble-77/skip2').data) <= 1e-4);
    const other = await load('sd1-diffusers', 'f32');
    const pending = other.textEncoder.encode(ids);
    await other.dispose();
    assert.ok(relError((await pending).data, golden('sd1-diffusers/flooble-77/skip1').data) <= 1e-4);
    await assert.rejects(other.textEncoder.encode(ids), { code: 'ERR_DISPOSED' });
    await assert.rejects(other.encodePrompt('a'), { code: 'ERR_DISPOSED' });
  });

  test('the native methods check their arguments too (no ggml assert reaches the process)', async () => {
    const addon = native() as unknown as {
      loadModel(path: string, o: { backend: string }): Promise<{
        encodeText(ids: unknown, batch?: unknown, clipSkip?: unknown): Promise<{ shape: number[]; data: Float32Array }>;
        encodePrompt(c: unknown, u: unknown, o?: unknown): Promise<{ cond: Tensor; uncond: Tensor }>;
        dispose(): void;
      }>;
    };
    const m = await addon.loadModel(join(tiny, 'sd1-diffusers'), { backend: 'cpu' });
    const call = async (f: () => Promise<unknown>) => f();
    await assert.rejects(call(() => m.encodeText(new Int32Array([49406, 49408]))), RangeError);
    await assert.rejects(call(() => m.encodeText(new Int32Array(78))), RangeError);
    await assert.rejects(call(() => m.encodeText(new Int32Array(0))), RangeError);
    await assert.rejects(call(() => m.encodeText(new Int32Array(5), 2)), RangeError);  // 5 ids are not 2 equal rows
    await assert.rejects(call(() => m.encodeText(new Int32Array(4), 0)), RangeError);
    await assert.rejects(call(() => m.encodeText(new Int32Array([1]), 1, 3)), RangeError);
    await assert.rejects(call(() => m.encodeText(new Float32Array(2))), TypeError);
    await assert.rejects(call(() => m.encodeText([1, 'a'])), TypeError);
    await assert.rejects(call(() => m.encodePrompt([{ ids: [1, 2], weights: [1, 1] }], [])), RangeError);
    await assert.rejects(call(() => m.encodePrompt([], [])), RangeError);
    await assert.rejects(call(() => m.encodePrompt('x', [])), TypeError);
    // Batched: two rows, each equal to its own encoding.
    const flooble = golden('sd1-diffusers/batch2-77/skip1');
    const two = await m.encodeText(Int32Array.from(flooble.c.ids!.flat()), 2, 1);
    assert.deepEqual(two.shape, [2, 77, 16]);
    assert.ok(relError(two.data, flooble.data) <= 2e-3);  // f16 weights
    m.dispose();
    await assert.rejects(call(() => m.encodeText(new Int32Array([1]))), { code: 'ERR_DISPOSED' });
  });
});

describe('text encoder (SD2)', () => {
  test('sd2-v-ldm.safetensors runs 2 of its 3 stored layers (SD uses the penultimate), like the folder', async () => {
    const sd = await load('sd2-v-ldm.safetensors', 'f32');
    const folder = await load('sd2-v-diffusers', 'f32');
    try {
      assert.equal(sd.textEncoder.layersUsed, 2);
      const g = golden('sd2-v-ldm.safetensors/flooble-77/skip1');
      const out = await sd.textEncoder.encode(g.c.ids![0]!);
      assert.ok(relError(out.data, g.data) <= 1e-4);
      // Not the output of the last stored layer.
      assert.ok(relError(out.data, golden('sd2-v-ldm.safetensors/flooble-77/all-layers').data) > 0.1);
      assert.deepEqual(out.data, (await folder.textEncoder.encode(g.c.ids![0]!)).data);
      // SD2 pads with "!" (id 0).
      assert.equal(sd.tokenizer.padId, 0);
      const neg = golden('sd2-v-diffusers/encode_prompt/neg/diffusers-skip-None/cond');
      const r = await sd.encodePrompt(neg.c.prompt!, { negativePrompt: neg.c.negativePrompt!, promptWeighting: false });
      assert.ok(relError(r.cond.data, neg.data) <= 1e-4);
      assert.ok(relError(r.uncond.data, golden('sd2-v-diffusers/encode_prompt/neg/diffusers-skip-None/uncond').data) <= 1e-4);
      const noneg = await folder.encodePrompt(neg.c.prompt!, { promptWeighting: false });
      assert.ok(relError(noneg.uncond.data, golden('sd2-v-diffusers/encode_prompt/noneg/diffusers-skip-None/uncond').data) <= 1e-4);
      await assert.rejects(sd.textEncoder.encode([49406], { clipSkip: 3 }), RangeError);
    } finally {
      await sd.dispose();
      await folder.dispose();
    }
  });
});
