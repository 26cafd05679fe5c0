// The job queue as the HTTP layer sees it. The in-process queue (local-queue.ts) is one
// implementation; a queue shared by several processes (BullMQ on Redis, issue 24) is meant to be
// another: payloads and results are plain data, and progress, interrupt and skip go through here.

/** What a running job reports, in A1111's terms (GET /sdapi/v1/progress). */
export interface JobProgress {
  /** What the job is doing: 'txt2img', 'img2img', 'inpaint', 'load'. */
  job: string;
  /** The queue's number for the job (1, 2, … in the order jobs were added; a BullMQ job id with --redis). */
  id: number | string;
  /** Images done so far and images in the job (A1111's job_no and job_count). */
  jobNo: number;
  jobCount: number;
  /** Denoising steps done of the current image, and its step count. */
  samplingStep: number;
  samplingSteps: number;
  /** When the job started (ms since the epoch). */
  startedAt: number;
  /** Whether interrupt or skip was asked for. */
  interrupted: boolean;
  skipped: boolean;
  /** The latest preview of the current image as PNG bytes, made on demand; null when there is none yet. */
  preview(): Promise<Buffer | null>;
}

/** The queue now: the running job, if any, how many wait, and how the jobs so far ended. */
export interface QueueState {
  running: JobProgress | undefined;
  waiting: number;
  capacity: number;
  /** Jobs running now, on every worker (a shared queue only). */
  active?: number;
  /** Jobs that ended with a result, with an error, or cancelled (waiting or running) since the queue started. */
  finished: { completed: number; failed: number; cancelled: number };
}

/** Where a job stands and what it may do while it runs. */
export interface JobContext {
  /** The queue's number for the job. */
  readonly id: number;
  /** Its place in the order jobs started (1 for the first job the queue ran). */
  readonly started: number;
  /** Aborted when nobody wants the result any more (the client went away, the server closes): stop at once. */
  readonly signal: AbortSignal;
  /** A1111's interrupt: finish the current image with what it has and start no other. */
  readonly interrupted: boolean;
  /** A1111's skip: true once per request to finish the current image early and go on with the next. */
  takeSkip(): boolean;
  /** Updates what GET /progress shows. */
  report(update: Partial<Omit<JobProgress, 'id' | 'startedAt' | 'interrupted' | 'skipped'>>): void;
}

/** Runs one job; the queue runs one at a time. */
export type JobRunner<P, R> = (payload: P, context: JobContext) => Promise<R>;

/** A FIFO of generation jobs, one running at a time. */
export interface JobQueue<P, R> {
  /**
   * Adds a job and resolves with its result. Rejects with QueueFullError when `capacity` jobs
   * already wait, and with an AbortError when `signal` aborts first (a waiting job is then
   * removed; a running one is stopped).
   */
  add(payload: P, options?: { signal?: AbortSignal }): Promise<R>;
  /** The running job and the number waiting. */
  state(): QueueState | Promise<QueueState>;
  /** Stops the running job at its next step, keeping what it made (A1111's interrupt). */
  interrupt(): void | Promise<void>;
  /** Ends the running job's current image early and goes on (A1111's skip). */
  skip(): void | Promise<void>;
  /** Refuses new jobs, cancels the waiting ones and stops the running one. */
  close(): Promise<void>;
}

/** The queue is full: answer 503 with Retry-After. */
export class QueueFullError extends Error {
  constructor(
    /** Seconds after which a retry may find room (an estimate from recent job times). */
    readonly retryAfter: number,
    capacity: number,
  ) {
    super(`The queue is full (${capacity} jobs waiting); retry in about ${retryAfter} s`);
    this.name = 'QueueFullError';
  }
}
