import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';

import { CLIP_VOCAB_PATH, Tokenizer } from '../lib/index.js';
import { packageRoot } from '../lib/native.js';

// Made by tools/goldens/make_tokenizer_goldens.py with transformers' CLIPTokenizer.
interface Golden {
  vocab_size: number;
  bos_id: number;
  eos_id: number;
  cases: { text: string; ids: number[]; tokens: string[] }[];
  decode: { cases: { text: string | null; ids: number[]; skip_special_tokens: string; with_special_tokens: string }[] };
}
const golden = JSON.parse(
  readFileSync(`${packageRoot}/test/fixtures/tokenizer/clip_tokenizer_golden.json`, 'utf8'),
) as Golden;

const FLOOBLE_IDS = [49406, 320, 3086, 539, 320, 4062, 1059, 49407];

test('the tokenizer has CLIP vocabulary size and special ids', () => {
  const tokenizer = Tokenizer.clip();
  assert.equal(tokenizer.vocabSize, golden.vocab_size);
  assert.equal(tokenizer.bosId, golden.bos_id);
  assert.equal(tokenizer.eosId, golden.eos_id);
  assert.equal(tokenizer.padId, 49407);
  assert.equal(Tokenizer.clip({ padId: 0 }).padId, 0);
  assert.equal(Tokenizer.clip(), tokenizer, 'the shipped tokenizer is built once');
  // Checked against transformers' convert_ids_to_tokens: the byte symbols, the same with "</w>",
  // the first and last merges, the two special tokens.
  assert.deepEqual(tokenizer.convertIdsToTokens([0, 187, 188, 255, 256, 511, 512, 49405, 49406, 49407]), [
    '!', 'ÿ', 'Ā', 'Ń', '!</w>', 'Ń</w>', 'in', 'jekyll</w>', '<|startoftext|>', '<|endoftext|>',
  ]);
});

test('"A painting of a flooble" gives the reference ids', () => {
  const tokenizer = Tokenizer.clip();
  const ids = tokenizer.encode('A painting of a flooble');
  assert.deepEqual(ids, FLOOBLE_IDS);
  // Vocabulary strings, as transformers' convert_ids_to_tokens gives them ("</w>" ends a word)...
  assert.deepEqual(tokenizer.convertIdsToTokens(ids), [
    '<|startoftext|>', 'a</w>', 'painting</w>', 'of</w>', 'a</w>', 'floo', 'ble</w>', '<|endoftext|>',
  ]);
  assert.deepEqual(tokenizer.tokenize('A painting of a flooble'), ['a</w>', 'painting</w>', 'of</w>', 'a</w>', 'floo', 'ble</w>']);
  // ...and each id decoded on its own, as transformers' decode([id]) gives it.
  assert.deepEqual(
    ids.map((id) => tokenizer.decode([id])),
    ['<|startoftext|>', 'a', 'painting', 'of', 'a', 'floo', 'ble', '<|endoftext|>'],
  );
  assert.equal(tokenizer.decode(ids), '<|startoftext|>a painting of a flooble <|endoftext|>');
  assert.equal(tokenizer.decode(ids, { skipSpecialTokens: true }), 'a painting of a flooble');
});

test(`every golden prompt gives transformers' ids and tokens (${golden.cases.length} prompts)`, () => {
  const tokenizer = Tokenizer.clip();
  assert.ok(golden.cases.length >= 250);
  for (const { text, ids, tokens } of golden.cases) {
    const got = tokenizer.encode(text);
    assert.deepEqual(got, ids, `ids of ${JSON.stringify(text)}`);
    assert.deepEqual(tokenizer.convertIdsToTokens(got), tokens, `tokens of ${JSON.stringify(text)}`);
    assert.deepEqual(tokenizer.tokenize(text), tokens.slice(1, -1), `tokenize(${JSON.stringify(text)})`);
  }
});

test(`decode gives transformers' text (${golden.decode.cases.length} id lists)`, () => {
  const tokenizer = Tokenizer.clip();
  for (const c of golden.decode.cases) {
    assert.equal(tokenizer.decode(c.ids, { skipSpecialTokens: true }), c.skip_special_tokens, `decode ${c.ids.join(' ')}`);
    assert.equal(tokenizer.decode(c.ids), c.with_special_tokens, `decode ${c.ids.join(' ')}`);
    assert.equal(tokenizer.decode(c.ids, { skipSpecialTokens: false }), c.with_special_tokens);
  }
});

