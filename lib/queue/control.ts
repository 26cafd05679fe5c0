// Interrupt, skip and cancel across processes. BullMQ's own cancellation (`worker.cancelJob`)
// reaches only the jobs of the worker object it is called on, in that process; a front end on
// another machine cannot call it. So a front end writes a small hash in Redis beside the queue's
// keys, `<prefix>:<queue>:sdnode:control:<jobId>`, and the worker running the job polls it while
// the job runs (a few times a second; nothing is lost if the worker was busy or restarting, unlike
// a pub/sub message). Fields: `interrupt` (1: A1111's interrupt), `skip` (a count: each one ends
// the current image early), `cancel` (1: nobody wants the result; stop and fail the job).
import type { Redis } from 'ioredis';

/** How long a control hash outlives its last write. */
const CONTROL_TTL_S = 24 * 3600;

export interface ControlFlags {
  interrupt: boolean;
  skip: number;
  cancel: boolean;
}

export function controlKey(prefix: string, queue: string, jobId: string): string {
  return `${prefix}:${queue}:sdnode:control:${jobId}`;
}

export async function readControl(redis: Redis, key: string): Promise<ControlFlags> {
  const fields = await redis.hgetall(key);
  return { interrupt: fields.interrupt === '1', skip: Number(fields.skip ?? 0) || 0, cancel: fields.cancel === '1' };
}

export async function writeControl(redis: Redis, key: string, what: 'interrupt' | 'skip' | 'cancel'): Promise<void> {
  const multi = redis.multi();
  if (what === 'skip') multi.hincrby(key, 'skip', 1);
  else multi.hset(key, what, '1');
  multi.expire(key, CONTROL_TTL_S);
  await multi.exec();
}
