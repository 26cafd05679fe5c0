import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Tensor } from '../lib/index.js';

test('Tensor wraps data without copying and checks its length', () => {
  const data = new Float32Array(24);
  const t = new Tensor([1, 2, 3, 4], data);
  assert.equal(t.data, data);
  assert.equal(t.size, 24);
  assert.equal(t.rank, 4);
  data[23] = 7;
  assert.equal(t.at(0, 1, 2, 3), 7);
  assert.equal(t.reshape([4, 6]).data, data);
  assert.notEqual(t.clone().data, data);
  assert.throws(() => new Tensor([2, 2], new Float32Array(3)), /Expected 4 values for shape \[2, 2\] but received 3/);
});

test('Tensor rejects bad shapes and data with TypeError or RangeError', () => {
  assert.throws(() => new Tensor('1,2' as unknown as number[]), TypeError);
  assert.throws(() => new Tensor([1, '2'] as unknown as number[]), TypeError);
  assert.throws(() => new Tensor([0, 2]), RangeError);
  assert.throws(() => new Tensor([1.5]), RangeError);
  assert.throws(() => new Tensor([2], [1, 2] as unknown as Float32Array), TypeError);
  assert.throws(() => Tensor.of(null as unknown as Tensor), TypeError);
  assert.throws(() => new Tensor([2, 2]).at(0, 2), RangeError);
  assert.throws(() => new Tensor([2, 2]).at(0), RangeError);
});

test('Tensor.from and Tensor.of', () => {
  const t = Tensor.from([2], [1.5, -2]);
  assert.deepEqual(Array.from(t.data), [1.5, -2]);
  const data = new Float32Array(3);
  assert.equal(Tensor.of({ shape: [3], data }).data, data);
  assert.equal(Tensor.of(t), t);
  assert.equal(String(t), 'Tensor [2]');
});
