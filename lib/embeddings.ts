// Textual-inversion embeddings: files found in the `embeddingDirs` given at load, each triggered
// by its file name in a prompt, as A1111 does. The files are read through the model-file readers
// (safetensors, and PyTorch pickles through the restricted unpickler); the engine's prompt
// tokenizer replaces a name's tokens with the embedding's ids and the text encoder takes those
// ids' rows from the table built here (native/core/include/sdcore/text.h, EmbeddingTrigger).
import { StableDiffusionError } from './errors.js';
import { NamedFiles } from './lora.js';
import { inspectModelFile, readModelTensor } from './model-file.js';
import { Tensor } from './tensor.js';
import type { Tokenizer } from './tokenizer.js';
import type { EmbeddingTrigger } from './types.js';

/** File extensions looked for in `embeddingDirs` (in this order when one name has several files). */
export const EMBEDDING_EXTENSIONS = ['.safetensors', '.pt', '.bin'] as const;

/** The first id past CLIP's vocabulary: embeddings' vectors get the ids from here on. */
const FIRST_ID = 49408;
/** At most this many vectors per embedding: one 77-token chunk holds 75 tokens. */
const MAX_VECTORS = 75;

/** A textual-inversion embedding loaded from `embeddingDirs` (`sd.embeddings`). */
export interface TextualInversion {
  /** The name that triggers it in a prompt: its file name without extension. */
  name: string;
  /** The file. */
  path: string;
  /** How many token vectors it stands for. */
  vectors: number;
}

/** The vectors of one embedding file, [k, width], whatever its layout. */
export async function readEmbeddingFile(path: string): Promise<Tensor> {
  let info;
  try {
    info = await inspectModelFile(path);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ERR_MODEL_FORMAT') {
      throw new StableDiffusionError('ERR_EMBEDDING_FORMAT', `${path} is not an embedding file that can be read: ${(error as Error).message}`, { path, cause: error });
    }
    throw error;
  }
  const names = info.tensors.map((t) => t.name);
  // A1111's .pt/.bin: string_to_param {'*': [k, width]}; A1111's safetensors: emb_params;
  // diffusers' learned_embeds: one tensor named by its token.
  const a1111 = names.filter((n) => n.startsWith('string_to_param.'));
  let name: string | undefined;
  if (a1111.length === 1) name = a1111[0];
  else if (names.includes('emb_params')) name = 'emb_params';
  else if (names.length === 1) name = names[0];
  if (names.includes('clip_l') || names.includes('clip_g')) {
    throw new StableDiffusionError('ERR_EMBEDDING_INCOMPATIBLE', `${path} is an SDXL embedding (clip_l, clip_g); this model is SD 1.x/2.x`, { path });
  }
  if (name === undefined) {
    throw new StableDiffusionError(
      'ERR_EMBEDDING_FORMAT',
      `${path} holds no embedding (string_to_param, emb_params or a single learned_embeds tensor); it has ${names.slice(0, 5).join(', ') || 'no tensors'}`,
      { path },
    );
  }
  const t = await readModelTensor(path, name);
  const shape = t.shape.length === 1 ? [1, t.shape[0]!] : t.shape;
  if (shape.length !== 2 || shape[0]! < 1 || shape[1]! < 1) {
    throw new StableDiffusionError('ERR_EMBEDDING_FORMAT', `${path}: ${name} has shape [${t.shape.join(', ')}]; expected [vectors, width]`, { path });
  }
  if (shape[0]! > MAX_VECTORS) {
    throw new StableDiffusionError('ERR_EMBEDDING_FORMAT', `${path} has ${shape[0]} vectors; at most ${MAX_VECTORS} fit in a prompt chunk`, { path });
  }
  if (!t.data.every(Number.isFinite)) throw new StableDiffusionError('ERR_EMBEDDING_FORMAT', `${path} holds values that are not finite`, { path });
  return new Tensor(shape, t.data);
}

