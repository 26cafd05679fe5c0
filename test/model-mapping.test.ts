// Name mapping and detection on the tiny models of test/fixtures/tiny (written by
// tools/goldens/make_tiny_models.py, which checks its own LDM mapping against diffusers'
// from_single_file). The same model in three layouts must give the same canonical tensors, bit
// for bit; detection must be right for every fixture; broken models must be refused with a code.
// Variants of the fixtures (missing or extra tensors, a wrong shape, a folder without weights)
// are written here, so that no Python is needed.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { inspectModel, readCanonicalTensor, readCanonicalTensors, writeGgufFile } from '../lib/index.js';
import type { ModelInspection, Tensor } from '../lib/index.js';
import { packageRoot } from '../lib/native.js';

const tiny = join(packageRoot, 'test', 'fixtures', 'tiny');
const fixture = (name: string) => join(tiny, name);
const dir = mkdtempSync(join(tmpdir(), 'sdnode-model-mapping-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// --- safetensors, rewritten in place of Python ---------------------------------------------

interface StEntry {
  name: string;
  dtype: string;
  shape: number[];
  bytes: Buffer;
}

function readSafetensors(path: string): { entries: StEntry[]; metadata?: Record<string, string> } {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const data = buf.subarray(8 + n);
  const entries: StEntry[] = [];
  let metadata: Record<string, string> | undefined;
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = value as Record<string, string>;
      continue;
    }
    const { dtype, shape, data_offsets } = value as { dtype: string; shape: number[]; data_offsets: [number, number] };
    entries.push({ name, dtype, shape, bytes: data.subarray(data_offsets[0], data_offsets[1]) });
  }
  return { entries, metadata };
}

function writeSafetensors(path: string, entries: StEntry[], metadata?: Record<string, string>): string {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.length] };
    offset += e.bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  writeFileSync(path, Buffer.concat([size, Buffer.from(json), ...entries.map((e) => e.bytes)]));
  return path;
}

/** A copy of the sd1 single file, changed by `edit`. */
function editedSd1(name: string, edit: (entries: StEntry[]) => StEntry[]): string {
  const { entries, metadata } = readSafetensors(fixture('sd1-ldm.safetensors'));
  return writeSafetensors(join(dir, name), edit(entries), metadata);
}

async function rejectsWith(promise: Promise<unknown>, code: string, check: (e: Error & { code?: string; path?: string }) => void) {
  await assert.rejects(promise, (e: Error & { code?: string; path?: string }) => {
    assert.equal(e.code, code, e.message);
    check(e);
    return true;
  });
}

const byName = (m: ModelInspection) => new Map(m.tensors.map((t) => [t.name, t]));

// --- the same model in three layouts ----------------------------------------------------------

