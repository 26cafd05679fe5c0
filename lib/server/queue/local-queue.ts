// The in-process job queue: FIFO, one job running at a time, at most `capacity` waiting.
import { AbortError } from '../../errors.js';
import { QueueFullError, type JobContext, type JobProgress, type JobQueue, type JobRunner, type QueueState } from './types.js';

interface Entry<P, R> {
  id: number;
  payload: P;
  controller: AbortController;
  resolve(result: R): void;
  reject(error: unknown): void;
  detach(): void;
}

interface Running {
  progress: JobProgress;
  interrupted: boolean;
  skip: boolean;
  controller: AbortController;
  done: Promise<void>;
}

const RECENT = 8;

/** The queue `sdnode serve` uses unless another is given. */
export class LocalQueue<P, R> implements JobQueue<P, R> {
  readonly #run: JobRunner<P, R>;
  readonly #capacity: number;
  readonly #waiting: Entry<P, R>[] = [];
  #running: Running | undefined;
  #nextId = 1;
  #started = 0;
  #closed = false;
  readonly #recentMs: number[] = [];
  readonly #finished = { completed: 0, failed: 0, cancelled: 0 };

  constructor(run: JobRunner<P, R>, capacity: number) {
    this.#run = run;
    this.#capacity = capacity;
  }

  add(payload: P, options: { signal?: AbortSignal } = {}): Promise<R> {
    if (this.#closed) return Promise.reject(new AbortError('The server is closing'));
    if (this.#waiting.length >= this.#capacity) return Promise.reject(new QueueFullError(this.#retryAfter(), this.#capacity));
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(new AbortError('The request was cancelled', { cause: signal.reason }));
    return new Promise<R>((resolve, reject) => {
      const controller = new AbortController();
      const onAbort = () => {
        const index = this.#waiting.indexOf(entry);
        if (index >= 0) {
          this.#waiting.splice(index, 1);
          this.#finished.cancelled++;
          entry.reject(new AbortError('The request was cancelled while it waited', { cause: signal?.reason }));
        }
        controller.abort(signal?.reason);
      };
      const entry: Entry<P, R> = {
        id: this.#nextId++,
        payload,
        controller,
        resolve,
        reject,
        detach: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(entry);
      this.#pump();
    });
  }

  state(): QueueState {
    return {
      running: this.#running && { ...this.#running.progress },
      waiting: this.#waiting.length,
      capacity: this.#capacity,
      finished: { ...this.#finished },
    };
  }

  interrupt(): void {
    if (this.#running) this.#running.interrupted = this.#running.progress.interrupted = true;
  }

  skip(): void {
    if (this.#running) this.#running.skip = this.#running.progress.skipped = true;
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const entry of this.#waiting.splice(0)) {
      this.#finished.cancelled++;
      entry.detach();
      entry.reject(new AbortError('The server is closing'));
    }
    const running = this.#running;
    if (running) {
      running.controller.abort(new AbortError('The server is closing'));
      await running.done;
    }
  }

  #pump(): void {
    if (this.#running || this.#closed) return;
    const entry = this.#waiting.shift();
    if (entry === undefined) return;
    const startedAt = Date.now();
    const running: Running = {
      progress: {
        job: '', id: entry.id, jobNo: 0, jobCount: 1, samplingStep: 0, samplingSteps: 0, startedAt,
        interrupted: false, skipped: false, preview: async () => null,
      },
      interrupted: false,
      skip: false,
      controller: entry.controller,
      done: Promise.resolve(),
    };
    const context: JobContext = {
      id: entry.id,
      started: ++this.#started,
      signal: entry.controller.signal,
      get interrupted() {
        return running.interrupted;
      },
      takeSkip: () => {
        const skip = running.skip;
        running.skip = running.progress.skipped = false;
        return skip;
      },
      report: (update) => Object.assign(running.progress, update),
    };
    this.#running = running;
    running.done = (async () => {
      try {
        const result = await this.#run(entry.payload, context);
        this.#remember(Date.now() - startedAt);
        this.#finished.completed++;
        entry.resolve(result);
      } catch (error) {
        if (entry.controller.signal.aborted) this.#finished.cancelled++;
        else this.#finished.failed++;
        entry.reject(error);
      } finally {
        entry.detach();
        this.#running = undefined;
        this.#pump();
      }
    })();
  }

  #remember(ms: number): void {
    this.#recentMs.push(ms);
    if (this.#recentMs.length > RECENT) this.#recentMs.shift();
  }

  /** Seconds until the queue has likely moved by one: the mean of recent jobs times those ahead. */
  #retryAfter(): number {
    const mean = this.#recentMs.length === 0 ? 10_000 : this.#recentMs.reduce((a, b) => a + b, 0) / this.#recentMs.length;
    return Math.max(1, Math.min(3600, Math.ceil(mean / 1000)));
  }
}
