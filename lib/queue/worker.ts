// `createWorker(options)`: a BullMQ worker that loads one model and runs the generation jobs of a
// queue (the server's txt2img / img2img request bodies), with progress, interrupt, skip and cancel
// reaching it from any front end, results (PNG with infotext, base64) as the job's return value,
// and failures carrying our error codes in `job.failedReason`.
import { hostname } from 'node:os';

import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';

import { AbortError, ArgumentRangeError, StableDiffusionError } from '../errors.js';
import type { LoadOptions } from '../stable-diffusion.js';
import { expectInteger, expectObject, expectPath, expectPaths } from '../validate.js';
import { planImg2Img, planTxt2Img } from '../server/generation/plan.js';
import { runGeneration, type GenerationOutput } from '../server/generation/run.js';
import { CheckpointCatalog } from '../server/models/catalog.js';
import type { Img2ImgRequest as Img2ImgBodyType, Txt2ImgRequest as Txt2ImgBodyType } from '../server/schemas/generate.js';
import { ModelManager } from '../server/models/manager.js';
import { UpscalerSet } from '../server/models/upscalers.js';
import type { JobContext, JobProgress } from '../server/queue/types.js';
import { controlKey, readControl, type ControlFlags } from './control.js';
import {
  checkJobData, DEFAULT_QUEUE_NAME, JOB_FORMAT_VERSION, jobErrorOf,
  type GenerationJobData, type GenerationJobProgress, type GenerationJobResult,
} from './payload.js';
import { checkQueueName } from './names.js';
import { previewKey, removePreview, writePreview } from './preview.js';
import { checkRedisUrl } from './redis-url.js';

/** Options of `createWorker`. */
export interface WorkerOptions {
  /** The model this worker serves: a .safetensors/.ckpt/.gguf file or a diffusers folder. */
  model: string;
  /** The Redis server, e.g. `redis://127.0.0.1:6379` (`rediss://` for TLS; user and password in the URL). */
  redis: string;
  /** The BullMQ queue name (default `sdnode`). */
  queue?: string;
  /** BullMQ's key prefix (default `bull`). */
  prefix?: string;
  /** Jobs this worker runs at once on its one model (default 1; more only helps on a GPU with room to spare). */
  concurrency?: number;
  /** How the model is loaded (backend, threads, weightType, …). */
  load?: Omit<LoadOptions, 'model'>;
  /**
   * BullMQ's lock on a running job, in ms (default 30000). The worker renews it while the job runs;
   * a worker that dies stops renewing, and after this long its job is "stalled" and goes back to
   * the queue for another worker.
   */
  lockDuration?: number;
  /** How often this worker looks for stalled jobs, in ms (default 30000). */
  stalledInterval?: number;
  /** How many times a job may stall (its worker die) before it fails instead (default 1). */
  maxStalledCount?: number;
  /** How often a running job looks for interrupt, skip and cancel, in ms (default 250). */
  controlInterval?: number;
  /** Real-ESRGAN files for the hires fix's `hr_upscaler`, named by file name without extension (as the server's `upscalers`). */
  upscalers?: string[];
}

/** What `createWorker` returns. */
export interface SdWorker {
  /** The BullMQ Worker: listen to its events (`completed`, `failed`, `active`, …). */
  readonly worker: Worker<GenerationJobData, GenerationJobResult>;
  /** The checkpoint loaded: A1111's title and the file. */
  readonly model: {
    /** A1111's title: `name [hash]`. */
    title: string;
    /** The model's file or folder. */
    filename: string;
  };
  /** The name this worker reports in progress and results (`host:pid`). */
  readonly id: string;
  /**
   * Stops taking jobs, lets the running ones finish (BullMQ's graceful close), and frees the model.
   * `force: true` does not wait for them; their results may then not be recorded, and they go
   * back to the queue once their locks expire (stalled jobs).
   */
  close(force?: boolean): Promise<void>;
}

/** How often a running job's latest preview is written to Redis for the front ends' /progress. */
const PREVIEW_INTERVAL_MS = 1000;

const KNOWN = ['model', 'redis', 'queue', 'prefix', 'concurrency', 'load', 'lockDuration', 'stalledInterval', 'maxStalledCount', 'controlInterval', 'upscalers'];

interface CheckedWorkerOptions {
  model: string;
  redis: string;
  queue: string;
  prefix: string;
  concurrency: number;
  load: Omit<LoadOptions, 'model'>;
  lockDuration: number;
  stalledInterval: number;
  maxStalledCount: number;
  controlInterval: number;
  upscalers: string[];
}