describe('sd1 in its three layouts', () => {
  const layouts = ['sd1-diffusers', 'sd1-ldm.safetensors', 'sd1-ldm.gguf'];

  test('maps to the same canonical names and shapes', async () => {
    const [folder, single, gguf] = await Promise.all(layouts.map((f) => inspectModel(fixture(f))));
    assert.equal(folder!.info.layout, 'diffusers');
    assert.equal(single!.info.layout, 'ldm');
    assert.equal(gguf!.info.layout, 'ldm');
    assert.equal(gguf!.info.format, 'gguf');
    const names = [...byName(folder!).keys()].sort();
    assert.ok(names.length > 900, `${names.length} tensors`);
    for (const other of [single!, gguf!]) {
      assert.deepEqual([...byName(other).keys()].sort(), names);
      for (const t of folder!.tensors) assert.deepEqual(byName(other).get(t.name)!.shape, t.shape, t.name);
    }
    // Every tensor is one the networks read, and the prefixes are the three components.
    for (const m of [folder!, single!, gguf!]) assert.deepEqual(m.info.unusedTensors, []);
    assert.ok(names.every((n) => /^(unet|vae|text_encoder)\./.test(n)));
    assert.ok(names.includes('text_encoder.embeddings.token_embedding.weight'));
    assert.ok(names.includes('vae.encoder.mid_block.attentions.0.to_q.weight'));
    assert.ok(names.includes('unet.up_blocks.1.upsamplers.0.conv.weight'));
    assert.deepEqual(byName(single!).get('vae.decoder.mid_block.attentions.0.to_out.0.weight')!.shape, [64, 64]);
    // The diffusers folder holds F16, the GGUF F32 biases (as stable-diffusion.cpp's converter
    // leaves them).
    assert.equal(byName(folder!).get('unet.conv_in.bias')!.type, 'f16');
    assert.equal(byName(gguf!).get('unet.conv_in.bias')!.type, 'f32');
  });

  test('holds the same values, bit for bit', async () => {
    const folder = await inspectModel(fixture(layouts[0]!));
    const names = folder.tensors.map((t) => t.name);
    const [a, b, c] = await Promise.all(layouts.map((f) => readCanonicalTensors(fixture(f), names)));
    const bytes = (x: Tensor) => Buffer.from(x.data.buffer, x.data.byteOffset, x.data.byteLength);
    names.forEach((name, i) => {
      assert.deepEqual(a![i]!.shape, folder.tensors[i]!.shape);
      assert.ok(bytes(a![i]!).equals(bytes(b![i]!)), `${name}: safetensors single file differs`);
      assert.ok(bytes(a![i]!).equals(bytes(c![i]!)), `${name}: GGUF differs`);
    });
  });
});

describe('sd2: original OpenCLIP checkpoint vs diffusers folder', () => {
  test('fused in_proj splits into the folder q/k/v; the unused last text layer is extra', async () => {
    const [folder, single] = await Promise.all([
      inspectModel(fixture('sd2-v-diffusers')),
      inspectModel(fixture('sd2-v-ldm.safetensors')),
    ]);
    const folderNames = new Set(folder.tensors.map((t) => t.name));
    const extra = single.tensors.map((t) => t.name).filter((n) => !folderNames.has(n));
    assert.ok(extra.length > 0 && extra.every((n) => n.startsWith('text_encoder.encoder.layers.2.')), extra.join(', '));
    assert.deepEqual([...single.info.unusedTensors].sort(), [...extra].sort());
    const names = folder.tensors.map((t) => t.name);
    const [a, b] = await Promise.all([
      readCanonicalTensors(fixture('sd2-v-diffusers'), names),
      readCanonicalTensors(fixture('sd2-v-ldm.safetensors'), names),
    ]);
    names.forEach((name, i) => {
      assert.deepEqual(b[i]!.shape, a[i]!.shape, name);
      assert.deepEqual(b[i]!.data, a[i]!.data, name);
    });
  });
});

describe('canonical names in GGUF (what our converter writes)', () => {
  async function rewrite(source: string, name: string, metadata?: Record<string, string>) {
    const { tensors } = await inspectModel(source);
    const names = tensors.map((t) => t.name);
    const data = await readCanonicalTensors(source, names);
    const path = join(dir, name);
    await writeGgufFile(path, names.map((n, i) => ({ name: n, tensor: data[i]! })), { type: 'f16', metadata });
    return { path, names, data };
  }

  test('sdnode.* metadata is read back', async () => {
    const { path, names, data } = await rewrite(fixture('sd2-v-ldm.safetensors'), 'sd2-canonical.gguf', {
      'sdnode.family': 'sd2',
      'sdnode.variant': 'base',
      'sdnode.prediction_type': 'epsilon',
      'sdnode.image_size': '512',
      'sdnode.unet.heads': '2,2,2,2',
      'sdnode.text_encoder.layers_used': '2',
    });
    const { info, tensors } = await inspectModel(path);
    assert.deepEqual([info.layout, info.format, info.family, info.predictionType, info.imageSize], ['canonical', 'gguf', 'sd2', 'epsilon', 512]);
    assert.equal(info.predictionTypeSource, 'metadata sdnode.prediction_type');
    assert.deepEqual(info.unet.heads, [2, 2, 2, 2]);
    assert.deepEqual([info.textEncoder.layers, info.textEncoder.layersUsed], [3, 2]);
    assert.deepEqual(tensors.map((t) => t.name).sort(), [...names].sort());
    const back = await readCanonicalTensors(path, names);
    names.forEach((n, i) => assert.deepEqual(back[i]!.data, data[i]!.data, n));
  });

  test('without metadata, detection falls back to the structure', async () => {
    const { path } = await rewrite(fixture('sd1-ldm.safetensors'), 'sd1-canonical.gguf');
    const { info } = await inspectModel(path);
    assert.deepEqual(
      [info.layout, info.family, info.variant, info.predictionType, info.imageSize, info.unet.heads, info.textEncoder.heads],
      ['canonical', 'sd1', 'base', 'epsilon', 512, [8, 8, 8, 8], 2],
    );
  });
});

