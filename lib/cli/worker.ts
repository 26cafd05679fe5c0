// `sdnode worker`: a BullMQ worker (lib/queue/) from the command line. Loads the model, takes
// generation jobs from the queue until Ctrl-C or SIGTERM (then finishes the running ones, unless
// a second signal comes), and prints one line per job.
import { existsSync } from 'node:fs';

import { createWorker, type WorkerOptions } from '../queue/worker.js';
import { BACKENDS, WEIGHT_TYPES } from '../types.js';
import { DEMO_MODEL } from './generate.js';
import { redisLabel, untilSignal } from './serve.js';
import { oneOf, optionalInteger, parse, safetyCheckerFlag, UsageError } from './usage.js';

export const WORKER_HELP = `Usage: sdnode worker --model <file|folder|demo> --redis redis://HOST:PORT [options]

A generation worker behind a shared job queue (BullMQ on Redis): takes the txt2img and img2img
jobs that \`sdnode serve --redis\` front ends (or any BullMQ producer) add, and returns the images.
Run one per GPU or machine; a job whose worker dies goes to another.

  -m, --model PATH         the model this worker serves; "demo" is the tiny bundled model
      --redis URL          the Redis server (redis://[user:pass@]host:port[/db], rediss:// for TLS)
      --queue NAME         the BullMQ queue (default sdnode)
      --concurrency N      jobs at once on the one model (default 1)
      --lock-duration MS   a running job's lock (default 30000): a dead worker's job goes back
                           to the queue this long after it stopped renewing it
  Model: --backend ${BACKENDS.join('|')}, --threads N, --weight-type ${WEIGHT_TYPES.join('|')},
         --lora-dir DIR and --embedding-dir DIR (as for serve: <lora:NAME:W> tags in jobs' prompts),
         --tiny-vae PATH (TAESD, for jobs that ask for it), --upscaler FILE (Real-ESRGAN for
         hr_upscaler, repeatable, as for serve),
         --safety-checker on|off|PATH (diffusers' NSFW checker; default on for a diffusers folder with one)`;

/** The command line → createWorker's options. */
export function parseWorker(args: string[]): WorkerOptions {
  const { values: v, positionals } = parse(args, {
    model: { type: 'string', short: 'm' },
    redis: { type: 'string' },
    queue: { type: 'string' },
    concurrency: { type: 'string' },
    'lock-duration': { type: 'string' },
    backend: { type: 'string' },
    threads: { type: 'string' },
    'weight-type': { type: 'string' },
    'lora-dir': { type: 'string' },
    'embedding-dir': { type: 'string' },
    'tiny-vae': { type: 'string' },
    'safety-checker': { type: 'string' },
    upscaler: { type: 'string', multiple: true },
  });
  if (positionals.length > 0) throw new UsageError(`worker takes no positional arguments (got "${positionals[0]}")`);
  if (v.model === undefined) throw new UsageError('worker needs --model <file|folder|demo>');
  if (v.redis === undefined) throw new UsageError('worker needs --redis redis://HOST:PORT');
  const model = v.model === 'demo' ? DEMO_MODEL : v.model;
  if (!existsSync(model)) throw new UsageError(`--model ${model} does not exist`);
  for (const file of v.upscaler ?? []) if (!existsSync(file)) throw new UsageError(`--upscaler ${file} does not exist`);
  const concurrency = optionalInteger(v.concurrency, 'concurrency', 1, 64);
  const lockDuration = optionalInteger(v['lock-duration'], 'lock-duration', 1000, 24 * 3600 * 1000);
  const threads = optionalInteger(v.threads, 'threads', 1, 1024);
  const backend = oneOf(v.backend, 'backend', BACKENDS);
  const weightType = oneOf(v['weight-type'], 'weight-type', WEIGHT_TYPES);
  return {
    model,
    redis: v.redis,
    ...(v.queue !== undefined && { queue: v.queue }),
    ...(concurrency !== undefined && { concurrency }),
    ...(v.upscaler !== undefined && { upscalers: v.upscaler }),
    // BullMQ checks for stalled jobs every half lock, as its default (30 s lock, 30 s check) does not.
    ...(lockDuration !== undefined && { lockDuration, stalledInterval: Math.max(500, Math.round(lockDuration / 2)) }),
    load: {
      ...(backend && { backend }), ...(threads !== undefined && { threads }), ...(weightType && { weightType }),
      ...(v['lora-dir'] !== undefined && { loraDirs: [v['lora-dir']] }),
      ...(v['embedding-dir'] !== undefined && { embeddingDirs: [v['embedding-dir']] }),
      ...(v['tiny-vae'] !== undefined && { tinyVae: v['tiny-vae'] }),
      ...(v['safety-checker'] !== undefined && { safetyChecker: safetyCheckerFlag(v['safety-checker']) }),
    },
  };
}

/** Runs `sdnode worker` until SIGINT or SIGTERM. */
export async function worker(args: string[]): Promise<void> {
  const options = parseWorker(args);
  const w = await createWorker(options);
  const started = new Map<string, number>();
  w.worker.on('active', (job) => started.set(job.id!, Date.now()));
  w.worker.on('completed', (job) => {
    const ms = Date.now() - (started.get(job.id!) ?? Date.now());
    started.delete(job.id!);
    console.log(`sdnode worker: completed ${job.id} in ${ms} ms${job.returnvalue?.interrupted ? ' (interrupted)' : ''}`);
  });
  w.worker.on('failed', (job, error) => {
    if (job?.id !== undefined) started.delete(job.id);
    console.log(`sdnode worker: failed ${job?.id ?? '?'}: ${error.message}`);
  });
  console.log(`sdnode worker ${w.id}: serving ${w.model.title} from queue ${options.queue ?? 'sdnode'} on ${redisLabel(options.redis)}`);
  await untilSignal();
  console.log('sdnode worker: finishing the running jobs (a second signal stops at once)');
  // A second signal stops at once: the running jobs' locks then expire and BullMQ's stalled-job
  // check gives them to another worker.
  const again = () => process.exit(130);
  process.once('SIGINT', again);
  process.once('SIGTERM', again);
  await w.close();
}