function checkWorkerOptions(options: unknown): CheckedWorkerOptions {
  const o = expectObject(options, 'options');
  for (const key of Object.keys(o)) {
    if (!KNOWN.includes(key)) throw new ArgumentRangeError(`Unknown worker option "${key}"; expected one of ${KNOWN.join(', ')}`);
  }
  const ms = (key: string, fallback: number, min: number) => (o[key] === undefined ? fallback : expectInteger(o[key], `options.${key}`, min, 24 * 3600 * 1000));
  return {
    model: expectPath(o.model, 'options.model'),
    redis: checkRedisUrl(o.redis, 'options.redis'),
    queue: o.queue === undefined ? DEFAULT_QUEUE_NAME : checkQueueName(o.queue, 'options.queue'),
    prefix: o.prefix === undefined ? 'bull' : checkQueueName(o.prefix, 'options.prefix'),
    concurrency: o.concurrency === undefined ? 1 : expectInteger(o.concurrency, 'options.concurrency', 1, 64),
    load: o.load === undefined ? {} : (expectObject(o.load, 'options.load') as Omit<LoadOptions, 'model'>),
    lockDuration: ms('lockDuration', 30_000, 1000),
    stalledInterval: ms('stalledInterval', 30_000, 500),
    maxStalledCount: o.maxStalledCount === undefined ? 1 : expectInteger(o.maxStalledCount, 'options.maxStalledCount', 0, 1000),
    controlInterval: ms('controlInterval', 250, 20),
    upscalers: o.upscalers === undefined ? [] : expectPaths(o.upscalers, 'options.upscalers'),
  };
}

/**
 * An error as the job's `failedReason`: `CODE: message`. Bad input, a model the worker does not
 * serve and a cancelled job are not retried (BullMQ's UnrecoverableError); anything else is, up
 * to the job's `attempts`.
 */
function jobError(error: unknown): Error {
  const e = jobErrorOf(error);
  const code = e instanceof StableDiffusionError ? e.code : e instanceof RangeError || e instanceof TypeError ? 'ERR_INVALID_JOB' : 'ERR_INTERNAL';
  const message = `${code}: ${e instanceof Error ? e.message : String(e)}`;
  if (code === 'ERR_INVALID_JOB' || code === 'ERR_MODEL_NOT_SERVED' || code === 'ABORT_ERR') return new UnrecoverableError(message);
  return new Error(message);
}

function resultOf(output: GenerationOutput, worker: string): GenerationJobResult {
  return {
    version: JOB_FORMAT_VERSION,
    images: output.images.map((png) => png.toString('base64')),
    infotexts: output.infotexts,
    allSeeds: output.allSeeds,
    width: output.width,
    height: output.height,
    model: { title: output.checkpoint.title, name: output.checkpoint.modelName, hash: output.checkpoint.hash ?? null, sha256: output.checkpoint.sha256 ?? null },
    clipSkip: output.clipSkip,
    inpaintingConditioning: output.inpaintingConditioning,
    interrupted: output.interrupted,
    networks: output.networks,
    ...(output.nsfwContentDetected && { nsfwContentDetected: output.nsfwContentDetected }),
    timestamp: output.timestamp,
    worker,
  };
}

/**
 * A BullMQ worker for Stable Diffusion: loads `options.model`, then takes generation jobs
 * (`GenerationJobData`: the bodies of A1111's txt2img / img2img requests) from the queue on
 * `options.redis`. Progress goes out with `job.updateProgress` (`GenerationJobProgress`), the
 * images come back as the job's return value (`GenerationJobResult`: base64 PNGs with their
 * infotext), a failure's `failedReason` starts with our error code (`ERR_INVALID_JOB: …`).
 * A job whose worker dies is retried on another (BullMQ's stalled-job check). Resolves once the
 * model is loaded and the worker is connected.
 */
