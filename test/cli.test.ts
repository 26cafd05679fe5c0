import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

import { packageRoot } from '../lib/native.js';

// The compiled bin, as npm links it (npm test compiles lib/ first).
const bin = join(packageRoot, 'dist', 'cli', 'sdnode.js');

test('sdnode system --json prints real values', () => {
  const out = JSON.parse(execFileSync(process.execPath, [bin, 'system', '--json'], { encoding: 'utf8' }));
  assert.ok(out.backends.includes('CPU'));
  assert.match(out.ggml.version, /^\d+\.\d+\.\d+/);
});

test('sdnode devices lists the CPU', () => {
  const out = execFileSync(process.execPath, [bin, 'devices'], { encoding: 'utf8' });
  assert.match(out, /^CPU\s+cpu\s+/m);
});

test('sdnode rejects unknown commands and options with one line and a non-zero exit', () => {
  for (const args of [['frobnicate'], ['devices', '--frob']]) {
    const run = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
    assert.equal(run.status, 2);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, /^sdnode: unknown/);
  }
});
