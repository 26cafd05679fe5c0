// The one loaded model. Switching frees the old model first (two SD models at once may not fit a
// GPU); if the new one fails to load, the old one is loaded again and the error is reported.
import { modelSha256 } from '../../model-hash.js';
import { StableDiffusion, type LoadOptions } from '../../stable-diffusion.js';
import type { Checkpoint, CheckpointCatalog } from './catalog.js';

/** A loaded model and the checkpoint it came from. */
export interface LoadedModel {
  checkpoint: Checkpoint;
  sd: StableDiffusion;
}

export class ModelManager {
  readonly #catalog: CheckpointCatalog;
  readonly #load: Omit<LoadOptions, 'model'>;
  #current: LoadedModel | undefined;

  constructor(catalog: CheckpointCatalog, load: Omit<LoadOptions, 'model'>) {
    this.#catalog = catalog;
    this.#load = load;
  }

  /** The loaded model, with its checkpoint as the catalog now knows it (hash included once computed). */
  get current(): LoadedModel | undefined {
    return this.#current && { sd: this.#current.sd, checkpoint: this.#catalog.forFile(this.#current.checkpoint.filename) };
  }

  /** The model of `checkpoint`, loading it (and freeing the current one) when it is another. */
  async use(checkpoint: Checkpoint): Promise<LoadedModel> {
    if (this.#current?.checkpoint.filename === checkpoint.filename) return this.current!;
    const previous = this.#current;
    if (previous) {
      this.#current = undefined;
      await previous.sd.dispose();
    }
    try {
      this.#current = { checkpoint, sd: await this.#open(checkpoint) };
    } catch (error) {
      if (previous) this.#current = { checkpoint: previous.checkpoint, sd: await this.#open(previous.checkpoint) };
      throw error;
    }
    return this.current!;
  }

  async dispose(): Promise<void> {
    const current = this.#current;
    this.#current = undefined;
    await current?.sd.dispose();
  }

  /** Loads a model and hashes its file (A1111's "Model hash") at the same time. */
  async #open(checkpoint: Checkpoint): Promise<StableDiffusion> {
    const [sd, sha256] = await Promise.all([
      StableDiffusion.load({ ...this.#load, model: checkpoint.filename }),
      modelSha256(checkpoint.filename).catch(() => undefined),
    ]);
    if (sha256 !== undefined) this.#catalog.setHash(checkpoint.filename, sha256);
    return sd;
  }
}
