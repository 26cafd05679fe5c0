// One source of truth for schedulers: the core's catalog (native/core/sched/scheduler_catalog.cpp)
// holds the names, A1111's names, what each scheduler supports and the overrides' ranges. lib/
// keeps literal lists only for TypeScript's types; they must say what the catalog says.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { A1111_SCHEDULER_NAMES, createScheduler, SCHEDULER_NAMES, TIMESTEP_SPACINGS } from '../lib/index.js';
import { native } from '../lib/native.js';
import { SCHEDULER_PREDICTION_TYPES } from '../lib/scheduler.js';

const catalog = native().schedulerCatalog();

test('the TypeScript scheduler names are the catalog\'s, in its order', () => {
  assert.deepEqual([...SCHEDULER_NAMES], catalog.schedulers.map((s) => s.name));
});

test('the TypeScript A1111 names are the catalog\'s, in its order', () => {
  assert.deepEqual(Object.entries(A1111_SCHEDULER_NAMES), catalog.a1111.map((a) => [a.name, a.scheduler]));
});

test('the TypeScript override lists are the catalog\'s', () => {
  const override = (name: string) => catalog.overrides.find((o) => o.name === name);
  assert.deepEqual(catalog.overrides.map((o) => o.name), ['timestepSpacing', 'useKarrasSigmas', 'predictionType', 'stepsOffset', 'eta']);
  assert.deepEqual(override('timestepSpacing'), { name: 'timestepSpacing', type: 'oneOf', values: [...TIMESTEP_SPACINGS] });
  assert.deepEqual(override('predictionType'), { name: 'predictionType', type: 'oneOf', values: [...SCHEDULER_PREDICTION_TYPES] });
  assert.deepEqual(override('useKarrasSigmas'), { name: 'useKarrasSigmas', type: 'boolean' });
  assert.deepEqual(override('stepsOffset'), { name: 'stepsOffset', type: 'integer', min: 0, max: 999 });
  assert.deepEqual(override('eta'), { name: 'eta', type: 'number', min: 0, max: 1 });
});

test('every scheduler is what the catalog says: name, begin index, order, Karras sigmas', () => {
  for (const s of catalog.schedulers) {
    const scheduler = createScheduler(s.name);
    assert.equal(scheduler.name, s.name);
    assert.equal(scheduler.hasBeginIndex, s.beginIndex, s.name);
    assert.equal(scheduler.order, s.order, s.name);
    if (s.karrasSigmas) assert.equal(createScheduler(s.name, { useKarrasSigmas: true }).name, s.name);
    else assert.throws(() => createScheduler(s.name, { useKarrasSigmas: true }), RangeError, s.name);
  }
  for (const a of catalog.a1111) assert.equal(createScheduler(a.name.toUpperCase()).name, a.scheduler);
});

test('the core refuses overrides outside the catalog\'s ranges on its own (bypassing lib/)', () => {
  const { Scheduler } = native() as unknown as { Scheduler: new (name: string, o: object) => unknown };
  for (const overrides of [{ timestepSpacing: 'sideways' }, { predictionType: 'sample' }, { stepsOffset: 1000 }, { stepsOffset: 0.5 }, { eta: 1.5 }, { eta: Number.NaN }]) {
    assert.throws(() => new Scheduler('ddim', overrides), RangeError, JSON.stringify(overrides));
  }
  assert.throws(() => new Scheduler('ddim', { useKarrasSigmas: 1 }), TypeError);
  assert.throws(() => new Scheduler('nope', {}), /Unknown scheduler "nope"; expected one of pndm, ddim/);
});
