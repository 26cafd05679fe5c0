// What one server holds: the checkpoint catalog, the loaded model, A1111's settings it honours
// and the job queue whose runner does generations and model switches one at a time.
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';

import { JOB_FORMAT_VERSION, type GenerationJobData, type GenerationJobResult } from '../queue/payload.js';
import type { GenerationOutput, GenerationJob } from './generation/run.js';
import { runGeneration } from './generation/run.js';
import { HttpError, invalidField } from './http/errors.js';
import type { Img2ImgRequest, Txt2ImgRequest } from './schemas/generate.js';
import { CheckpointCatalog, type Checkpoint } from './models/catalog.js';
import { ModelManager } from './models/manager.js';
import { UpscalerSet } from './models/upscalers.js';
import { EmbeddingFacts } from './networks/embeddings.js';
import { LoraCatalog } from './networks/loras.js';
import type { CheckedServerOptions } from './options.js';
import { LocalQueue } from './queue/local-queue.js';
import { RedisQueue, type RedisJobCodec } from './queue/redis-queue.js';
import type { JobQueue } from './queue/types.js';

/** The request a generation came from: what a shared queue carries to its workers. */
interface GenerationRequest {
  endpoint: 'txt2img' | 'img2img';
  request: Txt2ImgRequest | Img2ImgRequest;
  /** The client's Idempotency-Key, naming the job on a shared queue. */
  idempotencyKey: string | undefined;
}

/** A job the queue runs: a generation, or a model switch asked for through /sdapi/v1/options. */
export type ServerJob = ({ kind: 'generate' } & GenerationJob & GenerationRequest) | { kind: 'load'; checkpoint: Checkpoint };

type Output = GenerationOutput | undefined;

/** Server jobs as BullMQ jobs for `sdnode worker`s, and their results back. */
function redisCodec(): RedisJobCodec<ServerJob, Output> {
  return {
    toJob(job) {
      if (job.kind === 'load') {
        throw invalidField(['sd_model_checkpoint'], 'switching models is not available with a shared queue (--redis): each worker serves the model it was started with', 'unsupported');
      }
      // The seed the front end chose goes with the job, so that a retried job makes the same images.
      const request = { ...job.request, seed: job.plan.seed };
      const data = { version: JOB_FORMAT_VERSION, endpoint: job.endpoint, request, clipSkip: job.clipSkip } as GenerationJobData;
      return { data, jobId: job.idempotencyKey === undefined ? randomUUID() : `key-${job.idempotencyKey}` };
    },
    fromResult(result: GenerationJobResult, jobId: string) {
      return {
        images: result.images.map((b64) => Buffer.from(b64, 'base64')),
        infotexts: result.infotexts,
        allSeeds: result.allSeeds,
        width: result.width,
        height: result.height,
        checkpoint: {
          title: result.model.title, modelName: result.model.name, name: result.model.name, filename: '',
          hash: result.model.hash ?? undefined, sha256: result.model.sha256 ?? undefined,
        },
        clipSkip: result.clipSkip,
        inpaintingConditioning: result.inpaintingConditioning,
        interrupted: result.interrupted,
        networks: result.networks ?? {},
        ...(result.nsfwContentDetected && { nsfwContentDetected: result.nsfwContentDetected }),
        job: { id: jobId, worker: result.worker },
        timestamp: result.timestamp,
      };
    },
  };
}

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
  readonly queue: JobQueue<ServerJob, Output>;
  readonly settings: Settings;
  readonly options: CheckedServerOptions;
  /** The LoRAs of --lora-dir (and load.loraDirs), for GET /sdapi/v1/loras and prompt tags. */
  readonly loras: LoraCatalog;
  readonly embeddingFacts = new EmbeddingFacts();
  /** The hires fix's upscalers: latent modes, pixel resizes and the Real-ESRGAN files of `upscalers`. */
  readonly upscalers: UpscalerSet;

  private constructor(
    options: CheckedServerOptions, catalog: CheckpointCatalog, start: Checkpoint, upscalers: UpscalerSet, shared?: JobQueue<ServerJob, Output>,
  ) {
    this.options = options;
    this.upscalers = upscalers;
    this.catalog = catalog;
    const load = networkFolders(options);
    this.loras = new LoraCatalog(load.loraDirs ?? []);
    this.models = new ModelManager(catalog, load);
    this.settings = { checkpoint: start, clipSkip: 1 };
    this.queue = shared ?? new LocalQueue<ServerJob, Output>(async (job, context) => {
      if (job.kind === 'load') {
        context.report({ job: 'load' });
        await this.models.use(job.checkpoint);
        return undefined;
      }
      return runGeneration(this.models, job, context, this.upscalers);
    }, options.queueSize);
  }

  /** Scans the checkpoints and loads the start model (with a shared queue: connects to Redis instead). */
  static async create(options: CheckedServerOptions): Promise<ServerState> {
    const catalog = new CheckpointCatalog(options.modelsDir, [options.model]);
    await catalog.refresh();
    if (options.redis) {
      const queue = await RedisQueue.create(options.redis, redisCodec(), options.queueSize);
      return new ServerState(options, catalog, catalog.forFile(options.model), new UpscalerSet(), queue);
    }
    const upscalers = await UpscalerSet.load(options.upscalers, options.load);
    const state = new ServerState(options, catalog, catalog.forFile(options.model), upscalers);
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
    this.upscalers.dispose();
  }
}
