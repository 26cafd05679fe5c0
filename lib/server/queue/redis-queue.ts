// The queue of `sdnode serve --redis`: jobs go to a BullMQ queue on Redis and run on whichever
// `sdnode worker` takes them; this front end waits for each result (BullMQ's QueueEvents), reads
// progress from the running jobs (and their previews, lib/queue/preview.ts), and reaches their workers for interrupt, skip and cancel through
// small control keys (lib/queue/control.ts). Several front ends may share one queue.
import { setMaxListeners } from 'node:events';

import { Queue, QueueEvents, type Job } from 'bullmq';
import { Redis } from 'ioredis';

import { AbortError, StableDiffusionError, type ErrorCode } from '../../errors.js';
import { controlKey, writeControl } from '../../queue/control.js';
import { previewKey, readPreview } from '../../queue/preview.js';
import type { GenerationJobData, GenerationJobProgress, GenerationJobResult } from '../../queue/payload.js';
import { HttpError, invalidField } from '../http/errors.js';
import { QueueFullError, type JobProgress, type JobQueue, type QueueState } from './types.js';

/** Where the shared queue is. */
export interface RedisQueueTarget {
  url: string;
  queue: string;
  prefix: string;
}

/** How the server's jobs become queue jobs and results come back. */
export interface RedisJobCodec<P, R> {
  /** The job's data and id; throws (an HttpError) for what the shared queue cannot do. */
  toJob(payload: P): { data: GenerationJobData; jobId: string };
  fromResult(result: GenerationJobResult, jobId: string): R;
}

/** How long finished jobs stay in Redis (for idempotent retries, dashboards and debugging). */
const KEEP_COMPLETED = { age: 3600, count: 1000 };
const KEEP_FAILED = { age: 24 * 3600, count: 5000 };

/** A failed job's reason (`CODE: message`) as the error the HTTP layer answers. */
function failure(reason: string): Error {
  const match = /^([A-Z][A-Z0-9_]+): ([\s\S]*)$/.exec(reason);
  const code = (match?.[1] ?? 'ERR_INTERNAL') as ErrorCode;
  const message = match?.[2] ?? reason;
  switch (code) {
    case 'ERR_INVALID_JOB': return invalidField([], message);
    case 'ERR_MODEL_NOT_SERVED': return new HttpError(404, `Model not found: ${message}`);
    case 'ABORT_ERR': return new AbortError(message);
    default: return new StableDiffusionError(code, message);
  }
}

export class RedisQueue<P, R> implements JobQueue<P, R> {
  readonly #queue: Queue<GenerationJobData, GenerationJobResult>;
  readonly #events: QueueEvents;
  readonly #control: Redis;
  readonly #target: RedisQueueTarget;
  readonly #codec: RedisJobCodec<P, R>;
  readonly #capacity: number;
  readonly #closing = new AbortController();
  readonly #finished = { completed: 0, failed: 0, cancelled: 0 };
  readonly #recentMs: number[] = [];
  readonly #cancels = new Set<Promise<void>>();

