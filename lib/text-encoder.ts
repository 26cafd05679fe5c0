// The CLIP text encoder (`sd.textEncoder`) and prompt encoding (`sd.encodePrompt`), over
// native/addon/text_encoder_binding.h and native/core/nets/clip_text_encoder.h.
import type { EmbeddingTable, TextualInversion } from './embeddings.js';
import { stripLoraTags } from './lora.js';
import type { TextEncoderNative } from './native.js';
import { Tensor } from './tensor.js';
import type { TokenIds, Tokenizer } from './tokenizer.js';
import { MAX_PROMPT_CHUNKS, PROMPT_MODES, type NativeLoraRequest, type PromptMode, type TextEncoderDetails } from './types.js';
import { describe, expectBoolean, expectInteger, expectKnownKeys, expectObject, expectOneOf, expectString, optionNames } from './validate.js';
import { ArgumentRangeError, ArgumentTypeError } from './errors.js';

/** The largest `clipSkip` accepted by the API (SD 1.x's CLIP has 12 layers). */
export const MAX_CLIP_SKIP = 12;

/** Options of `sd.textEncoder.encode`. */
export interface TextEncodeOptions {
  /**
   * A1111's "Clip skip": 1 (default) takes the last layer SD uses, 2 the one before, …; the final
   * layer norm is applied to whichever layer is taken. diffusers' `clip_skip = k` is `clipSkip = k + 1`.
   */
  clipSkip?: number;
}

/** Options of `sd.encodePrompt`. */
export interface EncodePromptOptions extends TextEncodeOptions {
  /** Default: the empty prompt (as diffusers and A1111 use without one). */
  negativePrompt?: string;
  /**
   * A1111's attention syntax `(word)`, `(word:1.3)`, `[word]`, `BREAK` (default true). false takes
   * both prompts literally, as diffusers does.
   */
  promptWeighting?: boolean;
  /**
   * `chunks` (default, A1111): prompts longer than 75 tokens become several 77-token chunks,
   * encoded one by one and concatenated along the sequence. `truncate` (diffusers): one chunk,
   * tokens after the 75th are dropped.
   */
  longPrompts?: PromptMode;
}

const TEXT_ENCODE_OPTIONS = optionNames<TextEncodeOptions>({ clipSkip: true });
const ENCODE_PROMPT_OPTIONS = optionNames<EncodePromptOptions>({ clipSkip: true, negativePrompt: true, promptWeighting: true, longPrompts: true });

/** Conditioning for classifier-free guidance: both [1, 77 · chunks, hidden], the same length. */
export interface PromptEmbeddings {
  /** The prompt's embeddings. */
  cond: Tensor;
  /** The negative prompt's embeddings. */
  uncond: Tensor;
}

function clipSkipOption(value: unknown, layersUsed: number): number {
  if (value === undefined) return 1;
  const skip = expectInteger(value, 'clipSkip', 1, MAX_CLIP_SKIP);
  if (skip > layersUsed) {
    throw new ArgumentRangeError(`Expected integer clipSkip between 1 and ${layersUsed} (the layers this model's text encoder runs) but received ${skip}`);
  }
  return skip;
}

/**
 * SD's CLIP text transformer (`sd.textEncoder`): CLIP ViT-L/14 for SD 1.x, OpenCLIP ViT-H/14 for
 * SD 2.x. Runs on a worker thread.
 */
export class ClipTextEncoder {
  /** Width of the embeddings (768 SD 1.x, 1024 SD 2.x). */
  readonly hidden: number;
  /** The longest id sequence (77). */
  readonly maxPositions: number;
  /** Vocabulary size (49408). */
  readonly vocabSize: number;
  /** Transformer layers SD runs (12 SD 1.x, 23 SD 2.x); `clipSkip` counts back from the last. */
  readonly layersUsed: number;
  readonly #native: () => TextEncoderNative;
  readonly #loras: () => readonly NativeLoraRequest[];

  /** @internal Created by StableDiffusion; `loras` gives the LoRAs each call runs with (`sd.loras`). */
  constructor(native: () => TextEncoderNative, details: TextEncoderDetails, loras: () => readonly NativeLoraRequest[] = () => []) {
    this.#native = native;
    this.#loras = loras;
    this.hidden = details.hidden;
    this.maxPositions = details.maxPositions;
    this.vocabSize = details.vocabSize;
    this.layersUsed = details.layersUsed;
  }

