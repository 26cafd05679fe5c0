// `sdnode serve` as users run it (the compiled CLI in a child process, on loopback) under load:
// concurrent clients served in queue order with none lost, a full queue answering 503, clients
// that disconnect mid-job leaving no job running and no memory behind, the event loop free
// while a 512×512 job runs, a 50 MB body refused, and a clean exit on SIGTERM.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { parseServe } from '../lib/cli/serve.js';
import { UsageError } from '../lib/cli/usage.js';
import { tinyDir } from './helpers/goldens.js';
import { call, CLI, DEMO, pngBase64, scratch, spawnServe, waitFor, waitForIdle, waitForStep } from './helpers/server.js';

const tmp = scratch('server-load');
const X2 = join(tinyDir, 'esrgan', 'tiny-x2.safetensors');
const X4 = join(tinyDir, 'esrgan', 'tiny-x4.pth');
let serve: Awaited<ReturnType<typeof spawnServe>>;
let url = '';
before(async () => {
  serve = await spawnServe(['--model', 'demo', '--threads', '1', '--queue-size', '8']);
  url = serve.url;
});
after(async () => {
  await serve?.stop();
  tmp.dispose();
});

const quick = { prompt: 'load', steps: 2, width: 64, height: 64, sampler_name: 'DDIM' };
const long = { prompt: 'long', steps: 150, width: 128, height: 128, sampler_name: 'DDIM' };

test('sdnode serve listens on 127.0.0.1 by default and prints its URL', async () => {
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal((await fetch(`${url}/`)).status, 200);
});

test('8 clients × 5 requests: every one answered with its own image, in queue order', async (t) => {
  const answers: { client: number; seed: number; status: number; id: number; started: number; seedOut: number; prompt: string }[] = [];
  await Promise.all(Array.from({ length: 8 }, async (_, client) => {
    for (let i = 0; i < 5; i++) {
      const seed = client * 100 + i;
      const { status, body, headers } = await call(url, '/sdapi/v1/txt2img', { ...quick, prompt: `client ${client} request ${i}`, seed });
      const info = status === 200 ? JSON.parse(body.info) : {};
      answers.push({ client, seed, status, id: Number(headers.get('x-sdnode-job-id')), started: Number(headers.get('x-sdnode-job-started')), seedOut: info.seed, prompt: info.prompt });
    }
  }));
  assert.equal(answers.length, 40);
  for (const a of answers) {
    assert.equal(a.status, 200);
    assert.equal(a.seedOut, a.seed, 'each answer carries its own request');
    assert.equal(a.prompt, `client ${a.client} request ${a.seed % 100}`);
  }
  // FIFO: jobs started in the order they were queued.
  const byId = [...answers].sort((a, b) => a.id - b.id);
  for (let i = 1; i < byId.length; i++) assert.ok(byId[i]!.started > byId[i - 1]!.started, `job ${byId[i]!.id} started before job ${byId[i - 1]!.id}`);
  assert.equal(new Set(answers.map((a) => a.id)).size, 40);
  t.diagnostic(`jobs ${byId[0]!.id}–${byId.at(-1)!.id} started in order`);
});

test('a full queue answers 503 with Retry-After; cancelled waiting jobs leave the queue', async () => {
  const running = new AbortController();
  const first = call(url, '/sdapi/v1/txt2img', long, { signal: running.signal }).catch(() => undefined);
  await waitForStep(url);
  const waiting = Array.from({ length: 8 }, () => new AbortController());
  const queued = waiting.map((c, i) => call(url, '/sdapi/v1/txt2img', { ...quick, seed: i }, { signal: c.signal }).catch(() => undefined));
  await waitFor(async () => ((await call(url, '/sdapi/v1/progress?skip_current_image=true')).body.queue.waiting === 8 ? true : undefined));
  const refused = await call(url, '/sdapi/v1/txt2img', quick);
  assert.equal(refused.status, 503);
  assert.match(refused.body.detail, /queue is full/);
  assert.ok(Number(refused.headers.get('retry-after')) >= 1);
  for (const c of waiting) c.abort();
  await Promise.all(queued);
  await waitFor(async () => ((await call(url, '/sdapi/v1/progress?skip_current_image=true')).body.queue.waiting === 0 ? true : undefined));
  running.abort();
  await first;
  await waitForIdle(url);
  assert.equal((await call(url, '/sdapi/v1/txt2img', quick)).status, 200);
});

