import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { Tokenizer, parsePromptAttention, type PromptChunk } from '../lib/index.js';
import { packageRoot } from '../lib/native.js';

// Made by tools/goldens/make_prompt_goldens.py, which runs the A1111 web UI's own
// parse_prompt_attention and tokenize_line (over transformers' CLIPTokenizer).
interface PromptGolden {
  attention: { prompt: string; parsed?: [string, number][]; error?: string }[];
  chunking: { prompt: string; chunks: PromptChunk[] }[];
}
const golden = JSON.parse(
  readFileSync(`${packageRoot}/test/fixtures/prompts/prompt_attention_golden.json`, 'utf8'),
) as PromptGolden;
const tokenizerGolden = JSON.parse(
  readFileSync(`${packageRoot}/test/fixtures/tokenizer/clip_tokenizer_golden.json`, 'utf8'),
) as { cases: { text: string; ids: number[] }[] };

const BOS = 49406;
const EOS = 49407;
const COMMA = 267;

function padded(ids: number[], padId: number): number[] {
  return [...ids, ...new Array<number>(77 - ids.length).fill(padId)];
}

test(`parsePromptAttention matches A1111 (${golden.attention.length} prompts)`, () => {
  const cases = golden.attention.filter((c) => c.parsed !== undefined);
  assert.ok(cases.length >= 40);
  for (const { prompt, parsed } of cases) {
    const got = parsePromptAttention(prompt).map(({ text, weight }) => [text, weight]);
    // Weights are compared exactly: A1111 multiplies in a fixed order and so do we.
    assert.deepEqual(got, parsed, `parse of ${JSON.stringify(prompt)}`);
  }
});

test('a weight Python cannot read (A1111 fails the generation) is kept as text', () => {
  // A1111 raises ValueError from float('1.2.3'); we read the ':' as text and close the bracket.
  assert.ok(golden.attention.some((c) => c.prompt === '(word:1.2.3)' && c.error === 'ValueError'));
  assert.deepEqual(parsePromptAttention('(word:1.2.3)'), [{ text: 'word:1.2.3', weight: 1.1 }]);
  assert.deepEqual(parsePromptAttention('(a:.)'), [{ text: 'a:.', weight: 1.1 }]);
  assert.deepEqual(parsePromptAttention('x (a:..5) y'), [
    { text: 'x ', weight: 1 },
    { text: 'a:..5', weight: 1.1 },
    { text: ' y', weight: 1 },
  ]);
  // Python's float() gives inf and 0 past the double range; so do we.
  assert.deepEqual(parsePromptAttention(`(a:1${'0'.repeat(400)})`), [{ text: 'a', weight: Infinity }]);
  assert.deepEqual(parsePromptAttention(`(a:0.${'0'.repeat(400)}1)`), [{ text: 'a', weight: 0 }]);
});

test(`chunks match A1111's tokenize_line (${golden.chunking.length} prompts)`, () => {
  const tokenizer = Tokenizer.clip();
  for (const { prompt, chunks } of golden.chunking) {
    const got = tokenizer.tokenizePrompt(prompt);
    assert.deepEqual(got.chunks, chunks, `chunks of ${JSON.stringify(prompt.slice(0, 80))}`);
    for (const chunk of got.chunks) {
      assert.equal(chunk.ids.length, 77);
      assert.equal(chunk.weights.length, 77);
    }
  }
});

test('SD 2.x padding: after the first <|endoftext|> of each chunk come pad ids', () => {
  const sd2 = Tokenizer.clip({ padId: 0 });
  assert.deepEqual(sd2.tokenizePrompt('a cat').chunks[0].ids, padded([BOS, 320, 2368, EOS], 0));
  assert.deepEqual(Tokenizer.clip().tokenizePrompt('a cat', { padId: 0 }), sd2.tokenizePrompt('a cat'));
  // The same chunks as A1111's SD 1.x ones with its SD 2.x rule applied.
  for (const { prompt, chunks } of golden.chunking) {
    const expected = chunks.map(({ ids, weights }) => {
      const end = ids.indexOf(EOS);
      return { ids: ids.map((id, i) => (i > end ? 0 : id)), weights };
    });
    assert.deepEqual(sd2.tokenizePrompt(prompt).chunks, expected, `chunks of ${JSON.stringify(prompt.slice(0, 80))}`);
  }
});

test('chunks of literal prompts without commas are plain 75-token slices', () => {
  // Hand-derived from A1111's rule: without commas nothing moves between chunks, so the
  // content of the tokenizer golden's ids is cut every 75 tokens.
  const tokenizer = Tokenizer.clip();
  let checked = 0;
  for (const { text, ids } of tokenizerGolden.cases) {
    const content = ids.slice(1, -1);
    if (content.includes(COMMA) || content.includes(EOS) || content.length <= 75) continue;
    const expected: PromptChunk[] = [];
    for (let i = 0; i < content.length; i += 75) {
      expected.push({ ids: padded([BOS, ...content.slice(i, i + 75), EOS], EOS), weights: new Array<number>(77).fill(1) });
    }
    assert.deepEqual(tokenizer.tokenizePrompt(text, { weighting: false }).chunks, expected, `chunks of ${JSON.stringify(text.slice(0, 60))}`);
    checked++;
  }
  assert.ok(checked >= 3, `only ${checked} long prompts without commas`);
});

