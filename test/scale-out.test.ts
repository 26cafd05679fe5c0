// Scale-out (issue 24): two `sdnode worker` child processes (the compiled CLI) and one front end
// (createServer({ redis })) on a real redis-server started here on loopback, on the tiny diffusers
// model. 40 jobs complete exactly once; a worker killed mid-job (SIGKILL) has its job finished by
// the other; an interrupt reaches the worker running the job; poison jobs fail with a code and do
// not hold up the others. Without redis-server the suite skips, unless CI=true.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';

import { createServer, createWorker, checkJobData } from '../lib/index.js';
import { parseWorker } from '../lib/cli/worker.js';
import { readPngText } from '../lib/png-parameters.js';
import { call, CLI, pixels, scratch, startServer, waitFor } from './helpers/server.js';
import { findRedisServer, startRedis } from './helpers/redis.js';

const MODEL = join(import.meta.dirname, 'fixtures', 'tiny', 'sd1-diffusers');
const X2 = join(import.meta.dirname, 'fixtures', 'tiny', 'esrgan', 'tiny-x2.safetensors');
const redisServer = findRedisServer();
if (redisServer.missing && process.env.CI === 'true') throw new Error(`The scale-out suite needs Redis: ${redisServer.missing}`);

/** `sdnode worker` in a child process; resolves once it serves. Lines it prints are kept. */
async function spawnWorker(redis: string, queue: string): Promise<{ child: ChildProcess; pid: number; lines: string[]; completed(): string[]; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [CLI, 'worker', '--model', MODEL, '--redis', redis, '--queue', queue, '--threads', '1', '--lock-duration', '2000', '--upscaler', X2], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let output = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const parts = output.split('\n');
      output = parts.pop()!;
      lines.push(...parts);
      if (parts.some((line) => line.includes(': serving '))) resolve();
    });
    child.stderr!.on('data', (chunk: Buffer) => lines.push(chunk.toString()));
    child.once('exit', (code) => reject(new Error(`sdnode worker exited with ${code}: ${lines.join('\n')}`)));
  });
  return {
    child,
    pid: child.pid!,
    lines,
    completed: () => lines.flatMap((line) => /^sdnode worker: completed (\S+)/.exec(line)?.[1] ?? []),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

describe('options at the edge', () => {
  test('createWorker and createServer refuse bad and unknown options before connecting', async () => {
    await assert.rejects(createWorker({ model: MODEL, redis: 'redis://127.0.0.1:1', nope: 1 } as never), /Unknown worker option "nope"/);
    await assert.rejects(createWorker({ model: MODEL, redis: 'http://127.0.0.1:6379' }), (e: Error) => e instanceof RangeError && /redis:\/\//.test(e.message));
    await assert.rejects(createWorker({ model: MODEL, redis: 42 } as never), TypeError);
    await assert.rejects(createWorker({ model: MODEL, redis: 'redis://h:1', concurrency: 0 }), RangeError);
    await assert.rejects(createWorker({ model: MODEL, redis: 'redis://h:1', queue: 'a b' }), RangeError);
    await assert.rejects(createServer({ model: MODEL, redis: { url: 'redis://h:1', colour: 'red' } as never }), /Unknown option 'colour' in options.redis/);
    await assert.rejects(createServer({ model: MODEL, redis: 5 as never }), TypeError);
  });

  test('sdnode worker and serve --redis: usage errors in one line, and help', () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
    for (const [args, message] of [
      [['worker', '--model', MODEL], /worker needs --redis/],
      [['worker', '--redis', 'redis://127.0.0.1:1'], /worker needs --model/],
      [['worker', '--model', MODEL, '--redis', 'redis://127.0.0.1:1', '--concurrency', '0'], /--concurrency must be an integer from 1 to 64/],
      [['serve', '--model', MODEL, '--queue', 'q'], /--queue needs --redis/],
    ] as const) {
      const result = run(...args);
      assert.notEqual(result.status, 0);
      assert.match(result.stderr, message);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    }
    const help = run('worker', '--help');
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--lock-duration MS/);
    assert.match(run('--help').stdout, /worker --model <m> --redis <url>/);
  });

  test('sdnode worker passes its model flags to the load', () => {
    const options = parseWorker([
      '--model', 'demo', '--redis', 'redis://127.0.0.1:1', '--threads', '1', '--lora-dir', '/loras', '--embedding-dir', '/embeddings',
      '--tiny-vae', '/taesd', '--upscaler', X2,
    ]);
    assert.deepEqual(options.load, { threads: 1, loraDirs: ['/loras'], embeddingDirs: ['/embeddings'], tinyVae: '/taesd' });
    assert.deepEqual(options.upscalers, [X2]);
  });

  test('job data is checked with the server\'s schemas', () => {
    assert.doesNotThrow(() => checkJobData({ version: 1, endpoint: 'txt2img', request: { prompt: 'x', steps: 2 } }));
    const code = (data: unknown) => {
      try {
        checkJobData(data);
      } catch (error) {
        return `${(error as { code: string }).code}: ${(error as Error).message}`;
      }
      return 'accepted';
    };
    assert.match(code({ version: 2, endpoint: 'txt2img', request: {} }), /^ERR_INVALID_JOB: .*version must be 1/);
    assert.match(code({ version: 1, endpoint: 'upscale', request: {} }), /^ERR_INVALID_JOB: .*endpoint/);
    assert.match(code({ version: 1, endpoint: 'txt2img', request: { width: 'wide' } }), /^ERR_INVALID_JOB: width must be an integer/);
    assert.match(code({ version: 1, endpoint: 'txt2img', request: {}, extra: 1 }), /^ERR_INVALID_JOB: Unknown job data field "extra"/);
  });
});

