// What one server holds: the checkpoint catalog, the loaded model, A1111's settings it honours
// and the job queue whose runner does generations and model switches one at a time.
import { resolve } from 'node:path';

import type { GenerationOutput, GenerationJob } from './generation/run.js';
import { runGeneration } from './generation/run.js';
import { HttpError } from './http/errors.js';
import { CheckpointCatalog, type Checkpoint } from './models/catalog.js';
import { ModelManager } from './models/manager.js';
import { EmbeddingFacts } from './networks/embeddings.js';
import { LoraCatalog } from './networks/loras.js';
import type { CheckedServerOptions } from './options.js';
import { LocalQueue } from './queue/local-queue.js';
import type { JobQueue } from './queue/types.js';

/** A job the queue runs: a generation, or a model switch asked for through /sdapi/v1/options. */
export type ServerJob = ({ kind: 'generate' } & GenerationJob) | { kind: 'load'; checkpoint: Checkpoint };

/** A1111 settings this server keeps (GET/POST /sdapi/v1/options). */
export interface Settings {
  /** The checkpoint jobs run on unless they override it. */
  checkpoint: Checkpoint;
  /** CLIP_stop_at_last_layers. */
  clipSkip: number;
}

/**
 * The load options every model of the server gets: --lora-dir and --embedding-dir first, then
 * the folders of `load.loraDirs` / `load.embeddingDirs`, absolute.
 */
function networkFolders(options: CheckedServerOptions): CheckedServerOptions['load'] {
  const load = { ...options.load };
  const folders = (first: string | undefined, more: unknown): string[] | undefined => {
    const list = [...(first === undefined ? [] : [first]), ...(Array.isArray(more) ? (more as string[]) : [])].map((d) => resolve(d));
    return list.length === 0 ? undefined : [...new Set(list)];
  };
  const loraDirs = folders(options.loraDir, load.loraDirs);
  const embeddingDirs = folders(options.embeddingDir, load.embeddingDirs);
  if (loraDirs) load.loraDirs = loraDirs;
  if (embeddingDirs) load.embeddingDirs = embeddingDirs;
  return load;
}

export class ServerState {
  readonly catalog: CheckpointCatalog;
  readonly models: ModelManager;
  readonly queue: JobQueue<ServerJob, GenerationOutput | undefined>;
  readonly settings: Settings;
  readonly options: CheckedServerOptions;
  /** The LoRAs of --lora-dir (and load.loraDirs), for GET /sdapi/v1/loras and prompt tags. */
  readonly loras: LoraCatalog;
  readonly embeddingFacts = new EmbeddingFacts();

  private constructor(options: CheckedServerOptions, catalog: CheckpointCatalog, start: Checkpoint) {
    this.options = options;
    this.catalog = catalog;
    const load = networkFolders(options);
    this.loras = new LoraCatalog(load.loraDirs ?? []);
    this.models = new ModelManager(catalog, load);
    this.settings = { checkpoint: start, clipSkip: 1 };
    this.queue = new LocalQueue<ServerJob, GenerationOutput | undefined>(async (job, context) => {
      if (job.kind === 'load') {
        context.report({ job: 'load' });
        await this.models.use(job.checkpoint);
        return undefined;
      }
      return runGeneration(this.models, job, context);
    }, options.queueSize);
  }

  /** Scans the checkpoints and loads the start model. */
  static async create(options: CheckedServerOptions): Promise<ServerState> {
    const catalog = new CheckpointCatalog(options.modelsDir, [options.model]);
    await catalog.refresh();
    const state = new ServerState(options, catalog, catalog.forFile(options.model));
    await state.loras.refresh();
    await state.models.use(state.settings.checkpoint);
    state.settings.checkpoint = state.models.current!.checkpoint;
    return state;
  }

  /** A checkpoint by any of its A1111 names; 404 as A1111 answers an unknown model. */
  checkpoint(name: string): Checkpoint {
    const found = this.catalog.find(name);
    if (found === undefined) throw new HttpError(404, `Model not found: ${JSON.stringify(name)} (GET /sdapi/v1/sd-models lists them)`);
    return found;
  }

  /** The settings' checkpoint as the catalog knows it now (its title gains the hash once computed). */
  currentCheckpoint(): Checkpoint {
    return this.catalog.forFile(this.settings.checkpoint.filename);
  }

  async close(): Promise<void> {
    await this.queue.close();
    await this.models.dispose();
  }
}
