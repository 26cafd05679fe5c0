// GET /sdapi/v1/embeddings: the loaded model's textual-inversion embeddings (and those its
// --embedding-dir has that it cannot use) in A1111's shape: { loaded: { NAME: item }, skipped:
// { NAME: item } }, each item { step, sd_checkpoint, sd_checkpoint_name, shape, vectors }.
import { stat } from 'node:fs/promises';

import { inspectModelFile } from '../../model-file.js';
import type { StableDiffusion } from '../../stable-diffusion.js';

/** One embedding as A1111's API describes it. */
export interface EmbeddingItem {
  /** The training step it was saved at, when the file says. */
  step: number | null;
  /** The short hash of the checkpoint it was trained on, when the file says. */
  sd_checkpoint: string | null;
  /** That checkpoint's name, when the file says. */
  sd_checkpoint_name: string | null;
  /** The width of its vectors (768 for SD 1.x, 1024 for SD 2.x); null when the file could not be read. */
  shape: number | null;
  /** How many vectors it has; null when the file could not be read. */
  vectors: number | null;
}

/** What GET /sdapi/v1/embeddings answers. */
export interface EmbeddingsResponse {
  loaded: Record<string, EmbeddingItem>;
  skipped: Record<string, EmbeddingItem>;
}

type Training = Pick<EmbeddingItem, 'step' | 'sd_checkpoint' | 'sd_checkpoint_name'>;

const UNKNOWN: Training = { step: null, sd_checkpoint: null, sd_checkpoint_name: null };

/** The training facts A1111's embedding files carry next to their vectors, cached by file size and time. */
export class EmbeddingFacts {
  readonly #cache = new Map<string, { size: number; mtimeMs: number; training: Training }>();

  async #training(path: string): Promise<Training> {
    const s = await stat(path).catch(() => undefined);
    if (s === undefined) return UNKNOWN;
    const known = this.#cache.get(path);
    if (known && known.size === s.size && known.mtimeMs === s.mtimeMs) return known.training;
    let training = UNKNOWN;
    try {
      const { metadata } = await inspectModelFile(path);
      const step = metadata.step === undefined ? NaN : Number(metadata.step);
      training = {
        step: Number.isInteger(step) ? step : null,
        sd_checkpoint: metadata.sd_checkpoint || null,
        sd_checkpoint_name: metadata.sd_checkpoint_name || null,
      };
    } catch {
      // Unreadable: listed with what is known.
    }
    this.#cache.set(path, { size: s.size, mtimeMs: s.mtimeMs, training });
    return training;
  }

  /** The answer to GET /sdapi/v1/embeddings for a loaded model (empty without one or without --embedding-dir). */
  async describe(sd: StableDiffusion | undefined): Promise<EmbeddingsResponse> {
    const out: EmbeddingsResponse = { loaded: {}, skipped: {} };
    if (sd === undefined) return out;
    const width = sd.info.textEncoder.hidden;
    for (const e of sd.embeddings) {
      out.loaded[e.name] = { ...(await this.#training(e.path)), shape: width, vectors: e.vectors };
    }
    for (const s of sd.skippedEmbeddings) {
      out.skipped[s.name] = { ...(await this.#training(s.path)), shape: s.width ?? null, vectors: s.vectors ?? null };
    }
    return out;
  }
}