describe('two workers and a front end on one Redis queue', { skip: redisServer.missing, timeout: 240_000 }, () => {
  const tmp = scratch('scale-out');
  const queueName = 'scale-test';
  let redis: Awaited<ReturnType<typeof startRedis>>;
  let workers: Awaited<ReturnType<typeof spawnWorker>>[] = [];
  let front: Awaited<ReturnType<typeof startServer>>;
  let queue: Queue;
  let events: QueueEvents;

  before(async () => {
    redis = await startRedis(redisServer.path!);
    workers = await Promise.all([spawnWorker(redis.url, queueName), spawnWorker(redis.url, queueName)]);
    front = await startServer({ model: MODEL, redis: { url: redis.url, queue: queueName }, queueSize: 64 });
    queue = new Queue(queueName, { connection: { url: redis.url } });
    events = new QueueEvents(queueName, { connection: { url: redis.url } });
    await events.waitUntilReady();
  });

  after(async () => {
    await front?.close();
    await events?.close();
    await queue?.close();
    await Promise.all(workers.map((w) => w.stop()));
    await redis?.stop();
    tmp.dispose();
  });

  const allCompleted = () => workers.flatMap((w) => w.completed());

  test('40 jobs through the front end complete exactly once, spread over both workers', async () => {
    const before = allCompleted().length;
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => call(front.url, '/sdapi/v1/txt2img', { prompt: `job ${i}`, steps: 2, width: 32, height: 32, seed: 1000 + i })),
    );
    const ids = answers.map((a) => {
      assert.equal(a.status, 200, JSON.stringify(a.body));
      assert.equal(a.body.images.length, 1);
      const info = JSON.parse(a.body.info);
      assert.equal(info.seed, 1000 + answers.indexOf(a));
      return a.headers.get('x-sdnode-job-id')!;
    });
    assert.equal(new Set(ids).size, 40);
    const text = readPngText(Buffer.from(answers[7]!.body.images[0], 'base64')).parameters!;
    assert.match(text, /^job 7\n.*Seed: 1007/s);
    // Each worker prints a line when BullMQ has recorded the completion; wait for the lines.
    const done = await waitFor(async () => (allCompleted().length - before >= 40 ? allCompleted() : undefined), 10_000);
    for (const id of ids) assert.equal(done.filter((d) => d === id).length, 1, `job ${id} completed once`);
    assert.equal(done.length - before, 40);
    const byWorker = new Set(answers.map((a) => a.headers.get('x-sdnode-worker')));
    assert.equal(byWorker.size, 2, `both workers took jobs: ${[...byWorker].join(', ')}`);
  });

  test('the same Idempotency-Key twice is one job', async () => {
    const body = { prompt: 'once', steps: 2, width: 32, height: 32, seed: 5 };
    const headers = { 'idempotency-key': 'request-42' };
    const [a, b] = await Promise.all([call(front.url, '/sdapi/v1/txt2img', body, { headers }), call(front.url, '/sdapi/v1/txt2img', body, { headers })]);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.equal(a.headers.get('x-sdnode-job-id'), 'key-request-42');
    assert.equal(b.headers.get('x-sdnode-job-id'), 'key-request-42');
    assert.deepEqual(a.body.images, b.body.images);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(allCompleted().filter((id) => id === 'key-request-42').length, 1);
  });

  test('progress and interrupt reach the worker running the job', async () => {
    const pending = call(front.url, '/sdapi/v1/txt2img', { prompt: 'long', steps: 150, width: 64, height: 64, seed: 7 });
    await waitFor(async () => {
      const { body } = await call(front.url, '/sdapi/v1/progress?skip_current_image=true');
      return body.state.sampling_step >= 2 && body.state.sampling_steps === 150 ? body : undefined;
    }, 60_000);
    // The worker's preview (the 1/8-size latent map), written to Redis about once a second.
    const withImage = await waitFor(async () => {
      const { body } = await call(front.url, '/sdapi/v1/progress');
      return body.current_image ? body : undefined;
    }, 30_000);
    const preview = await pixels(withImage.current_image);
    assert.deepEqual([preview.width, preview.height], [8, 8]);
    const interrupt = await call(front.url, '/sdapi/v1/interrupt', {});
    assert.equal(interrupt.status, 200);
    const answer = await pending;
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const info = JSON.parse(answer.body.info);
    assert.equal(info.interrupted, true);
    assert.equal(answer.body.images.length, 1, 'the image made so far comes back, as A1111 does');
    // The worker removes the preview's key when the job ends.
    const client = new Redis(redis.url);
    try {
      await waitFor(async () => ((await client.keys('*:sdnode:preview:*')).length === 0 ? true : undefined), 10_000);
    } finally {
      client.disconnect();
    }
  });

  test('a client that disconnects cancels its job on the worker (ABORT_ERR, not retried)', async () => {
    const controller = new AbortController();
    const pending = call(front.url, '/sdapi/v1/txt2img', { prompt: 'abandoned', steps: 150, width: 64, height: 64, seed: 9 }, { signal: controller.signal });
    const active = await waitFor(async () => {
      const [job] = await queue.getActive();
      return job && ((job.progress as { step?: number }).step ?? 0) >= 2 ? job.id! : undefined;
    }, 60_000);
    controller.abort();
    await assert.rejects(pending, { name: 'AbortError' });
    const failed = await waitFor(async () => {
      const job = await queue.getJob(active);
      return job?.failedReason ? job : undefined;
    }, 10_000);
    assert.match(failed.failedReason, /^ABORT_ERR: /);
    assert.equal(failed.attemptsMade, 1);
    assert.ok(failed.progress && (failed.progress as { step: number }).step < 150, 'stopped before its last step');
  });

  test('poison jobs fail with ERR_INVALID_JOB and do not hold up the queue', async () => {
    const poison = [
      await queue.add('generate', { version: 1, endpoint: 'txt2img', request: { width: 'wide' } } as never),
      await queue.add('generate', { version: 99, endpoint: 'txt2img', request: {} } as never),
      await queue.add('generate', { version: 1, endpoint: 'txt2img', request: { prompt: 'x', sampler_name: 'No Such Sampler' } } as never),
    ];
    const good = Promise.all(Array.from({ length: 4 }, (_, i) => call(front.url, '/sdapi/v1/txt2img', { prompt: `after ${i}`, steps: 2, width: 32, height: 32 })));
    for (const job of poison) {
      await assert.rejects(job.waitUntilFinished(events, 30_000), /^Error: ERR_INVALID_JOB: /);
      const failed = (await queue.getJob(job.id!))!;
      assert.match(failed.failedReason, /^ERR_INVALID_JOB: /);
      assert.equal(failed.attemptsMade, 1, 'not retried');
    }
    for (const answer of await good) assert.equal(answer.status, 200);
    // Through the front end a bad request is refused before it is queued (422 naming the field).
    const refused = await call(front.url, '/sdapi/v1/txt2img', { prompt: 'x', steps: 1000 });
    assert.equal(refused.status, 422);
    // An unknown model is still A1111's 404 (a known one: 422, workers serve the model they started with).
    const options = await call(front.url, '/sdapi/v1/options', { sd_model_checkpoint: 'something-else' });
    assert.equal(options.status, 404);
  });

  test("the hires fix runs on the workers with their --upscaler file; a name they lack is the client's 422", async () => {
    const body = { prompt: 'hires', steps: 2, width: 32, height: 32, seed: 3, enable_hr: true, hr_upscaler: 'tiny-x2', denoising_strength: 0.5 };
    const ok = await call(front.url, '/sdapi/v1/txt2img', body);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const image = await pixels(ok.body.images[0]);
    assert.deepEqual([image.width, image.height], [64, 64]);
    assert.match(readPngText(Buffer.from(ok.body.images[0], 'base64')).parameters!, /Size: 32x32, .*Hires upscale: 2, Hires steps: 2, Hires upscaler: tiny-x2/);
    const missing = await call(front.url, '/sdapi/v1/txt2img', { ...body, hr_upscaler: 'R-ESRGAN 4x+' });
    assert.equal(missing.status, 422, JSON.stringify(missing.body));
    assert.match(JSON.stringify(missing.body), /hr_upscaler \\"R-ESRGAN 4x\+\\" is not one of/);
  });

  test('a worker killed mid-job (SIGKILL): its job completes on the other', async () => {
    const pending = call(front.url, '/sdapi/v1/txt2img', { prompt: 'survivor', steps: 60, width: 64, height: 64, seed: 11 });
    const active = await waitFor(async () => {
      const [job] = await queue.getActive();
      const progress = job?.progress as { step?: number; worker?: string } | undefined;
      return job && (progress?.step ?? 0) >= 2 ? { id: job.id!, worker: progress!.worker! } : undefined;
    }, 60_000);
    const victim = workers.find((w) => active.worker.endsWith(`:${w.pid}`))!;
    assert.ok(victim, `the running worker (${active.worker}) is one of ours`);
    victim.child.kill('SIGKILL');
    const answer = await pending;
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.headers.get('x-sdnode-job-id'), active.id);
    assert.notEqual(answer.headers.get('x-sdnode-worker'), active.worker, 'finished by the other worker');
    const survivor = workers.find((w) => w !== victim)!;
    await waitFor(async () => (survivor.completed().includes(active.id) ? true : undefined), 10_000);
    assert.equal(JSON.parse(answer.body.info).interrupted, false);
  });
});