test('20 clients that disconnect mid-job leave no job running and no memory behind', async (t) => {
  const rss = async () => (await call(url, '/sdapi/v1/memory')).body.ram.used as number;
  // Warm up: the allocator's and the model's buffers for this size.
  for (let i = 0; i < 3; i++) await call(url, '/sdapi/v1/txt2img', { ...long, steps: 3, seed: i });
  const before = await rss();
  const cancelledBefore = (await call(url, '/sdapi/v1/progress')).body.queue.cancelled as number;
  for (let i = 0; i < 20; i++) {
    const controller = new AbortController();
    const job = call(url, '/sdapi/v1/txt2img', { ...long, seed: 1000 + i }, { signal: controller.signal }).catch((error: Error) => error);
    await waitForStep(url);
    controller.abort();
    assert.equal(((await job) as Error).name, 'AbortError');
    await waitForIdle(url);
  }
  const { body: progress } = await call(url, '/sdapi/v1/progress');
  assert.equal(progress.state.job_count, 0, 'no job running');
  assert.equal(progress.queue.waiting, 0);
  assert.equal(progress.queue.cancelled - cancelledBefore, 20, 'each job was cancelled, not run to its end');
  const afterRss = await rss();
  t.diagnostic(`RSS before ${(before / 2 ** 20).toFixed(1)} MiB, after 20 disconnects ${(afterRss / 2 ** 20).toFixed(1)} MiB`);
  assert.ok(afterRss <= before + 20 * 2 ** 20, `RSS grew from ${before} to ${afterRss}`);
  assert.equal((await call(url, '/sdapi/v1/txt2img', quick)).status, 200);
});

test('the server answers at once while a 512×512 job runs', async (t) => {
  const job = call(url, '/sdapi/v1/txt2img', { ...quick, steps: 1, width: 512, height: 512 });
  let done = false;
  void job.then(() => (done = true));
  await waitFor(async () => ((await call(url, '/sdapi/v1/progress?skip_current_image=true')).body.state.job_count === 1 ? true : undefined));
  const latencies: number[] = [];
  while (!done) {
    const start = performance.now();
    const [progress, page] = await Promise.all([call(url, '/sdapi/v1/progress'), fetch(`${url}/`).then((r) => r.text())]);
    latencies.push(performance.now() - start);
    assert.equal(progress.status, 200);
    assert.ok(page.length > 0);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal((await job).status, 200);
  const worst = Math.max(...latencies);
  t.diagnostic(`${latencies.length} polls during the job, slowest ${worst.toFixed(0)} ms`);
  assert.ok(latencies.length >= 5, `only ${latencies.length} polls answered during the job`);
  assert.ok(worst < 1000, `a poll took ${worst.toFixed(0)} ms`);
});

test('a 50 MB body is 413 at the default limit; the server goes on', async () => {
  const init = await pngBase64(8, 8, [0, 0, 0]);
  const big = JSON.stringify({ ...quick, init_images: [init], padding: 'x'.repeat(50 * 1024 * 1024) });
  const answer = await call(url, '/sdapi/v1/img2img', big, { headers: { 'content-type': 'application/json' } });
  assert.equal(answer.status, 413);
  assert.equal((await call(url, '/sdapi/v1/txt2img', quick)).status, 200);
});

test('SIGTERM stops the server cleanly', async () => {
  assert.equal(await serve.stop(), 0);
});

test('sdnode serve: usage mistakes are one line and exit 2; --help prints the options', () => {
  for (const args of [[], ['--model'], ['--model', '/no/such/model.safetensors'], ['--model', 'demo', '--api-auth', 'nopassword'], ['--model', 'demo', '--port', 'http'], ['--model', 'demo', '--frob']]) {
    const run = spawnSync(process.execPath, [CLI, 'serve', ...args], { encoding: 'utf8' });
    assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, /^sdnode: /);
  }
  const help = spawnSync(process.execPath, [CLI, 'serve', '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  for (const flag of ['--model', '--host', '--port', '--models-dir', '--lora-dir', '--embedding-dir', '--api-auth', '--queue-size', '--cors-origin']) assert.ok(help.stdout.includes(flag), flag);
});

test('sdnode serve: every flag reaches createServer\'s options', () => {
  const dir = join(tmp.dir, 'flags');
  mkdirSync(dir, { recursive: true });
  assert.deepEqual(parseServe(['--model', 'demo']), { options: { model: DEMO, load: {} }, host: '127.0.0.1', port: 7860 });
  const parsed = parseServe([
    '-m', DEMO, '--host', '::1', '--port', '0', '--models-dir', dir, '--lora-dir', dir, '--embedding-dir', dir, '--api-auth', 'a:b,c:d:e',
    '--queue-size', '4', '--cors-origin', 'http://x.example', '--cors-origin', 'http://y.example', '--body-limit', '2', '--no-page', '--log',
    '--backend', 'cpu', '--threads', '3', '--weight-type', 'q8_0', '--upscaler', X2, '--upscaler', X4,
  ]);
  assert.deepEqual(parsed, {
    host: '::1',
    port: 0,
    options: {
      model: DEMO, modelsDir: dir, loraDir: dir, embeddingDir: dir, apiAuth: 'a:b,c:d:e', queueSize: 4, corsOrigin: ['http://x.example', 'http://y.example'],
      bodyLimit: 2 * 1024 * 1024, page: false, logger: true, load: { backend: 'cpu', threads: 3, weightType: 'q8_0' }, upscalers: [X2, X4],
    },
  });
  for (const args of [['--queue-size', '-1'], ['--port', '70000'], ['--threads', '0'], ['--backend', 'tpu'], ['--models-dir', join(dir, 'none')], ['--upscaler', join(dir, 'none.pth')], ['extra']]) {
    assert.throws(() => parseServe(['--model', 'demo', ...args]), UsageError, args.join(' '));
  }
});