// --- detection -------------------------------------------------------------------------------

describe('detection', () => {
  const cases = [
    // fixture, family, variant, prediction type, image size, context dim, layout, format, text layers stored/used
    ['sd1-diffusers', 'sd1', 'base', 'epsilon', 512, 16, 'diffusers', 'safetensors', 2, 2],
    ['sd1-ldm.safetensors', 'sd1', 'base', 'epsilon', 512, 16, 'ldm', 'safetensors', 2, 2],
    ['sd1-ldm.gguf', 'sd1', 'base', 'epsilon', 512, 16, 'ldm', 'gguf', 2, 2],
    ['sd2-v-diffusers', 'sd2', 'base', 'v_prediction', 768, 8, 'diffusers', 'safetensors', 2, 2],
    ['sd2-eps-diffusers', 'sd2', 'base', 'epsilon', 512, 8, 'diffusers', 'safetensors', 2, 2],
    ['sd2-v-ldm.safetensors', 'sd2', 'base', 'v_prediction', 768, 8, 'ldm', 'safetensors', 3, 2],
    ['sd1-inpaint-ldm.ckpt', 'sd1', 'inpaint', 'epsilon', 512, 8, 'ldm', 'checkpoint', 2, 2],
    ['sd2-depth-ldm.safetensors', 'sd2', 'depth', 'epsilon', 512, 8, 'ldm', 'safetensors', 3, 2],
  ] as const;
  for (const [name, family, variant, prediction, size, context, layout, format, stored, used] of cases) {
    test(name, async () => {
      const { info } = await inspectModel(fixture(name));
      assert.deepEqual(
        [info.family, info.variant, info.predictionType, info.imageSize, info.contextDim, info.layout, info.format],
        [family, variant, prediction, size, context, layout, format],
      );
      assert.equal(info.textEncoder.layers, stored);
      assert.equal(info.textEncoder.layersUsed, used);
      assert.equal(info.unet.inChannels, { base: 4, inpaint: 9, depth: 5 }[variant]);
      assert.equal(info.unet.layersPerBlock, 2);
      assert.deepEqual(info.unet.crossAttention, [true, true, true, false]);
      assert.deepEqual(info.unet.blockChannels, [32, 32, 32, 32]);
      assert.equal(info.unet.linearProjection, family === 'sd2');
      // SD1: 8 heads; SD2: head dimension 64, or 8 below 64 channels (test models).
      assert.deepEqual(info.unet.heads, family === 'sd1' ? [8, 8, 8, 8] : [4, 4, 4, 4]);
      assert.equal(info.textEncoder.activation, family === 'sd1' ? 'quick_gelu' : 'gelu');
      assert.equal(info.textEncoder.padToken, family === 'sd1' ? '<|endoftext|>' : '!');
      assert.equal(info.textEncoder.heads, info.textEncoder.hidden / 8);
      assert.equal(info.textEncoder.vocabSize, 49408);
      assert.equal(info.textEncoder.maxPositions, 77);
      assert.equal(info.vae.latentChannels, 4);
      assert.equal(info.vae.scalingFactor, 0.18215);
      assert.deepEqual(info.vae.blockChannels, name.startsWith('sd1-') && variant === 'base' ? [32, 32, 32, 64] : [32, 32, 32, 32]);
    });
  }

  test('matches what the fixture generator recorded', async () => {
    const manifest = JSON.parse(readFileSync(fixture('manifest.json'), 'utf8')) as {
      fixtures: Record<string, { family: string; variant: string; prediction_type: string; image_size: number; unet: { attention_heads: number[] } }>;
    };
    for (const [name, expected] of Object.entries(manifest.fixtures)) {
      const { info } = await inspectModel(fixture(name));
      assert.deepEqual(
        [info.family, info.variant, info.predictionType, info.imageSize, info.unet.heads],
        [expected.family, expected.variant, expected.prediction_type, expected.image_size, expected.unet.attention_heads],
        name,
      );
    }
  });

  test('says where the prediction type came from', async () => {
    assert.equal((await inspectModel(fixture('sd2-v-diffusers'))).info.predictionTypeSource, 'scheduler config');
    assert.equal((await inspectModel(fixture('sd1-diffusers'))).info.predictionTypeSource, 'scheduler config (default)');
    assert.match((await inspectModel(fixture('sd2-v-ldm.safetensors'))).info.predictionTypeSource, /^heuristic/);
  });

  test('an explicit predictionType always wins', async () => {
    const a = await inspectModel(fixture('sd2-v-diffusers'), { predictionType: 'epsilon' });
    assert.equal(a.info.predictionType, 'epsilon');
    assert.equal(a.info.predictionTypeSource, 'option');
    const b = await inspectModel(fixture('sd2-v-ldm.safetensors'), { predictionType: 'epsilon' });
    assert.equal(b.info.predictionType, 'epsilon');
    assert.equal(b.info.imageSize, 512);
    const c = await inspectModel(fixture('sd1-ldm.safetensors'), { predictionType: 'v_prediction' });
    assert.equal(c.info.predictionType, 'v_prediction');
  });

  test('file metadata decides the prediction type of a single file', async () => {
    const { entries } = readSafetensors(fixture('sd2-v-ldm.safetensors'));
    const eps = writeSafetensors(join(dir, 'sd2-modelspec.safetensors'), entries, { 'modelspec.prediction_type': 'epsilon' });
    const { info } = await inspectModel(eps);
    assert.equal(info.predictionType, 'epsilon');
    assert.equal(info.predictionTypeSource, 'metadata modelspec.prediction_type');
    assert.equal(info.imageSize, 512);
    const marked = editedSd1('sd1-vpred.safetensors', (e) => [
      ...e,
      { name: 'v_pred', dtype: 'F32', shape: [0], bytes: Buffer.alloc(0) },
    ]);
    assert.equal((await inspectModel(marked)).info.predictionType, 'v_prediction');
  });
});