  /**
   * Token ids (bos … eos, optionally padded; at most 77) → last_hidden_state [1, n, hidden], as
   * transformers' CLIPTextModel gives it (with `clipSkip`, that layer's output after the final
   * layer norm).
   */
  async encode(ids: TokenIds, options: TextEncodeOptions = {}): Promise<Tensor> {
    const list = this.#ids(ids);
    const opts = expectObject(options, 'options');
    expectKnownKeys(opts, 'options', TEXT_ENCODE_OPTIONS);
    const clipSkip = clipSkipOption(opts.clipSkip, this.layersUsed);
    const loras = this.#loras();
    return Tensor.of(await this.#native().encodeText(list, 1, clipSkip, ...(loras.length > 0 ? [[...loras]] : [])));
  }

  #ids(ids: unknown): Int32Array {
    const isTyped = ids instanceof Int32Array || ids instanceof Uint32Array || ids instanceof Uint16Array;
    if (!isTyped && !Array.isArray(ids)) {
      throw new ArgumentTypeError(`Expected ids to be an array of integers or an Int32Array but received ${describe(ids)}`);
    }
    const source = ids as ArrayLike<unknown>;
    if (source.length < 1 || source.length > this.maxPositions) {
      throw new ArgumentRangeError(`Expected between 1 and ${this.maxPositions} ids but received ${source.length}`);
    }
    const out = new Int32Array(source.length);
    for (let i = 0; i < source.length; i++) out[i] = expectInteger(source[i], `ids[${i}]`, 0, this.vocabSize - 1);
    return out;
  }
}

/** What a model adds to `encodePrompt`: the LoRAs to run the text encoder with, its embeddings. */
export interface PromptContext {
  /** The LoRAs of the call (or `sd.loras`). */
  loras?: readonly NativeLoraRequest[];
  /** Textual-inversion embeddings triggered by their names (from `embeddingDirs`). */
  embeddings?: EmbeddingTable;
  /** Filled with the embeddings the prompts used (for the infotext's TI hashes). */
  used?: Set<TextualInversion>;
}

/**
 * @internal `sd.encodePrompt`: tokenizes with `tokenizer`, then encodes natively (weighting, chunks,
 * padding). `<lora:…>` tags are removed from both prompts first, whatever `promptWeighting` is
 * (they select LoRAs, which the caller applies through `context.loras`). Names of
 * `context.embeddings` in either prompt stand for their vectors.
 */
export async function encodePrompt(
  native: TextEncoderNative,
  encoder: ClipTextEncoder,
  tokenizer: Tokenizer,
  prompt: string,
  options: EncodePromptOptions = {},
  context: PromptContext = {},
): Promise<PromptEmbeddings> {
  const text = stripLoraTags(expectString(prompt, 'prompt'));
  const opts = expectObject(options, 'options');
  expectKnownKeys(opts, 'options', ENCODE_PROMPT_OPTIONS);
  const negative = opts.negativePrompt === undefined ? '' : stripLoraTags(expectString(opts.negativePrompt, 'negativePrompt'));
  const clipSkip = clipSkipOption(opts.clipSkip, encoder.layersUsed);
  const weighting = opts.promptWeighting === undefined ? true : expectBoolean(opts.promptWeighting, 'promptWeighting');
  const mode = opts.longPrompts === undefined ? 'chunks' : expectOneOf(opts.longPrompts, 'longPrompts', PROMPT_MODES);
  const padId = tokenizer.padId;
  const table = context.embeddings;
  const triggers = table?.triggers ?? [];
  const cond = tokenizer.tokenizePromptWithEmbeddings(text, { mode, weighting, padId }, triggers).chunks;
  const uncond = tokenizer.tokenizePromptWithEmbeddings(negative, { mode, weighting, padId }, triggers).chunks;
  // Checked before the encoder runs: the UNet would refuse the context only after all of it.
  for (const [chunks, name] of [[cond, 'prompt'], [uncond, 'negativePrompt']] as const) {
    if (chunks.length > MAX_PROMPT_CHUNKS) {
      throw new ArgumentRangeError(
        `Expected ${name} to be at most ${MAX_PROMPT_CHUNKS * 75} tokens (${MAX_PROMPT_CHUNKS} chunks of 75) but it makes ${chunks.length} chunks`,
      );
    }
  }
  const used = table === undefined ? [] : table.used([...cond, ...uncond].flatMap((c) => c.ids));
  for (const e of used) context.used?.add(e);
  const rows = used.length > 0 ? table!.rows : undefined;
  const loras = context.loras ?? [];
  const result = await native.encodePrompt(cond, uncond, {
    clipSkip, weighting, padId, ...(loras.length > 0 && { loras: [...loras] }), ...(rows !== undefined && { embeddings: rows }),
  });
  return { cond: Tensor.of(result.cond), uncond: Tensor.of(result.uncond) };
}
