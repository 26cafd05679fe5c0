// The server's in-process job queue (lib/server/queue/local-queue.ts) on its own, with a runner
// the test controls: one job at a time in FIFO order, a full queue refused with a Retry-After
// estimate, cancelled waiting and running jobs, interrupt and skip, and close.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { AbortError } from '../lib/errors.js';
import { LocalQueue } from '../lib/server/queue/local-queue.js';
import { QueueFullError, type JobContext } from '../lib/server/queue/types.js';

/** A runner whose jobs end when the test says so; it records what ran and how many ran at once. */
function controlled() {
  const started: string[] = [];
  const ended: string[] = [];
  const contexts = new Map<string, JobContext>();
  const finish = new Map<string, (result: string) => void>();
  let running = 0;
  let most = 0;
  const queue = new LocalQueue<string, string>(async (name, context) => {
    running++;
    most = Math.max(most, running);
    started.push(name);
    contexts.set(name, context);
    try {
      return await new Promise<string>((resolve, reject) => {
        finish.set(name, resolve);
        context.signal.addEventListener('abort', () => reject(new AbortError(`${name} cancelled`)), { once: true });
      });
    } finally {
      running--;
    }
  }, 3);
  /** Waits for the next job to start, checks that it is `name`, and ends it with `name`'s result. */
  const end = async (name: string) => {
    const deadline = Date.now() + 5000;
    while (started.length === ended.length) {
      if (Date.now() > deadline) throw new Error(`no job started while waiting for ${name}`);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    assert.equal(started.at(-1), name, `${name} should run now, not ${started.at(-1)}`);
    ended.push(name);
    finish.get(name)!(`${name} done`);
  };
  return { queue, started, contexts, end, most: () => most };
}

describe('LocalQueue', { timeout: 20_000 }, () => {
  test('runs one job at a time, in the order they were added', async () => {
    const { queue, started, end, most } = controlled();
    const results = ['a', 'b', 'c', 'd'].map((name) => queue.add(name));
    assert.equal(queue.state().running?.id, 1);
    assert.equal(queue.state().waiting, 3);
    for (const name of ['a', 'b', 'c', 'd']) await end(name);
    assert.deepEqual(await Promise.all(results), ['a done', 'b done', 'c done', 'd done']);
    assert.deepEqual(started, ['a', 'b', 'c', 'd']);
    assert.equal(most(), 1, 'never two jobs at once');
    assert.deepEqual(queue.state().finished, { completed: 4, failed: 0, cancelled: 0 });
    assert.equal(queue.state().running, undefined);
  });

  test('a full queue refuses with QueueFullError and a Retry-After of at least a second', async () => {
    const { queue, end } = controlled();
    const accepted = ['run', 'w1', 'w2', 'w3'].map((name) => queue.add(name));
    const refused = await queue.add('one too many').catch((error: unknown) => error);
    assert.ok(refused instanceof QueueFullError, String(refused));
    assert.ok(refused.retryAfter >= 1 && refused.retryAfter <= 3600);
    assert.match(refused.message, /queue is full \(3 jobs waiting\)/);
    for (const name of ['run', 'w1', 'w2', 'w3']) await end(name);
    await Promise.all(accepted);
    // Room again once the queue has moved.
    const again = queue.add('later');
    await end('later');
    assert.equal(await again, 'later done');
  });

  test('aborting a waiting job takes it out of the queue; aborting the running one stops it', async () => {
    const { queue, started, end } = controlled();
    const running = new AbortController();
    const waiting = new AbortController();
    const first = queue.add('first', { signal: running.signal }).catch((error: unknown) => error);
    const second = queue.add('second', { signal: waiting.signal }).catch((error: unknown) => error);
    const third = queue.add('third');
    waiting.abort();
    assert.equal(((await second) as Error).name, 'AbortError');
    assert.equal(queue.state().waiting, 1);
    running.abort();
    assert.equal(((await first) as Error).name, 'AbortError');
    await end('third');
    assert.equal(await third, 'third done');
    assert.deepEqual(started, ['first', 'third'], 'the cancelled waiting job never ran');
    assert.deepEqual(queue.state().finished, { completed: 1, failed: 0, cancelled: 2 });
    // An already aborted signal is refused at once.
    await assert.rejects(queue.add('late', { signal: AbortSignal.abort() }), { name: 'AbortError' });
  });

  test('interrupt and skip reach the running job; progress reports go to state()', async () => {
    const { queue, contexts, end } = controlled();
    const job = queue.add('job');
    while (!contexts.has('job')) await new Promise((resolve) => setImmediate(resolve));
    const context = contexts.get('job')!;
    context.report({ job: 'txt2img', samplingStep: 3, samplingSteps: 10 });
    assert.equal(queue.state().running?.samplingStep, 3);
    assert.equal(context.interrupted, false);
    queue.skip();
    assert.equal(queue.state().running?.skipped, true);
    assert.equal(context.takeSkip(), true);
    assert.equal(context.takeSkip(), false, 'a skip is taken once');
    queue.interrupt();
    assert.equal(context.interrupted, true);
    assert.equal(queue.state().running?.interrupted, true);
    await end('job');
    assert.equal(await job, 'job done');
    // With nothing running, interrupt and skip do nothing.
    queue.interrupt();
    queue.skip();
    assert.equal(queue.state().running, undefined);
  });

  test('a failing job rejects its caller and the next one runs', async () => {
    const queue = new LocalQueue<number, number>(async (n) => {
      if (n === 1) throw new RangeError('bad job');
      return n * 2;
    }, 5);
    const [bad, good] = [queue.add(1), queue.add(2)];
    await assert.rejects(bad, RangeError);
    assert.equal(await good, 4);
    assert.deepEqual(queue.state().finished, { completed: 1, failed: 1, cancelled: 0 });
  });

  test('close cancels the waiting jobs, stops the running one and refuses new ones', async () => {
    const { queue, started } = controlled();
    const jobs = ['a', 'b', 'c'].map((name) => queue.add(name).catch((error: unknown) => error));
    while (started.length === 0) await new Promise((resolve) => setImmediate(resolve));
    await queue.close();
    for (const result of await Promise.all(jobs)) assert.equal((result as Error).name, 'AbortError');
    assert.deepEqual(started, ['a']);
    await assert.rejects(queue.add('after'), /closing/);
  });
});