export async function createWorker(options: WorkerOptions): Promise<SdWorker> {
  const o = checkWorkerOptions(options);
  const catalog = new CheckpointCatalog(undefined, [o.model]);
  await catalog.refresh();
  const models = new ModelManager(catalog, o.load);
  const start = catalog.forFile(o.model);
  await models.use(start);
  let upscalers: UpscalerSet;
  try {
    upscalers = await UpscalerSet.load(o.upscalers, o.load);
  } catch (error) {
    await models.dispose();
    throw error;
  }
  const id = `${hostname()}:${process.pid}`;
  const control = new Redis(o.redis, { maxRetriesPerRequest: null });
  // Connection trouble: ioredis reconnects by itself; a poll that fails is tried again.
  control.on('error', () => undefined);
  let counter = 0;

  const processor = async (job: Job<GenerationJobData, GenerationJobResult>, _token?: string, bullSignal?: AbortSignal): Promise<GenerationJobResult> => {
    let data: GenerationJobData;
    try {
      data = checkJobData(job.data);
    } catch (error) {
      throw jobError(error);
    }
    const wanted = (data.request.override_settings as { sd_model_checkpoint?: unknown } | null | undefined)?.sd_model_checkpoint;
    if (typeof wanted === 'string' && wanted !== '' && catalog.find(wanted) === undefined) {
      throw jobError(new StableDiffusionError('ERR_MODEL_NOT_SERVED', `This worker serves ${models.current!.checkpoint.title}, not ${JSON.stringify(wanted)}`));
    }
    const key = controlKey(o.prefix, o.queue, job.id!);
    const controller = new AbortController();
    // BullMQ's own cancellation (worker.cancelJob / cancelAllJobs in this process).
    const onBullAbort = () => controller.abort(new AbortError('The job was cancelled on its worker'));
    bullSignal?.addEventListener('abort', onBullAbort, { once: true });
    let flags: ControlFlags = await readControl(control, key);
    if (flags.cancel) throw jobError(new AbortError('The job was cancelled before it started'));
    let skipsTaken = flags.skip;

    const progress: GenerationJobProgress = { job: data.endpoint, step: 0, steps: 0, image: 0, images: 1, interrupted: false, worker: id };
    let timer: NodeJS.Timeout | undefined;
    let sent = Promise.resolve();
    const send = () => {
      timer = undefined;
      const snapshot = { ...progress };
      sent = sent.then(() => job.updateProgress(snapshot)).catch(() => undefined);
    };
    // The latest preview goes to its Redis key at most once per PREVIEW_INTERVAL_MS, encoded
    // only then (a step can be much quicker than a PNG of its preview).
    const preview = previewKey(o.prefix, o.queue, job.id!);
    let latestPreview: JobProgress['preview'] | undefined;
    let previewTimer: NodeJS.Timeout | undefined;
    let previewSent = Promise.resolve();
    const sendPreview = () => {
      const make = latestPreview!;
      previewSent = previewSent
        .then(async () => {
          const png = await make();
          if (png !== null) await writePreview(control, preview, png);
        })
        .catch(() => undefined)
        .finally(() => {
          previewTimer = undefined;
        });
    };
    const poll = setInterval(() => {
      readControl(control, key).then((f) => {
        flags = f;
        if (f.interrupt && !progress.interrupted) {
          progress.interrupted = true;
          timer ??= setTimeout(send, 0);
        }
        if (f.cancel) controller.abort(new AbortError('The job was cancelled'));
      }, () => undefined);
    }, o.controlInterval);

    const context: JobContext = {
      id: ++counter,
      started: counter,
      signal: controller.signal,
      get interrupted() {
        return flags.interrupt;
      },
      takeSkip: () => {
        if (flags.skip <= skipsTaken) return false;
        skipsTaken = flags.skip;
        return true;
      },
      report: (update: Partial<Omit<JobProgress, 'id' | 'startedAt' | 'interrupted' | 'skipped'>>) => {
        if (update.preview !== undefined) {
          latestPreview = update.preview;
          previewTimer ??= setTimeout(sendPreview, PREVIEW_INTERVAL_MS);
        }
        if (update.job !== undefined) progress.job = update.job;
        if (update.samplingStep !== undefined) progress.step = update.samplingStep;
        if (update.samplingSteps !== undefined) progress.steps = update.samplingSteps;
        if (update.jobNo !== undefined) progress.image = update.jobNo;
        if (update.jobCount !== undefined) progress.images = update.jobCount;
        timer ??= setTimeout(send, 100);
      },
    };
    try {
      // checkJobData has checked the request against the server's schema.
      const plan = data.endpoint === 'txt2img' ? planTxt2Img(data.request as Txt2ImgBodyType) : await planImg2Img(data.request as Img2ImgBodyType);
      const checkpoint = models.current!.checkpoint;
      const output = await runGeneration(models, { plan, checkpoint, clipSkip: plan.clipSkip ?? data.clipSkip ?? 1 }, context, upscalers);
      return resultOf(output, id);
    } catch (error) {
      throw jobError(error);
    } finally {
      clearInterval(poll);
      if (timer !== undefined) {
        clearTimeout(timer);
        send();
      }
      await sent;
      if (previewTimer !== undefined) clearTimeout(previewTimer);
      await previewSent;
      await removePreview(control, preview).catch(() => undefined);
      bullSignal?.removeEventListener('abort', onBullAbort);
    }
  };

  const worker = new Worker<GenerationJobData, GenerationJobResult>(o.queue, processor, {
    connection: { url: o.redis, maxRetriesPerRequest: null },
    prefix: o.prefix,
    concurrency: o.concurrency,
    lockDuration: o.lockDuration,
    stalledInterval: o.stalledInterval,
    maxStalledCount: o.maxStalledCount,
    autorun: true,
  });
  // BullMQ reports connection trouble as 'error' events; without a listener they would throw.
  worker.on('error', () => undefined);
  try {
    await worker.waitUntilReady();
  } catch (error) {
    await worker.close(true).catch(() => undefined);
    control.disconnect();
    await models.dispose();
    upscalers.dispose();
    throw error;
  }
  const loaded = models.current!.checkpoint;
  return {
    worker,
    model: { title: loaded.title, filename: loaded.filename },
    id,
    async close(force = false) {
      await worker.close(force);
      control.disconnect();
      await models.dispose();
      upscalers.dispose();
    },
  };
}
