import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { test } from 'node:test';

import { listDevices, systemInfo } from '../lib/index.js';
import { packageRoot } from '../lib/native.js';

const pkg = JSON.parse(readFileSync(`${packageRoot}/package.json`, 'utf8')) as { version: string };
const pin = JSON.parse(readFileSync(`${packageRoot}/scripts/ggml-source.json`, 'utf8')) as { commit: string };

test('systemInfo reports the package, the pinned ggml and a loaded CPU backend', () => {
  const info = systemInfo();
  assert.equal(info.version, pkg.version);
  assert.match(info.ggml.version, /^\d+\.\d+\.\d+/);
  // ggml's build marks a checkout with local changes "-dirty": ours are exactly the patches of
  // scripts/patches (applied by fetch-ggml.mjs), so the mark is expected when there are any.
  const patched = readdirSync(`${packageRoot}/scripts/patches`).some((f) => f.endsWith('.patch'));
  const commit = patched ? info.ggml.commit.replace(/-dirty$/, '') : info.ggml.commit;
  assert.ok(commit.length >= 7 && pin.commit.startsWith(commit), `ggml commit ${info.ggml.commit} is not the pinned ${pin.commit}`);
  assert.ok(info.backends.includes('CPU'), `CPU backend missing from ${info.backends.join(', ')}`);
  assert.ok(Number.isInteger(info.defaultThreads) && info.defaultThreads >= 1);
  assert.ok(info.nativeDir.length > 0);
});

test('systemInfo lists the SIMD features of the CPU variant ggml chose for this CPU', () => {
  const features = systemInfo().cpuFeatures;
  if (process.arch !== 'x64') return;
  // Every x86-64 CPU variant ggml builds is at least SSE4.2; the best one for this CPU must use
  // what /proc/cpuinfo says the CPU has.
  const flags = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1]?.split(/\s+/) ?? [];
  if (flags.includes('avx2') && flags.includes('fma') && flags.includes('f16c')) {
    assert.ok(features.includes('AVX2'), `expected AVX2 in ${features.join(' ')}`);
    assert.ok(features.includes('FMA'), `expected FMA in ${features.join(' ')}`);
  }
  if (flags.includes('avx512f') && flags.includes('avx512bw') && flags.includes('avx512vl')) {
    assert.ok(features.includes('AVX512'), `expected AVX512 in ${features.join(' ')}`);
  }
  for (const f of features) {
    if (f === 'AVX2') assert.ok(flags.includes('avx2'), 'loaded an AVX2 variant on a CPU without AVX2');
    if (f === 'AVX512') assert.ok(flags.includes('avx512f'), 'loaded an AVX-512 variant on a CPU without it');
  }
});

test('systemInfo says which binary, variant and CPU variant it took', () => {
  const info = systemInfo();
  assert.ok(['prebuilt', 'source build', 'SDNODE_ADDON'].includes(info.binary.source), info.binary.source);
  assert.ok(existsSync(info.binary.path));
  assert.equal(info.nativeDir, dirname(info.binary.path));
  assert.deepEqual(Object.keys(info.modules), info.backends);
  const cpuModule = basename(info.modules.CPU ?? '');
  if (/ggml-cpu-/.test(cpuModule)) {
    // Every CPU variant sits beside the addon and ggml took one of them.
    assert.equal(dirname(info.modules.CPU!), info.nativeDir);
    assert.ok(info.cpuVariant && cpuModule.includes(`ggml-cpu-${info.cpuVariant}.`), `${info.cpuVariant} vs ${cpuModule}`);
  }
  assert.ok(['cpu', 'vulkan', 'cuda'].includes(info.variant));
  if (info.variant === 'cpu') assert.ok(!listDevices().some((d) => d.backend === 'CUDA' || d.backend === 'Vulkan'));
  assert.deepEqual(info.gpu.map((g) => g.backend), ['cuda', 'vulkan']);
  for (const g of info.gpu) if (g.status !== 'loaded' && g.status !== 'built-in') assert.ok(g.reason, `${g.backend}: ${g.status} without a reason`);
  // CI runs the whole suite on the release binaries (prebuilds/, made by `npm run prebuild`).
  if (process.env.SDNODE_EXPECT_PREBUILT === '1') {
    assert.match(info.binary.path, /[\\/]prebuilds[\\/][^\\/]+[\\/]sd_node\.node$/);
    assert.ok(existsSync(join(info.nativeDir, 'build.json')));
  }
});

test('listDevices includes the CPU with its memory', () => {
  const devices = listDevices();
  const cpu = devices.find((d) => d.type === 'cpu');
  assert.ok(cpu, `no CPU device in ${JSON.stringify(devices)}`);
  assert.equal(cpu.backend, 'CPU');
  assert.ok(cpu.memoryTotal > 256 * 1024 ** 2, `implausible memory total ${cpu.memoryTotal}`);
  assert.ok(cpu.memoryFree > 0 && cpu.memoryFree <= cpu.memoryTotal);
  for (const d of devices) {
    assert.equal(typeof d.name, 'string');
    assert.ok(['cpu', 'gpu', 'igpu', 'accel'].includes(d.type), d.type);
  }
});
