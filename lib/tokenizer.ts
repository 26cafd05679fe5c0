// CLIP's BPE tokenizer and A1111's prompt syntax, over native/core/text/clip_tokenizer.h and
// text/prompt_parser.h. Everything here is synchronous: a prompt takes microseconds.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

import { native, packageRoot, type NativeTokenizer } from './native.js';
import { PROMPT_MODES, type EmbeddingTrigger, type PromptMode, type TokenizedPrompt } from './types.js';
import { describe, expectBoolean, expectInteger, expectKnownKeys, expectObject, expectOneOf, expectString, optionNames } from './validate.js';
import { ArgumentTypeError } from './errors.js';

const VOCAB_SIZE = 49408;
const BOS_ID = 49406;
const EOS_ID = 49407;
const MAX_ID = VOCAB_SIZE - 1;

/** Ids as arrays of numbers or as integer typed arrays. */
export type TokenIds = readonly number[] | Int32Array | Uint32Array | Uint16Array;

/** Options of `Tokenizer.clip` and the Tokenizer constructor. */
export interface TokenizerOptions {
  /**
   * Id that pads prompts to 77 tokens: 49407 (`<|endoftext|>`, SD 1.x, the default) or 0 (`!`, SD 2.x).
   */
  padId?: number;
}

/** Options of `tokenizer.decode`. */
export interface DecodeOptions {
  /** Leave out `<|startoftext|>` and `<|endoftext|>` (default false, as in transformers). */
  skipSpecialTokens?: boolean;
}

/** Options of `tokenizer.tokenizePrompt`. */
export interface TokenizePromptOptions {
  /**
   * `chunks` (default): A1111's long prompts, as many 77-token chunks as needed, breaking after a
   * comma near a chunk's end and at `BREAK`. `truncate`: diffusers, one chunk, the rest dropped.
   */
  mode?: PromptMode;
  /** Read `(word)`, `(word:1.3)`, `[word]`, `BREAK` (default true); false takes the prompt literally. */
  weighting?: boolean;
  /** Default: the tokenizer's `padId`. */
  padId?: number;
}

/** A piece of a prompt and its attention weight (`parsePromptAttention`). */
export interface WeightedText {
  /** The text, brackets removed. */
  text: string;
  /** The product of the brackets around the text; a `BREAK` is `{ text: 'BREAK', weight: -1 }`. */
  weight: number;
}

/** OpenAI CLIP's merges list, shipped gzipped with the package. */
export const CLIP_VOCAB_PATH = join(packageRoot, 'native', 'core', 'data', 'bpe_simple_vocab_16e6.txt.gz');

let shippedNative: NativeTokenizer | undefined;
const shippedByPadId = new Map<number, Tokenizer>();

function expectIds(ids: unknown): number[] {
  const list = ArrayBuffer.isView(ids) && !(ids instanceof DataView) ? Array.from(ids as unknown as ArrayLike<unknown>) : ids;
  if (!Array.isArray(list)) throw new ArgumentTypeError(`Expected ids to be an array of integers but received ${describe(ids)}`);
  for (const id of list) expectInteger(id, 'ids', 0, MAX_ID);
  return list as number[];
}

/**
 * CLIP's byte-level BPE tokenizer (SD 1.x and 2.x), giving the ids of transformers' CLIPTokenizer:
 * `"A painting of a flooble"` → `[49406, 320, 3086, 539, 320, 4062, 1059, 49407]`.
 */
export class Tokenizer {
  /** Vocabulary size (49408). */
  readonly vocabSize = VOCAB_SIZE;
  /** `<|startoftext|>` (49406). */
  readonly bosId = BOS_ID;
  /** `<|endoftext|>` (49407). */
  readonly eosId = EOS_ID;
  /** The id prompts are padded with to 77 tokens (see `TokenizerOptions.padId`). */
  readonly padId: number;
  readonly #native: NativeTokenizer;
  static #adopt: NativeTokenizer | undefined;

  /**
   * The tokenizer every Stable Diffusion 1.x/2.x model uses, from the merges list shipped with
   * the package. Built once (about 50 ms) and shared.
   */
  static clip(options: TokenizerOptions = {}): Tokenizer {
    const padId = padIdOption(options);
    let tokenizer = shippedByPadId.get(padId);
    if (tokenizer === undefined) {
      shippedNative ??= new (native().Tokenizer)(gunzipSync(readFileSync(CLIP_VOCAB_PATH)).toString('utf8'));
      Tokenizer.#adopt = shippedNative;
      tokenizer = new Tokenizer('', { padId });
      shippedByPadId.set(padId, tokenizer);
    }
    return tokenizer;
  }