test('decode round trips: decoded text encodes to the same ids', () => {
  const tokenizer = Tokenizer.clip();
  assert.equal(tokenizer.decode(tokenizer.encode('a photo of an astronaut riding a horse on mars'), { skipSpecialTokens: true }),
    'a photo of an astronaut riding a horse on mars');
  assert.equal(tokenizer.decode(tokenizer.encode('Привет, мир!  Café 東京 🐱'), { skipSpecialTokens: true }), 'привет , мир ! café 東京 🐱');
  // Decoding inserts a space at every word end and lower-cases, so text does not come back as
  // written; its ids do. Pieces split inside a multi-byte character (byte-level tokens whose
  // UTF-8 is incomplete) decode to U+FFFD, so those are left out.
  let checked = 0;
  for (const { text, ids } of golden.cases) {
    const decoded = tokenizer.decode(ids, { skipSpecialTokens: true });
    if (decoded.includes('\uFFFD') || text.includes('<|')) continue;
    assert.deepEqual(tokenizer.encode(decoded), ids, `round trip of ${JSON.stringify(text)} via ${JSON.stringify(decoded)}`);
    checked++;
  }
  assert.ok(checked > 200, `only ${checked} cases round-tripped`);
});

test('a merges.txt in diffusers layout gives the same tokenizer', () => {
  const clip = gunzipSync(readFileSync(CLIP_VOCAB_PATH)).toString('utf8').split('\n');
  // OpenAI's file: a header line, then 262143 merges of which CLIP uses the first 48894.
  const merges = ['#version: 0.2', ...clip.slice(1, 1 + 48894)].join('\r\n') + '\r\n';
  const tokenizer = new Tokenizer(merges, { padId: 0 });
  assert.equal(tokenizer.padId, 0);
  for (const { text, ids } of golden.cases.slice(0, 60)) assert.deepEqual(tokenizer.encode(text), ids);
});

test('the tokenizer rejects text that is not a merges list', () => {
  assert.throws(() => new Tokenizer('hello'), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'ERR_MODEL_FORMAT');
    assert.match(e.message, /Not a CLIP BPE merges list/);
    return true;
  });
  assert.throws(() => new Tokenizer('#version: 0.2\ni n\nt h\n'), /expected 48894 merges but found 2/);
  assert.throws(() => new Tokenizer('#version: 0.2\nq xyz\n'), /line 2 merges a symbol that no earlier line made/);
  assert.throws(() => new Tokenizer(42 as never), TypeError);
});

test('the tokenizer validates its arguments', () => {
  const tokenizer = Tokenizer.clip();
  assert.throws(() => tokenizer.encode(42 as never), { name: 'TypeError', message: 'Expected text to be a string but received 42' });
  assert.throws(() => tokenizer.encode(undefined as never), TypeError);
  assert.throws(() => tokenizer.tokenize(null as never), TypeError);
  assert.throws(() => tokenizer.decode([-1]), { name: 'RangeError', message: 'Expected integer ids between 0 and 49407 but received -1' });
  assert.throws(() => tokenizer.decode([49408]), { name: 'RangeError', message: 'Expected integer ids between 0 and 49407 but received 49408' });
  assert.throws(() => tokenizer.decode([320, 1.5]), { name: 'RangeError', message: 'Expected integer ids between 0 and 49407 but received 1.5' });
  assert.throws(() => tokenizer.decode([Number.NaN]), TypeError);
  assert.throws(() => tokenizer.decode(['320'] as never), TypeError);
  assert.throws(() => tokenizer.decode('320' as never), { name: 'TypeError', message: 'Expected ids to be an array of integers but received "320"' });
  assert.throws(() => tokenizer.decode([320], { skipSpecialTokens: 1 as never }), TypeError);
  assert.throws(() => tokenizer.decode([320], null as never), TypeError);
  assert.throws(() => tokenizer.convertIdsToTokens([70000]), RangeError);
  assert.throws(() => Tokenizer.clip({ padId: -1 }), { name: 'RangeError', message: 'Expected integer padId between 0 and 49407 but received -1' });
  // Typed arrays of ids are accepted.
  assert.equal(tokenizer.decode(Int32Array.from(FLOOBLE_IDS), { skipSpecialTokens: true }), 'a painting of a flooble');
  assert.deepEqual(tokenizer.decode([]), '');
});

test('text that is not well-formed UTF-16 is read with U+FFFD for lone surrogates', () => {
  const tokenizer = Tokenizer.clip();
  assert.deepEqual(tokenizer.encode('a\uD800b'), tokenizer.encode('a\uFFFDb'));
  assert.deepEqual(tokenizer.encode('\uDC00'), tokenizer.encode('\uFFFD'));
});

test('long inputs tokenize in linear time', () => {
  const tokenizer = Tokenizer.clip();
  const started = performance.now();
  const ids = tokenizer.encode('a'.repeat(200_000)); // one 200 000-letter word through BPE
  const words = tokenizer.encode('masterpiece, best quality, '.repeat(20_000));
  const elapsed = performance.now() - started;
  assert.equal(ids[0], 49406);
  assert.equal(words.length, 2 + 5 * 20_000);
  assert.ok(elapsed < 5000, `took ${elapsed.toFixed(0)} ms`);
});