/** One reason an embedding file in `embeddingDirs` was left out. */
export interface SkippedEmbedding {
  /** Its name: the file name without extension. */
  name: string;
  /** The file. */
  path: string;
  /** Why it was left out. */
  reason: string;
  /** How many vectors the file holds, when it could be read. */
  vectors?: number;
  /** How wide they are (768 for SD 1.x, 1024 for SD 2.x), when the file could be read. */
  width?: number;
}

/**
 * The embeddings of a model: every file of `embeddingDirs` whose width fits the model's text
 * encoder, with the ids their vectors get and the rows the text encoder reads for those ids.
 */
export class EmbeddingTable {
  readonly list: readonly TextualInversion[];
  readonly skipped: readonly SkippedEmbedding[];
  readonly triggers: readonly EmbeddingTrigger[];
  /** [total vectors, width], or undefined without embeddings. */
  readonly rows: Tensor | undefined;
  readonly #byId: Map<number, TextualInversion>;

  private constructor(list: TextualInversion[], skipped: SkippedEmbedding[], triggers: EmbeddingTrigger[], rows: Tensor | undefined) {
    this.list = Object.freeze(list);
    this.skipped = Object.freeze(skipped);
    this.triggers = Object.freeze(triggers);
    this.rows = rows;
    this.#byId = new Map();
    triggers.forEach((t, i) => {
      for (let k = 0; k < t.count; k++) this.#byId.set(t.firstId + k, list[i]!);
    });
  }

  static empty(): EmbeddingTable {
    return new EmbeddingTable([], [], [], undefined);
  }

  /**
   * Reads every embedding in `dirs` (names as A1111 gives them: file name without extension;
   * the first folder wins). Files that cannot be used here (another width, unreadable) are
   * listed in `skipped`, as A1111 skips them.
   */
  static async load(dirs: readonly string[], tokenizer: Tokenizer, width: number): Promise<EmbeddingTable> {
    const list: TextualInversion[] = [];
    const skipped: SkippedEmbedding[] = [];
    const triggers: EmbeddingTrigger[] = [];
    const parts: Float32Array[] = [];
    let next = FIRST_ID;
    const entries = new NamedFiles(dirs, EMBEDDING_EXTENSIONS).entries().sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [name, path] of entries) {
      let vectors: Tensor;
      try {
        vectors = await readEmbeddingFile(path);
      } catch (error) {
        skipped.push({ name, path, reason: (error as Error).message });
        continue;
      }
      if (vectors.shape[1] !== width) {
        skipped.push({
          name, path, reason: `its vectors are ${vectors.shape[1]} wide and this model's text encoder is ${width} wide`,
          vectors: vectors.shape[0]!, width: vectors.shape[1]!,
        });
        continue;
      }
      const tokens = tokenizer.encode(name).slice(1, -1);
      if (tokens.length === 0) {
        skipped.push({ name, path, reason: 'its name has no tokens', vectors: vectors.shape[0]!, width });
        continue;
      }
      const count = vectors.shape[0]!;
      list.push({ name, path, vectors: count });
      triggers.push({ tokens, firstId: next, count });
      parts.push(vectors.data);
      next += count;
    }
    let rows: Tensor | undefined;
    if (parts.length > 0) {
      const data = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
      let offset = 0;
      for (const p of parts) {
        data.set(p, offset);
        offset += p.length;
      }
      rows = new Tensor([next - FIRST_ID, width], data);
    }
    return new EmbeddingTable(list, skipped, triggers, rows);
  }

  /** The embeddings whose ids appear in `ids`, in order of first appearance. */
  used(ids: Iterable<number>): TextualInversion[] {
    const seen = new Set<TextualInversion>();
    for (const id of ids) {
      const e = this.#byId.get(id);
      if (e !== undefined) seen.add(e);
    }
    return [...seen];
  }
}