test('comma backtracking moves at most 20 tokens into the next chunk', () => {
  // Hand-derived: 70 one-token words, a comma, then more words. When the chunk fills, the last
  // comma is 5 tokens back, so the 4 words after it start the next chunk.
  const tokenizer = Tokenizer.clip();
  const word = 'cat'; // 2368, one token
  const prompt = `${Array(70).fill(word).join(' ')}, ${Array(10).fill(word).join(' ')}`;
  const [first, second] = tokenizer.tokenizePrompt(prompt).chunks;
  assert.deepEqual(first.ids, padded([BOS, ...Array<number>(70).fill(2368), COMMA, EOS], EOS));
  assert.deepEqual(second.ids, padded([BOS, ...Array<number>(10).fill(2368), EOS], EOS));
  // 22 tokens back is too far: the chunk is cut at 75 tokens.
  const far = `${Array(53).fill(word).join(' ')}, ${Array(30).fill(word).join(' ')}`;
  const chunks = tokenizer.tokenizePrompt(far).chunks;
  assert.equal(chunks[0].ids.indexOf(EOS), 76);
  assert.equal(chunks[1].ids.indexOf(EOS), 1 + 84 - 75);
});

test('truncate mode keeps the first 75 tokens, as diffusers does', () => {
  const tokenizer = Tokenizer.clip();
  for (const { text, ids } of tokenizerGolden.cases) {
    // transformers: truncation=True, max_length=77 keeps bos, 75 tokens and eos; then padding.
    const expected = ids.length > 77 ? [...ids.slice(0, 76), EOS] : padded(ids, EOS);
    const { chunks } = tokenizer.tokenizePrompt(text, { mode: 'truncate', weighting: false });
    assert.equal(chunks.length, 1);
    assert.deepEqual(chunks[0].ids, expected, `truncation of ${JSON.stringify(text.slice(0, 60))}`);
    assert.deepEqual(chunks[0].weights, new Array<number>(77).fill(1));
    const sd2 = tokenizer.tokenizePrompt(text, { mode: 'truncate', weighting: false, padId: 0 }).chunks[0].ids;
    assert.deepEqual(sd2, ids.length > 77 ? expected : padded(ids, 0));
  }
  // With weighting, the weights follow their tokens; BREAK has no meaning in one chunk.
  const { chunks } = tokenizer.tokenizePrompt('(a cat:1.3) BREAK [dog]', { mode: 'truncate' });
  assert.deepEqual(chunks[0].ids, padded([BOS, 320, 2368, 1929, EOS], EOS));
  assert.deepEqual(chunks[0].weights.slice(0, 6), [1, 1.3, 1.3, 1 / 1.1, 1, 1]);
});

test('weighting off takes the prompt literally, as diffusers does', () => {
  const tokenizer = Tokenizer.clip();
  for (const prompt of ['(a cat:1.3), [a dog]', 'forest BREAK castle', '\\(escaped\\)']) {
    const { chunks } = tokenizer.tokenizePrompt(prompt, { weighting: false });
    assert.equal(chunks.length, 1);
    assert.deepEqual(chunks[0].ids, padded(tokenizer.encode(prompt), EOS));
    assert.deepEqual(chunks[0].weights, new Array<number>(77).fill(1));
  }
  // With weighting the syntax goes away and the weights appear.
  const weighted = tokenizer.tokenizePrompt('(a cat:1.3), [a dog]').chunks[0];
  assert.deepEqual(weighted.ids.slice(0, 8), [BOS, 320, 2368, COMMA, 320, 1929, EOS, EOS]);
  assert.deepEqual(weighted.weights.slice(0, 8), [1, 1.3, 1.3, 1, 1 / 1.1, 1 / 1.1, 1, 1]);
});

test('an empty prompt is one chunk of bos and padding', () => {
  const tokenizer = Tokenizer.clip();
  assert.deepEqual(tokenizer.tokenizePrompt('').chunks, [{ ids: padded([BOS], EOS), weights: new Array<number>(77).fill(1) }]);
  assert.deepEqual(tokenizer.tokenizePrompt('', { mode: 'truncate', padId: 0 }).chunks[0].ids, padded([BOS, EOS], 0));
});

test('tokenizePrompt and parsePromptAttention validate their arguments', () => {
  const tokenizer = Tokenizer.clip();
  assert.throws(() => tokenizer.tokenizePrompt(5 as never), { name: 'TypeError', message: 'Expected prompt to be a string but received 5' });
  assert.throws(() => tokenizer.tokenizePrompt('a', null as never), TypeError);
  assert.throws(() => tokenizer.tokenizePrompt('a', { mode: 'all' as never }), {
    name: 'RangeError',
    message: 'Expected mode to be one of chunks, truncate but received "all"',
  });
  assert.throws(() => tokenizer.tokenizePrompt('a', { weighting: 'yes' as never }), TypeError);
  assert.throws(() => tokenizer.tokenizePrompt('a', { padId: 49408 }), {
    name: 'RangeError',
    message: 'Expected integer padId between 0 and 49407 but received 49408',
  });
  assert.throws(() => tokenizer.tokenizePrompt('a', { padId: 0.5 }), RangeError);
  assert.throws(() => parsePromptAttention(undefined as never), TypeError);
});