// --- extra and missing tensors ------------------------------------------------------------------

describe('extra and missing tensors', () => {
  test('EMA copies, optimizer-like and unknown keys are ignored', async () => {
    const base = await inspectModel(fixture('sd1-ldm.safetensors'));
    const path = editedSd1('sd1-ema.safetensors', (entries) => {
      const ema = entries
        .filter((e) => e.name.startsWith('model.diffusion_model.'))
        .map((e) => ({ ...e, name: 'model_ema.' + e.name.slice('model.'.length).replaceAll('.', '') }));
      const scalar = Buffer.alloc(4);
      scalar.writeFloatLE(0.9999);
      return [
        ...entries,
        ...ema,
        { name: 'model_ema.decay', dtype: 'F32', shape: [], bytes: scalar },
        { name: 'cond_stage_model.transformer.text_model.embeddings.extra_buffer', dtype: 'F32', shape: [1], bytes: scalar },
        { name: 'lr_scheduler.last_epoch', dtype: 'F32', shape: [1], bytes: scalar },
      ];
    });
    const withEma = await inspectModel(path);
    assert.deepEqual(withEma.tensors, base.tensors);
    assert.ok(withEma.info.ignoredTensors > base.info.ignoredTensors + 600, String(withEma.info.ignoredTensors));
    // The inpainting checkpoint is a training checkpoint with EMA entries too.
    assert.ok((await inspectModel(fixture('sd1-inpaint-ldm.ckpt'))).info.ignoredTensors >= 5);
  });

  test('missing tensors: ERR_MODEL_INCOMPLETE naming them, in both namings, and the file', async () => {
    const dropped = [
      'model.diffusion_model.input_blocks.1.1.proj_in.weight',
      'first_stage_model.decoder.mid.attn_1.q.weight',
      'cond_stage_model.transformer.text_model.final_layer_norm.bias',
    ];
    const path = editedSd1('sd1-missing.safetensors', (e) => e.filter((t) => !dropped.includes(t.name)));
    await rejectsWith(inspectModel(path), 'ERR_MODEL_INCOMPLETE', (e) => {
      assert.equal(e.path, path);
      assert.ok(e.message.includes(path), e.message);
      assert.match(e.message, /3 tensors are missing/);
      assert.ok(e.message.includes('unet.down_blocks.0.attentions.0.proj_in.weight (model.diffusion_model.input_blocks.1.1.proj_in.weight)'), e.message);
      assert.ok(e.message.includes('vae.decoder.mid_block.attentions.0.to_q.weight (first_stage_model.decoder.mid.attn_1.q.weight)'), e.message);
      assert.ok(e.message.includes('text_encoder.final_layer_norm.bias'), e.message);
    });
  });

  test('a whole component missing from a diffusers folder', async () => {
    const folder = join(dir, 'sd1-no-vae');
    cpSync(fixture('sd1-diffusers'), folder, { recursive: true });
    rmSync(join(folder, 'vae'), { recursive: true });
    await rejectsWith(inspectModel(folder), 'ERR_MODEL_INCOMPLETE', (e) => {
      assert.equal(e.path, folder);
      assert.match(e.message, /vae\.encoder\.conv_in\.weight/);
    });
  });

  test('text_encoder keys with or without "text_model." (transformers before and after 5.6)', async () => {
    const folder = join(dir, 'sd1-flat-text');
    cpSync(fixture('sd1-diffusers'), folder, { recursive: true });
    const file = join(folder, 'text_encoder', 'model.safetensors');
    const { entries, metadata } = readSafetensors(file);
    assert.ok(entries.every((e) => e.name.startsWith('text_model.')));
    const positions = Buffer.alloc(77 * 8);
    for (let i = 0; i < 77; i++) positions.writeBigInt64LE(BigInt(i), i * 8);
    writeSafetensors(file, [
      ...entries.map((e) => ({ ...e, name: e.name.slice('text_model.'.length) })),
      { name: 'embeddings.position_ids', dtype: 'I64', shape: [1, 77], bytes: positions },
    ], metadata);
    const [a, b] = await Promise.all([inspectModel(fixture('sd1-diffusers')), inspectModel(folder)]);
    assert.deepEqual(b.tensors, a.tensors);
    assert.equal(b.info.ignoredTensors, 1);
  });

  test('a diffusers folder without safetensors weights says so', async () => {
    const folder = join(dir, 'sd1-flax');
    cpSync(fixture('sd1-diffusers'), folder, { recursive: true });
    rmSync(join(folder, 'unet', 'diffusion_pytorch_model.safetensors'));
    writeFileSync(join(folder, 'unet', 'flax_diffusion_pytorch_model.msgpack'), 'x');
    await rejectsWith(inspectModel(folder), 'ERR_MODEL_FORMAT', (e) => {
      assert.equal(e.path, join(folder, 'unet'));
      assert.match(e.message, /diffusion_pytorch_model\.safetensors/);
      assert.match(e.message, /convert them to safetensors/);
    });
  });

  test('a tensor with the wrong shape: ERR_MODEL_FORMAT naming it', async () => {
    const name = 'model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight';
    const path = editedSd1('sd1-shape.safetensors', (e) => e.map((t) => (t.name === name ? { ...t, shape: [16, 64] } : t)));
    await rejectsWith(inspectModel(path), 'ERR_MODEL_FORMAT', (e) => {
      assert.equal(e.path, path);
      assert.ok(e.message.includes(name), e.message);
      assert.match(e.message, /\[16, 64\], expected \[32, 32\]/);
    });
  });

  test('files that are not SD models', async () => {
    const unetOnly = fixture('sd1-diffusers/unet/diffusion_pytorch_model.safetensors');
    await rejectsWith(inspectModel(unetOnly), 'ERR_MODEL_FORMAT', (e) => {
      assert.equal(e.path, unetOnly);
      assert.match(e.message, /one component of a diffusers folder/);
    });
    const vaeOnly = editedSd1('vae-only.safetensors', (e) => e.filter((t) => t.name.startsWith('first_stage_model.')));
    await rejectsWith(inspectModel(vaeOnly), 'ERR_MODEL_FORMAT', (e) => assert.match(e.message, /VAE on its own/));
    const notAFolder = join(dir, 'empty-folder');
    cpSync(fixture('sd1-diffusers/scheduler'), notAFolder, { recursive: true });
    await rejectsWith(inspectModel(notAFolder), 'ERR_MODEL_FORMAT', (e) => assert.match(e.message, /not a diffusers pipeline/));
    await rejectsWith(inspectModel(join(dir, 'nothing-here.safetensors')), 'ERR_FILE_NOT_FOUND', () => {});
    const sdxl = editedSd1('sdxl-like.safetensors', (e) => [
      ...e,
      { ...e[0]!, name: 'conditioner.embedders.1.model.positional_embedding' },
    ]);
    await rejectsWith(inspectModel(sdxl), 'ERR_MODEL_FORMAT', (e) => assert.match(e.message, /SDXL/));
  });

  test('UNets with other input channels are refused', async () => {
    const path = editedSd1('sd1-8ch.safetensors', (e) =>
      e.map((t) =>
        t.name === 'model.diffusion_model.input_blocks.0.0.weight'
          ? { ...t, shape: [32, 8, 3, 3], bytes: Buffer.alloc(32 * 8 * 9 * 2) }
          : t,
      ),
    );
    await rejectsWith(inspectModel(path), 'ERR_MODEL_FORMAT', (e) => assert.match(e.message, /8 input channels is not supported/));
  });
});

// --- the JS surface ----------------------------------------------------------------------------

describe('inspectModel and readCanonicalTensor arguments', () => {
  test('wrong types and values', async () => {
    await assert.rejects(inspectModel(42 as unknown as string), TypeError);
    await assert.rejects(inspectModel(''), RangeError);
    await assert.rejects(inspectModel('a\0b'), TypeError);
    await assert.rejects(inspectModel(fixture('sd1-diffusers'), null as unknown as object), TypeError);
    await assert.rejects(inspectModel(fixture('sd1-diffusers'), { predictionType: 'sample' as 'epsilon' }), RangeError);
    await assert.rejects(readCanonicalTensor(fixture('sd1-diffusers'), 7 as unknown as string), TypeError);
    await assert.rejects(readCanonicalTensors(fixture('sd1-diffusers'), 'unet' as unknown as string[]), TypeError);
  });

  test('an unknown canonical name', async () => {
    await rejectsWith(readCanonicalTensor(fixture('sd1-ldm.safetensors'), 'unet.nope.weight'), 'ERR_TENSOR_NOT_FOUND', (e) =>
      assert.equal(e.path, fixture('sd1-ldm.safetensors')),
    );
  });
});
