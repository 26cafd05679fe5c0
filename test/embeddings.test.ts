// Textual-inversion embeddings against diffusers (tools/goldens/make_lora_goldens.py): an A1111
// .pt of 2 vectors and a diffusers learned_embeds file, found in embeddingDirs and triggered by
// their file names, encode as diffusers' encode_prompt after load_textual_inversion; the A1111
// safetensors layout; embeddings of another width skipped with one warning; the infotext's TI
// hashes; bad input.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { embeddingHash, networkHashes, readEmbeddingFile, StableDiffusion, toInfotext, formatParameters } from '../lib/index.js';
import { loraFixturesDir, loraGoldens, relativeError, tinyDir } from './helpers/goldens.js';

const goldens = loraGoldens();
const scratch = mkdtempSync(join(tmpdir(), 'sdnode-ti-'));
const dir = join(scratch, 'embeddings');
const fixture = (name: string): string => join(loraFixturesDir, name);

let sd: StableDiffusion;
const warnings: Error[] = [];
const listener = (w: Error): void => void warnings.push(w);

before(async () => {
  mkdirSync(dir, { recursive: true });
  for (const f of ['tinystyle.pt', 'cattoy.safetensors', 'wide.pt', 'not-a-state-dict.pt']) copyFileSync(fixture(f), join(dir, f));
  process.on('warning', listener);
  sd = await StableDiffusion.load({ model: join(tinyDir, 'sd1-diffusers'), backend: 'cpu', threads: 2, weightType: 'f32', embeddingDirs: [dir] });
  await new Promise((done) => setImmediate(done));
  process.off('warning', listener);
});
after(async () => {
  await sd?.dispose();
  rmSync(scratch, { recursive: true, force: true });
});

