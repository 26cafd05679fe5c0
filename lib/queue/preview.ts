// The running job's preview across processes: a worker keeps the latest one (PNG bytes) in a Redis
// key beside the queue's, `<prefix>:<queue>:sdnode:preview:<jobId>`, at most about once a second,
// and a front end reads it for `GET /sdapi/v1/progress`'s `current_image`. A key rather than the
// job's progress object: progress goes to every listener of the queue's events on each update,
// and a full-size TAESD preview is hundreds of kilobytes, while clients poll /progress only now
// and then.
import type { Redis } from 'ioredis';

/** How long a preview outlives its last write (a worker that died mid-job leaves no lasting key). */
const PREVIEW_TTL_S = 120;

export function previewKey(prefix: string, queue: string, jobId: string): string {
  return `${prefix}:${queue}:sdnode:preview:${jobId}`;
}

export async function writePreview(redis: Redis, key: string, png: Buffer): Promise<void> {
  await redis.set(key, png, 'EX', PREVIEW_TTL_S);
}

/** The latest preview, or null when the worker has written none (yet). */
export async function readPreview(redis: Redis, key: string): Promise<Buffer | null> {
  return redis.getBuffer(key);
}

export async function removePreview(redis: Redis, key: string): Promise<void> {
  await redis.del(key);
}
