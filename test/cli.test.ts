import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { inspectModel } from '../lib/index.js';

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
    assert.match(run.stderr, /^sdnode: unknown/i);
  }
});

const tiny = join(packageRoot, 'test', 'fixtures', 'tiny');
const dir = mkdtempSync(join(tmpdir(), 'sdnode-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function sdnode(...args: string[]) {
  return spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
}

test('sdnode info describes a model, as text and as JSON', () => {
  const text = sdnode('info', join(tiny, 'sd2-v-ldm.safetensors'));
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /sd2 base, v_prediction \(heuristic[^)]*\), 768×768/);
  assert.match(text.stdout, /ldm layout, safetensors/);
  const json = sdnode('info', join(tiny, 'sd1-diffusers'), '--json');
  assert.equal(json.status, 0, json.stderr);
  const info = JSON.parse(json.stdout);
  assert.equal(info.family, 'sd1');
  assert.equal(info.layout, 'diffusers');
  assert.ok(info.tensorCount > 100);
  const forced = JSON.parse(sdnode('info', join(tiny, 'sd2-v-ldm.safetensors'), '--prediction-type', 'epsilon', '--json').stdout);
  assert.equal(forced.predictionType, 'epsilon');
});

test('sdnode convert writes a GGUF that loads with the same configuration', async () => {
  const out = join(dir, 'sd1.q8_0.gguf');
  const run = sdnode('convert', join(tiny, 'sd1-ldm.safetensors'), '-o', out, '--weight-type', 'q8_0', '--json');
  assert.equal(run.status, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.equal(report.weightType, 'q8_0');
  assert.ok(report.bytes > 0);
  const { info, tensors } = await inspectModel(out);
  assert.equal(info.layout, 'canonical');
  assert.equal(info.family, 'sd1');
  assert.ok(tensors.some((t) => t.type === 'q8_0'));
  assert.equal(tensors.length, report.tensors);
});

test('sdnode: bad flags, missing files and unreadable models give one line and a non-zero exit', () => {
  const cases: [string[], number, RegExp][] = [
    [['convert', join(tiny, 'sd1-diffusers')], 2, /needs -o/],
    [['convert', join(tiny, 'sd1-diffusers'), '-o', join(dir, 'x.gguf'), '--weight-type', 'q3_k'], 2, /--weight-type must be one of/],
    [['info'], 2, /one model path/],
    [['info', join(dir, 'missing.safetensors')], 1, /missing\.safetensors/],
    [['info', join(packageRoot, 'package.json')], 1, /package\.json/],
    [['info', join(tiny, 'sd1-diffusers'), '--prediction-type', 'x0'], 2, /--prediction-type must be one of/],
  ];
  for (const [args, status, message] of cases) {
    const run = sdnode(...args);
    assert.equal(run.status, status, `${args.join(' ')}: ${run.stderr}`);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, message);
    assert.doesNotMatch(run.stderr, /\n\s+at /);
  }
  const help = sdnode('convert', '--help');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /Usage: sdnode convert/);
});