  /**
   * A tokenizer from a merges list's text: OpenAI's `bpe_simple_vocab_16e6.txt` (gunzipped) or a
   * diffusers `tokenizer/merges.txt`. Throws an Error with code `ERR_MODEL_FORMAT` for other text.
   */
  constructor(mergesText: string, options: TokenizerOptions = {}) {
    this.padId = padIdOption(options);
    if (Tokenizer.#adopt !== undefined) {
      this.#native = Tokenizer.#adopt;
      Tokenizer.#adopt = undefined;
    } else {
      this.#native = new (native().Tokenizer)(expectString(mergesText, 'mergesText'));
    }
  }

  /** Ids of `text` between `<|startoftext|>` and `<|endoftext|>`, no padding, no truncation. */
  encode(text: string): number[] {
    return this.#native.encode(expectString(text, 'text'));
  }

  /** Text of the ids, as transformers' `decode` gives it (lower case; `</w>` becomes a space). */
  decode(ids: TokenIds, options: DecodeOptions = {}): string {
    const list = expectIds(ids);
    const opts = expectObject(options, 'options');
    expectKnownKeys(opts, 'options', optionNames<DecodeOptions>({ skipSpecialTokens: true }));
    const skip = opts.skipSpecialTokens === undefined ? false : expectBoolean(opts.skipSpecialTokens, 'skipSpecialTokens');
    return this.#native.decode(list, skip);
  }

  /** The vocabulary strings of `text`'s tokens, without bos/eos, e.g. `['a</w>', 'floo', 'ble</w>']`. */
  tokenize(text: string): string[] {
    return this.#native.tokenize(expectString(text, 'text'));
  }

  /** The vocabulary string of each id, e.g. `'a</w>'`, `'<|startoftext|>'` (transformers' `convert_ids_to_tokens`). */
  convertIdsToTokens(ids: TokenIds): string[] {
    return this.#native.convertIdsToTokens(expectIds(ids));
  }

  /** A prompt as the text encoder takes it: chunks of 77 ids with a weight per token. */
  tokenizePrompt(prompt: string, options: TokenizePromptOptions = {}): TokenizedPrompt {
    const text = expectString(prompt, 'prompt');
    const opts = expectObject(options, 'options');
    expectKnownKeys(opts, 'options', optionNames<TokenizePromptOptions>({ mode: true, weighting: true, padId: true }));
    const mode = opts.mode === undefined ? 'chunks' : expectOneOf(opts.mode, 'mode', PROMPT_MODES);
    const weighting = opts.weighting === undefined ? true : expectBoolean(opts.weighting, 'weighting');
    const padId = opts.padId === undefined ? this.padId : expectInteger(opts.padId, 'padId', 0, MAX_ID);
    return this.#native.tokenizePrompt(text, { mode, weighting, padId });
  }

  /**
   * @internal `tokenizePrompt` with textual-inversion embeddings: their names' tokens become ids
   * past the vocabulary (lib/embeddings.ts). Options already checked by the caller.
   */
  tokenizePromptWithEmbeddings(
    prompt: string, options: { mode: PromptMode; weighting: boolean; padId: number }, embeddings: readonly EmbeddingTrigger[],
  ): TokenizedPrompt {
    return this.#native.tokenizePrompt(prompt, { ...options, ...(embeddings.length > 0 && { embeddings: [...embeddings] }) });
  }
}

function padIdOption(options: unknown): number {
  const opts = expectObject(options, 'options');
  expectKnownKeys(opts, 'options', ['padId']);
  return opts.padId === undefined ? EOS_ID : expectInteger(opts.padId, 'padId', 0, MAX_ID);
}

/**
 * A1111's attention syntax: `'a (cat:1.3) [dog]'` → `[{ text: 'a ', weight: 1 }, { text: 'cat',
 * weight: 1.3 }, { text: ' ', weight: 1 }, { text: 'dog', weight: 1 / 1.1 }]`.
 */
export function parsePromptAttention(prompt: string): WeightedText[] {
  return native()
    .parsePromptAttention(expectString(prompt, 'prompt'))
    .map(([text, weight]) => ({ text, weight }));
}