  private constructor(target: RedisQueueTarget, codec: RedisJobCodec<P, R>, capacity: number) {
    const connection = { url: target.url, maxRetriesPerRequest: null };
    this.#target = target;
    this.#codec = codec;
    this.#capacity = capacity;
    this.#queue = new Queue(target.queue, { connection, prefix: target.prefix });
    this.#events = new QueueEvents(target.queue, { connection, prefix: target.prefix });
    this.#control = new Redis(target.url, { maxRetriesPerRequest: null });
    // One listener per job waited for (at most the capacity plus the running jobs).
    setMaxListeners(0, this.#closing.signal);
    this.#events.setMaxListeners(0);
    this.#queue.setMaxListeners(0);
    // Connection trouble is reported as 'error' events; requests then fail on their own.
    this.#queue.on('error', () => undefined);
    this.#events.on('error', () => undefined);
    this.#control.on('error', () => undefined);
  }

  /** Connects to Redis; rejects when it cannot be reached. */
  static async create<P, R>(target: RedisQueueTarget, codec: RedisJobCodec<P, R>, capacity: number): Promise<RedisQueue<P, R>> {
    const queue = new RedisQueue(target, codec, capacity);
    try {
      await Promise.all([queue.#queue.waitUntilReady(), queue.#events.waitUntilReady(), queue.#control.ping()]);
    } catch (error) {
      await queue.close();
      throw new Error(`Cannot reach Redis at ${target.url}: ${(error as Error).message}`, { cause: error });
    }
    return queue;
  }

  async add(payload: P, options: { signal?: AbortSignal } = {}): Promise<R> {
    if (this.#closing.signal.aborted) throw new AbortError('The server is closing');
    const { data, jobId } = this.#codec.toJob(payload);
    const waiting = await this.#queue.getWaitingCount();
    if (waiting >= this.#capacity) throw new QueueFullError(this.#retryAfter(), this.#capacity);
    const signal = options.signal;
    if (signal?.aborted) throw new AbortError('The request was cancelled', { cause: signal.reason });
    const job = await this.#queue.add('generate', data, { jobId, removeOnComplete: KEEP_COMPLETED, removeOnFail: KEEP_FAILED });
    const started = Date.now();
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_resolve, reject) => {
      onAbort = () => {
        const closing = this.#closing.signal.aborted && !signal?.aborted;
        const cancel = this.#cancel(job);
        this.#cancels.add(cancel);
        void cancel.finally(() => this.#cancels.delete(cancel));
        reject(new AbortError(closing ? 'The server is closing' : 'The request was cancelled', { cause: signal?.reason }));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#closing.signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const result = await Promise.race([job.waitUntilFinished(this.#events), aborted]);
      this.#remember(Date.now() - started);
      this.#finished.completed++;
      return this.#codec.fromResult(result, job.id!);
    } catch (error) {
      if (error instanceof AbortError) {
        this.#finished.cancelled++;
        throw error;
      }
      const reason = error instanceof Error ? error.message : String(error);
      const mapped = failure(reason);
      if (mapped instanceof AbortError) this.#finished.cancelled++;
      else this.#finished.failed++;
      throw mapped;
    } finally {
      signal?.removeEventListener('abort', onAbort!);
      this.#closing.signal.removeEventListener('abort', onAbort!);
    }
  }

  /** A job nobody waits for: removed if it has not started, told to stop if it has. */
  async #cancel(job: Job<GenerationJobData, GenerationJobResult>): Promise<void> {
    try {
      await writeControl(this.#control, controlKey(this.#target.prefix, this.#target.queue, job.id!), 'cancel');
      const state = await job.getState();
      if (state === 'waiting' || state === 'prioritized' || state === 'delayed') await job.remove();
    } catch {
      // Taken by a worker meanwhile (it sees the cancel key), or Redis is gone.
    }
  }

  async state(): Promise<QueueState> {
    const [active, waiting] = await Promise.all([this.#queue.getActive(0, 999), this.#queue.getWaitingCount()]);
    const first = active
      .filter((job) => typeof job.processedOn === 'number')
      .sort((a, b) => a.processedOn! - b.processedOn!)[0];
    let running: JobProgress | undefined;
    if (first) {
      const p = (typeof first.progress === 'object' && first.progress !== null ? first.progress : {}) as Partial<GenerationJobProgress>;
      running = {
        job: p.job ?? first.data?.endpoint ?? '',
        id: first.id!,
        jobNo: p.image ?? 0,
        jobCount: p.images ?? 1,
        samplingStep: p.step ?? 0,
        samplingSteps: p.steps ?? 0,
        startedAt: first.processedOn!,
        interrupted: p.interrupted ?? false,
        skipped: false,
        // The worker's latest preview (lib/queue/preview.ts); none until its first write.
        preview: () => readPreview(this.#control, previewKey(this.#target.prefix, this.#target.queue, first.id!)),
      };
    }
    return { running, waiting, capacity: this.#capacity, active: active.length, finished: { ...this.#finished } };
  }

  /** A1111's interrupt, for every running job of the queue (A1111 interrupts the one it runs). */
  async interrupt(): Promise<void> {
    await this.#signalActive('interrupt');
  }

  async skip(): Promise<void> {
    await this.#signalActive('skip');
  }

  async #signalActive(what: 'interrupt' | 'skip'): Promise<void> {
    const active = await this.#queue.getActive(0, 999);
    await Promise.all(active.map((job) => writeControl(this.#control, controlKey(this.#target.prefix, this.#target.queue, job.id!), what)));
  }

  /** Stops waiting for results (their jobs are cancelled: nobody would read them) and disconnects. */
  async close(): Promise<void> {
    this.#closing.abort();
    // Let the cancel writes go out before the connection closes.
    await Promise.allSettled([...this.#cancels]);
    await Promise.allSettled([this.#events.close(), this.#queue.close()]);
    await this.#control.quit().catch(() => this.#control.disconnect());
  }

  #remember(ms: number): void {
    this.#recentMs.push(ms);
    if (this.#recentMs.length > 8) this.#recentMs.shift();
  }

  #retryAfter(): number {
    const mean = this.#recentMs.length === 0 ? 10_000 : this.#recentMs.reduce((a, b) => a + b, 0) / this.#recentMs.length;
    return Math.max(1, Math.min(3600, Math.ceil(mean / 1000)));
  }
}
