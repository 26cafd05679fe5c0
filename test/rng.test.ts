import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { MAX_SEED, randn, Tensor, TorchGenerator } from '../lib/index.js';
import type { TorchKernel } from '../lib/index.js';
import { packageRoot } from '../lib/native.js';

// Made by tools/goldens/make_rng_goldens.py with torch.randn on a CPU (torch 2.13, float32).
interface Draw {
  size: number;
  sha256: string;
  head: string;
  tail: string;
  values?: string;
}
interface Case extends Draw {
  seed: string;
  shape: number[];
  kernel: TorchKernel;
}
interface Sequence {
  seed: string;
  kernel: TorchKernel;
  draws: (Draw & { shape: number[] })[];
}
const golden = JSON.parse(readFileSync(`${packageRoot}/test/fixtures/rng/randn_golden.json`, 'utf8')) as {
  cases: Case[];
  sequences: Sequence[];
};

// torch's "scalar" kernel calls the C library's logf/sinf/cosf: the goldens are glibc's.
const hasGlibc = Boolean((process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime);

function floats(base64: string): Float32Array {
  const bytes = Buffer.from(base64, 'base64');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

function bitsOf(values: Float32Array): Uint32Array {
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}

// Compares every bit of `actual` with a golden draw; on a mismatch names the first differing value.
function assertSameBits(actual: Tensor, expected: Draw, label: string): void {
  assert.equal(actual.size, expected.size, `${label}: size`);
  const edge = Math.min(64, expected.size);
  const head = floats(expected.head);
  const tail = floats(expected.tail);
  const a = bitsOf(actual.data);
  for (let i = 0; i < edge; i++) {
    assert.equal(a[i], bitsOf(head)[i], `${label}: value ${i} is ${actual.data[i]}, torch gives ${head[i]}`);
    const j = expected.size - edge + i;
    assert.equal(a[j], bitsOf(tail)[i], `${label}: value ${j} is ${actual.data[j]}, torch gives ${tail[i]}`);
  }
  if (expected.values !== undefined) {
    const all = bitsOf(floats(expected.values));
    for (let i = 0; i < expected.size; i++) {
      assert.equal(a[i], all[i], `${label}: value ${i} is ${actual.data[i]}`);
    }
  }
  const bytes = Buffer.from(actual.data.buffer, actual.data.byteOffset, actual.data.byteLength);
  assert.equal(createHash('sha256').update(bytes).digest('hex'), expected.sha256, `${label}: SHA-256 of all ${expected.size} values`);
}

test('randn equals torch.randn bit for bit (avx2 kernel: torch on x86-64 with AVX2/AVX-512)', async () => {
  const cases = golden.cases.filter((c) => c.kernel === 'avx2');
  assert.ok(cases.length >= 42);
  assert.ok(cases.some((c) => c.values !== undefined && c.size === 16384), 'one full [1,4,64,64] tensor is stored');
  for (const c of cases) {
    const t = await randn(c.shape, BigInt(c.seed));
    assert.ok(t instanceof Tensor);
    assert.deepEqual(t.shape, c.shape);
    assertSameBits(t, c, `seed ${c.seed} shape [${c.shape.join(', ')}]`);
  }
});

test('randn with the scalar kernel equals torch with ATEN_CPU_CAPABILITY=default', { skip: !hasGlibc && 'needs glibc' }, async () => {
  const cases = golden.cases.filter((c) => c.kernel === 'scalar');
  assert.ok(cases.length > 0);
  for (const c of cases) {
    const t = await randn(c.shape, BigInt(c.seed), { kernel: 'scalar' });
    assertSameBits(t, c, `scalar seed ${c.seed} shape [${c.shape.join(', ')}]`);
  }
});

test('seeds as numbers and bigints agree; torch keeps only the low 32 bits of a seed', async () => {
  const a = await randn([2, 4, 8, 12], 42);
  const b = await randn([2, 4, 8, 12], 42n);
  assert.deepEqual(bitsOf(a.data), bitsOf(b.data));
  const c = await randn([17], 2 ** 32);
  const d = await randn([17], 0);
  assert.deepEqual(bitsOf(c.data), bitsOf(d.data));
  const e = await randn([], 7);
  assert.deepEqual(e.shape, []);
  assert.equal(e.size, 1);
  assert.equal(e.data[0], (await randn([1], 7)).data[0]);
});

test('a TorchGenerator gives what successive torch.randn calls on one generator give', async () => {
  for (const seq of golden.sequences) {
    const g = new TorchGenerator(BigInt(seq.seed));
    assert.equal(g.initialSeed, BigInt(seq.seed));
    assert.equal(g.kernel, 'avx2');
    for (const [i, d] of seq.draws.entries()) {
      assertSameBits(await g.randn(d.shape), d, `seed ${seq.seed} draw ${i} [${d.shape.join(', ')}]`);
    }
    // Asked for all at once (not awaited in between), the draws still run in call order.
    const h = new TorchGenerator(BigInt(seq.seed));
    const all = await Promise.all(seq.draws.map((d) => h.randn(d.shape)));
    all.forEach((t, i) => assertSameBits(t, seq.draws[i]!, `seed ${seq.seed} concurrent draw ${i}`));
  }
});

test('manualSeed restarts a generator and forgets the cached normal', async () => {
  const g = new TorchGenerator(5);
  const first = await g.randn([3]); // leaves a cached normal behind
  g.manualSeed(5);
  assert.equal(g.initialSeed, 5n);
  assert.deepEqual(bitsOf((await g.randn([3])).data), bitsOf(first.data));
  const h = new TorchGenerator(1);
  const p = h.randn([1, 4, 8, 8]);
  h.manualSeed(99n); // applies after the pending draw
  await p;
  assert.deepEqual(bitsOf((await h.randn([20])).data), bitsOf((await randn([20], 99)).data));
});

test('a large draw runs on a worker thread, not on the event loop', async () => {
  const start = performance.now();
  const pending = randn([16, 4, 128, 128], 3); // 1M values: several milliseconds of work
  const returnedAfter = performance.now() - start;
  let timerFired = false;
  setTimeout(() => (timerFired = true), 0);
  const t = await pending;
  const total = performance.now() - start;
  assert.equal(t.size, 1048576);
  assert.ok(returnedAfter < total / 2, `the call returned after ${returnedAfter} ms of ${total} ms`);
  // Mean near 0 and variance near 1.
  let sum = 0;
  let sq = 0;
  for (const v of t.data) {
    sum += v;
    sq += v * v;
  }
  assert.ok(Math.abs(sum / t.size) < 0.01);
  assert.ok(Math.abs(sq / t.size - 1) < 0.01);
  await new Promise((resolve) => setTimeout(resolve, 1));
  assert.ok(timerFired);
});

test('bad seeds, shapes and options give TypeError or RangeError', async () => {
  await assert.rejects(randn([1], -1), {
    name: 'RangeError',
    message: 'Expected integer seed between 0 and 18446744073709551615 but received -1',
  });
  await assert.rejects(randn([1], -1n), { name: 'RangeError', message: /received -1$/ });
  await assert.rejects(randn([1], MAX_SEED + 1n), { name: 'RangeError', message: /received 18446744073709551616$/ });
  await assert.rejects(randn([1], 1.5), { name: 'RangeError', message: /received 1\.5$/ });
  await assert.rejects(randn([1], 2 ** 60), { name: 'RangeError', message: /pass a larger seed as a bigint/ });
  await assert.rejects(randn([1], '42' as unknown as number), { name: 'TypeError', message: /received "42"$/ });
  await assert.rejects(randn([1], NaN), TypeError);
  await assert.rejects(randn([1], undefined as unknown as number), TypeError);
  await assert.rejects(randn('1' as unknown as number[], 1), TypeError);
  await assert.rejects(randn([1, '2'] as unknown as number[], 1), TypeError);
  await assert.rejects(randn([0], 1), { name: 'RangeError', message: /Expected shape\[0\] to be an integer between 1 and/ });
  await assert.rejects(randn([2, -3], 1), RangeError);
  await assert.rejects(randn([2.5], 1), RangeError);
  await assert.rejects(randn([65536, 65536], 1), { name: 'RangeError', message: /at most 1073741824 values/ });
  await assert.rejects(randn([1], 1, { kernel: 'sse' as TorchKernel }), RangeError);
  await assert.rejects(randn([1], 1, 'avx2' as unknown as { kernel: TorchKernel }), TypeError);
  assert.throws(() => new TorchGenerator(-1), RangeError);
  assert.throws(() => new TorchGenerator(null as unknown as number), TypeError);
  const g = new TorchGenerator(0);
  assert.throws(() => g.randn([0]), RangeError);
  assert.throws(() => g.manualSeed(2n ** 64n), RangeError);
  // Failed calls leave the generator usable and untouched.
  assert.deepEqual(bitsOf((await g.randn([4])).data), bitsOf((await randn([4], 0)).data));
});
