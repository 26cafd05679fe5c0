// Throughput of 1 vs N `sdnode worker`s (issue 24): a throwaway redis-server on loopback, the
// workers as child processes of the compiled CLI (1 thread each), jobs added straight to the
// BullMQ queue (as a `serve --redis` front end adds them), images per minute from the first add
// to the last completion. Each worker first runs warm-up jobs (graphs built, buffers allocated).
//
//   npx tsc -p tsconfig.json && node --import tsx bench/scale-out.ts [--model DIR] [--jobs 24]
//     [--size 128] [--steps 20] [--workers 1,2] [--threads 1]
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { Queue, QueueEvents } from 'bullmq';

import { packageRoot } from '../lib/native.js';
import { findRedisServer, startRedis } from '../test/helpers/redis.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: join(packageRoot, 'test', 'fixtures', 'tiny', 'sd1-diffusers') },
    jobs: { type: 'string', default: '24' },
    size: { type: 'string', default: '128' },
    steps: { type: 'string', default: '20' },
    workers: { type: 'string', default: '1,2' },
    threads: { type: 'string', default: '1' },
  },
});
const CLI = join(packageRoot, 'dist', 'cli', 'sdnode.js');
const jobs = Number(values.jobs);
const size = Number(values.size);
const steps = Number(values.steps);

function spawnWorker(redis: string, queue: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, 'worker', '--model', values.model!, '--redis', redis, '--queue', queue, '--threads', values.threads!], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes(': serving ')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`worker exited with ${code}`)));
  });
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux; 100 ticks a second). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface Result {
  seconds: number;
  perMinute: number;
  /** CPU seconds the workers spent per image during the timed part. */
  cpuPerImage: number;
}

async function run(redis: string, count: number): Promise<Result> {
  const name = `bench-${count}`;
  const connection = { url: redis };
  const queue = new Queue(name, { connection });
  const events = new QueueEvents(name, { connection });
  queue.setMaxListeners(0);
  events.setMaxListeners(0);
  await events.waitUntilReady();
  const workers = await Promise.all(Array.from({ length: count }, () => spawnWorker(redis, name)));
  try {
    return await measure(queue, events, count, workers);
  } finally {
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map((w) => new Promise((resolve) => (w.exitCode !== null ? resolve(null) : w.once('exit', resolve)))));
    await events.close();
    await queue.close();
  }
}

async function measure(queue: Queue, events: QueueEvents, count: number, workers: ChildProcess[]): Promise<Result> {
  const job = (i: number) => ({ version: 1, endpoint: 'txt2img', request: { prompt: `bench ${i}`, steps, width: size, height: size, seed: i } });
  // Warm-up: two jobs per worker, all at once, so that each worker builds its graphs.
  await Promise.all(Array.from({ length: 2 * count }, async (_, i) => (await queue.add('warm', job(100_000 + i) as never)).waitUntilFinished(events)));
  const cpuBefore = workers.reduce((sum, w) => sum + cpuSeconds(w.pid!), 0);
  const start = performance.now();
  const added = await queue.addBulk(Array.from({ length: jobs }, (_, i) => ({ name: 'generate', data: job(i) as never })));
  await Promise.all(added.map((j) => j.waitUntilFinished(events)));
  const seconds = (performance.now() - start) / 1000;
  const cpu = workers.reduce((sum, w) => sum + cpuSeconds(w.pid!), 0) - cpuBefore;
  return { seconds, perMinute: (jobs / seconds) * 60, cpuPerImage: cpu / jobs };
}

const binary = findRedisServer();
if (binary.missing) throw new Error(binary.missing);
const redis = await startRedis(binary.path!);
console.log(`${cpus().length} cores (${cpus()[0]?.model}), load average before: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log(`${jobs} jobs of ${size}×${size}, ${steps} steps (Euler, CFG 7) on ${values.model}, ${values.threads} thread(s) per worker`);
const results: ({ workers: number } & Result)[] = [];
try {
  for (const count of values.workers!.split(',').map(Number)) {
    const r = await run(redis.url, count);
    // Compared with the latest run of one worker, so that alternating rounds (1,2,1,2) each give a ratio.
    const single = results.filter((x) => x.workers === 1).at(-1);
    results.push({ workers: count, ...r });
    console.log(`${count} worker(s): ${r.seconds.toFixed(1)} s, ${r.perMinute.toFixed(1)} images/min, ${r.cpuPerImage.toFixed(2)} CPU s/image` +
      (single && count !== 1 ? `, ${(r.perMinute / single.perMinute).toFixed(2)}× the 1-worker run before it` : ''));
  }
} finally {
  await redis.stop();
}
console.log(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