describe('textual inversion equals diffusers (encode_prompt after load_textual_inversion)', () => {
  test('the embeddings found, by file name; the one of another width and the unreadable one skipped with one warning', () => {
    assert.deepEqual(sd.embeddings.map((e) => [e.name, e.vectors]), [['cattoy', 1], ['tinystyle', 2]]);
    const ours = warnings.filter((w) => (w as { code?: string }).code === 'SDNODE_EMBEDDINGS_SKIPPED');
    assert.equal(ours.length, 1);
    assert.match(ours[0]!.message, /2 embeddings skipped: not-a-state-dict \(.*\); wide \(its vectors are 8 wide and this model's text encoder is 16 wide\)/);
  });

  test('skippedEmbeddings lists the files left out with their reason, and the vectors when readable', () => {
    assert.deepEqual(sd.skippedEmbeddings.map((s) => [s.name, s.vectors, s.width]), [['not-a-state-dict', undefined, undefined], ['wide', 1, 8]]);
    assert.match(sd.skippedEmbeddings[0]!.reason, /not-a-state-dict/);
  });

  test('reloadEmbeddings reads embeddingDirs again: a file added is used, one removed is gone', async () => {
    const before = await sd.encodePrompt('a painting of tinystyle2', { promptWeighting: false });
    copyFileSync(fixture('tinystyle2.safetensors'), join(dir, 'tinystyle2.safetensors'));
    await sd.reloadEmbeddings();
    try {
      assert.deepEqual(sd.embeddings.map((e) => e.name), ['cattoy', 'tinystyle', 'tinystyle2']);
      const after = await sd.encodePrompt('a painting of tinystyle2', { promptWeighting: false });
      assert.notDeepEqual(after.cond.data, before.cond.data);
    } finally {
      rmSync(join(dir, 'tinystyle2.safetensors'));
      await sd.reloadEmbeddings();
    }
    assert.deepEqual(sd.embeddings.map((e) => e.name), ['cattoy', 'tinystyle']);
    assert.deepEqual((await sd.encodePrompt('a painting of tinystyle2', { promptWeighting: false })).cond.data, before.cond.data);
  });

  for (const [prompt, negative] of [['a painting of tinystyle', 'blurry'], ['cattoy on a table, tinystyle', 'cattoy']] as const) {
    test(`"${prompt}" / "${negative}"`, async () => {
      const cond = goldens.tensor(`ti/${prompt}/cond`);
      const uncond = goldens.tensor(`ti/${prompt}/uncond`);
      const e = await sd.encodePrompt(prompt, { negativePrompt: negative, promptWeighting: false });
      assert.ok(relativeError(e.cond, cond) <= 1e-4, `cond ${relativeError(e.cond, cond)}`);
      assert.ok(relativeError(e.uncond, uncond) <= 1e-4, `uncond ${relativeError(e.uncond, uncond)}`);
      // Without the embeddings the same prompt encodes far from the golden: the test sees them.
      const plain = await StableDiffusion.load({ model: join(tinyDir, 'sd1-diffusers'), backend: 'cpu', threads: 2, weightType: 'f32' });
      try {
        const p = await plain.encodePrompt(prompt, { negativePrompt: negative, promptWeighting: false });
        assert.ok(relativeError(p.cond, cond) > 1e-2);
      } finally {
        await plain.dispose();
      }
    });
  }

  test('the A1111 safetensors layout (emb_params) reads the same vectors as the .pt', async () => {
    const pt = await readEmbeddingFile(fixture('tinystyle.pt'));
    const st = await readEmbeddingFile(fixture('tinystyle2.safetensors'));
    assert.deepEqual(pt.shape, [2, 16]);
    assert.deepEqual([...st.data], [...pt.data]);
    assert.deepEqual((await readEmbeddingFile(fixture('cattoy.safetensors'))).shape, [1, 16]);
  });

  test('weighting and long prompts: an embedding in a weighted group, and one that would straddle a chunk moves to the next', async () => {
    const weighted = await sd.encodePrompt('a painting of (tinystyle:1.2)');
    const plain = await sd.encodePrompt('a painting of tinystyle');
    assert.ok(relativeError(weighted.cond, plain.cond) > 1e-3);
    // 74 tokens, then the 2 vectors of tinystyle: they start the second chunk.
    const filler = Array.from({ length: 74 }, () => 'a').join(' ');
    const chunks = sd.tokenizer.tokenizePromptWithEmbeddings(`${filler} tinystyle`, { mode: 'chunks', weighting: true, padId: 49407 }, [
      { tokens: sd.tokenizer.encode('tinystyle').slice(1, -1), firstId: 49408, count: 2 },
    ]).chunks;
    assert.equal(chunks.length, 2);
    assert.deepEqual(chunks[1]!.ids.slice(0, 4), [49406, 49408, 49409, 49407]);
    const long = await sd.encodePrompt(`${filler} tinystyle`);
    assert.deepEqual(long.cond.shape, [1, 154, 16]);
  });

  test('pipelines record the embeddings used; the infotext carries TI hashes', async () => {
    const result = await sd.txt2img({ prompt: 'cattoy on a table', negativePrompt: 'tinystyle', width: 64, height: 64, steps: 1, outputType: 'latent' });
    assert.deepEqual(result.parameters.embeddings, [{ name: 'cattoy', path: join(dir, 'cattoy.safetensors') }, { name: 'tinystyle', path: join(dir, 'tinystyle.pt') }]);
    const hashes = await networkHashes(result.parameters);
    assert.equal(hashes.embeddingHashes!.cattoy, await embeddingHash(join(dir, 'cattoy.safetensors')));
    assert.match(hashes.embeddingHashes!.cattoy!, /^[0-9a-f]{12}$/);
    const text = formatParameters(toInfotext(result.parameters, 0, hashes));
    assert.match(text, /, TI hashes: "cattoy: [0-9a-f]{12}, tinystyle: [0-9a-f]{12}"$/);
    const none = await sd.txt2img({ prompt: 'a table', width: 64, height: 64, steps: 1, outputType: 'latent' });
    assert.equal(none.parameters.embeddings, undefined);
  });
});

describe('bad input', () => {
  test('embedding files that are not embeddings: ERR_EMBEDDING_FORMAT / ERR_EMBEDDING_INCOMPATIBLE with the path', async () => {
    await assert.rejects(readEmbeddingFile(fixture('not-a-state-dict.pt')), { code: 'ERR_EMBEDDING_FORMAT', path: fixture('not-a-state-dict.pt') });
    await assert.rejects(readEmbeddingFile(fixture('sd1-kohya.safetensors')), { code: 'ERR_EMBEDDING_FORMAT', message: /holds no embedding/ });
    const truncated = join(scratch, 'truncated.safetensors');
    writeFileSync(truncated, Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, 123]));
    await assert.rejects(readEmbeddingFile(truncated), { code: 'ERR_EMBEDDING_FORMAT', path: truncated });
  });

  test('embeddingDirs: a folder that is not there, or not an array', async () => {
    await assert.rejects(StableDiffusion.load({ model: join(tinyDir, 'sd1-diffusers'), embeddingDirs: [join(scratch, 'none')] }), { code: 'ERR_FILE_NOT_FOUND' });
    await assert.rejects(StableDiffusion.load({ model: join(tinyDir, 'sd1-diffusers'), embeddingDirs: 'x' as unknown as string[] }), { name: 'TypeError' });
  });

  test('SD1 embeddings on the SD2 model are skipped (it encodes as without them); its own width applies', async () => {
    const sd2 = await StableDiffusion.load({ model: join(tinyDir, 'sd2-v-diffusers'), backend: 'cpu', threads: 2, weightType: 'f32', embeddingDirs: [dir] });
    const plain = await StableDiffusion.load({ model: join(tinyDir, 'sd2-v-diffusers'), backend: 'cpu', threads: 2, weightType: 'f32' });
    try {
      // The tiny SD2 model is 8 wide: wide.pt (8) is its embedding, the SD1 ones (16) are skipped.
      assert.deepEqual(sd2.embeddings.map((e) => e.name), ['wide']);
      const a = await sd2.encodePrompt('a painting of tinystyle');
      const b = await plain.encodePrompt('a painting of tinystyle');
      assert.deepEqual([...a.cond.data], [...b.cond.data]);
      const c = await sd2.encodePrompt('a painting of wide');
      assert.ok(relativeError(c.cond, (await plain.encodePrompt('a painting of wide')).cond) > 1e-3);
    } finally {
      await sd2.dispose();
      await plain.dispose();
    }
  });
});
