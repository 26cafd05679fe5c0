import assert from 'node:assert/strict';
import { test } from 'node:test';

import { listDevices, Tensor } from '../lib/index.js';
import { native } from '../lib/native.js';

function matmul(a: Tensor, b: Tensor): Float32Array {
  const [m, k] = a.shape as [number, number];
  const n = b.shape[1]!;
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a.data[i * k + p]! * b.data[p * n + j]!;
      out[i * n + j] = s;
    }
  return out;
}

function pseudoRandom(shape: number[], seed: number): Tensor {
  const t = new Tensor(shape);
  let x = seed;
  for (let i = 0; i < t.size; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    t.data[i] = x / 2147483648 - 0.5;
  }
  return t;
}

for (const device of listDevices()) {
  test(`ggml computes a matrix product on ${device.name} like a plain loop`, async () => {
    const a = pseudoRandom([37, 70], 1);
    const b = pseudoRandom([70, 19], 2);
    const result = await native().deviceCheck(device.name, a, b, 2);
    assert.deepEqual(result.shape, [37, 19]);
    const expected = matmul(a, b);
    let worst = 0;
    for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(result.data[i]! - expected[i]!));
    // Products of f32 values; GPUs may use f16 accumulation for mul_mat.
    assert.ok(worst < (device.type === 'cpu' ? 1e-4 : 2e-2), `max difference ${worst}`);
  });
}

test('the native side rejects malformed tensors with TypeError or RangeError', async () => {
  const ok = new Tensor([2, 2]);
  const check = (a: unknown, b: unknown) => native().deviceCheck('CPU', a as Tensor, b as Tensor, 1);
  assert.throws(() => check(null, ok), TypeError);
  assert.throws(() => check({ shape: [2, 2], data: new Float64Array(4) }, ok), TypeError);
  assert.throws(() => check({ shape: [2, 3], data: new Float32Array(4) }, ok), RangeError);
  assert.throws(() => check({ shape: [2, -1], data: new Float32Array(4) }, ok), RangeError);
  await assert.rejects(check(new Tensor([2, 3]), ok), (e: Error & { code?: string }) => {
    assert.ok(e instanceof RangeError);
    assert.match(e.message, /Expected b to have 3 rows but it has 2/);
    return true;
  });
  await assert.rejects(check(ok, ok.reshape([4])), RangeError);
  await assert.rejects(native().deviceCheck('NoSuchDevice', ok, ok, 1), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'ERR_BACKEND_UNAVAILABLE');
    assert.match(e.message, /present: .*CPU/);
    return true;
  });
  // The addon is still usable after the errors.
  const result = await check(Tensor.from([1, 2], [1, 2]), Tensor.from([2, 1], [3, 4]));
  assert.deepEqual(Array.from(result.data), [11]);
});

test('the work runs on a native thread, not on the event loop', async () => {
  const a = pseudoRandom([768, 768], 3);
  const order: string[] = [];
  const pending = native().deviceCheck('CPU', a, a, 1).then(() => order.push('result'));
  // Computed in the call itself, the promise would settle before any timer phase ran.
  setImmediate(() => order.push('event loop turned'));
  await pending;
  assert.deepEqual(order, ['event loop turned', 'result']);
});
