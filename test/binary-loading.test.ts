// How the addon and its GPU variants are chosen (lib/binary): candidate order, prebuilt binaries
// that do not fit or do not load, and GPU packages that are missing, of another version, broken or
// without a device. Each load runs in a child process (ggml's backends load once per process) on a
// package root made up in a temporary folder from the addon built for the tests.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';

import { addonCandidates } from '../lib/binary/addon-candidates.js';
import { cpuVariantOf } from '../lib/binary/load.js';
import { backendModuleFile, driverLibrary, gpuPackageName } from '../lib/binary/platform.js';
import { listDevices } from '../lib/index.js';
import { loadedBinary, packageRoot } from '../lib/native.js';

const built = loadedBinary().path;
const builtDir = dirname(built);
const tag = `${process.platform}-${process.arch}`;
const work = mkdtempSync(join(tmpdir(), 'sdnode-binary-'));
// A `--native-cpu` developer build links one CPU backend in and has no variant modules to damage;
// CI's builds (SDNODE_EXPECT_PREBUILT=1) always have them.
const noVariants = !readdirSync(builtDir).some((f) => /ggml-cpu-/.test(f)) && process.env.SDNODE_EXPECT_PREBUILT !== '1'
  ? `${builtDir} has no CPU variant modules (a --native-cpu build)`
  : false;
after(() => rmSync(work, { recursive: true, force: true }));

let roots = 0;
/** A package root with a package.json of `version` and, per option, a prebuild or a source build. */
function makeRoot(options: { prebuild?: 'good' | 'truncated' | 'truncated-variant' | 'arm64' | 'musl'; sourceBuild?: boolean; version?: string }): string {
  const root = join(work, `root-${++roots}`);
  mkdirSync(root);
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'stable-diffusion-node', version: options.version ?? '1.2.3' }));
  if (options.prebuild) {
    const dir = join(root, 'prebuilds', tag);
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(builtDir)) if (/\.(so(\.\d+)*|node|dll|dylib)$/.test(f)) copyFileSync(join(builtDir, f), join(dir, f));
    if (options.prebuild === 'truncated') truncateSync(join(dir, 'sd_node.node'), 1000);
    if (options.prebuild === 'truncated-variant') {
      const variant = readdirSync(dir).find((f) => /ggml-cpu-/.test(f))!;
      truncateSync(join(dir, variant), 200_000);
    }
    if (options.prebuild === 'arm64') {
      // e_machine (offset 18) of AArch64, as a binary for another platform has.
      const bytes = readFileSync(join(dir, 'sd_node.node'));
      bytes.writeUInt16LE(183, 18);
      writeFileSync(join(dir, 'sd_node.node'), bytes);
    }
    const libc = options.prebuild === 'musl' ? 'musl' : 'glibc';
    writeFileSync(join(dir, 'build.json'), JSON.stringify({ platform: process.platform, arch: process.arch, libc, napi: 8, version: '1.2.3', ggmlCommit: 'x', cpuVariants: [] }));
  }
  if (options.sourceBuild) {
    mkdirSync(join(root, 'build'), { recursive: true });
    symlinkSync(builtDir, join(root, 'build', 'Release'));
  }
  return root;
}

/** A GPU package installed in `root`'s node_modules. */
function installGpuPackage(root: string, backend: 'cuda' | 'vulkan', options: { version?: string; module?: 'garbage' | 'none' } = {}): void {
  const dir = join(root, 'node_modules', ...gpuPackageName(backend)!.split('/'));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: gpuPackageName(backend), version: options.version ?? '1.2.3' }));
  if (options.module !== 'none') writeFileSync(join(dir, backendModuleFile(backend)), Buffer.from('not an ELF file, a broken download'));
}

interface ChildLoad {
  error?: { code: string; message: string };
  source?: string;
  path?: string;
  rejected?: { source: string; reason: string }[];
  gpu?: { backend: string; status: string; reason?: string }[];
  backends?: string[];
  stderr: string;
  signal: string | null;
}

/** loadBinary(root) in a child process (no SDNODE_ADDON), with what it printed. */
function loadInChild(root: string, env: NodeJS.ProcessEnv = {}): ChildLoad {
  const load = pathToFileURL(join(packageRoot, 'lib', 'binary', 'load.ts')).href;
  const script = `
    import { loadBinary } from ${JSON.stringify(load)};
    try {
      const b = loadBinary(${JSON.stringify(root)}, '1.2.3');
      console.log(JSON.stringify({ source: b.source, path: b.path, rejected: b.rejected, gpu: b.gpu, backends: b.addon.systemInfo().backends }));
    } catch (e) {
      console.log(JSON.stringify({ error: { code: e.code, message: e.message } }));
    }`;
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete childEnv.SDNODE_ADDON;
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', env: childEnv, timeout: 120_000 });
  const last = child.stdout.trim().split('\n').pop() ?? '';
  assert.ok(last.startsWith('{'), `no result from the child (signal ${child.signal}): ${child.stdout}\n${child.stderr}`);
  return { ...(JSON.parse(last) as object), stderr: child.stderr, signal: child.signal };
}

describe('choosing the addon', () => {
  test('SDNODE_ADDON, then a source build, then the prebuilt binary', () => {
    const root = '/pkg';
    assert.deepEqual(addonCandidates(root, {}).map((c) => [c.source, c.path]), [
      ['source build', join(root, 'build', 'Release', 'sd_node.node')],
      ['prebuilt', join(root, 'prebuilds', tag, 'sd_node.node')],
    ]);
    assert.deepEqual(addonCandidates(root, { SDNODE_ADDON: '/x/sd_node.node' }), [{ path: '/x/sd_node.node', source: 'SDNODE_ADDON' }]);
  });

  test('a good prebuilt binary loads with its best CPU variant', () => {
    const r = loadInChild(makeRoot({ prebuild: 'good' }));
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    assert.equal(r.source, 'prebuilt');
    assert.ok(r.backends!.includes('CPU'));
  });

  test('a truncated prebuilt binary is one clear ERR_NATIVE_LOAD, not a crash', () => {
    const r = loadInChild(makeRoot({ prebuild: 'truncated' }));
    assert.equal(r.signal, null);
    assert.equal(r.error?.code, 'ERR_NATIVE_LOAD');
    assert.match(r.error!.message, /^The native addon could not be loaded \(prebuilt .*sd_node\.node: truncated \(1000 bytes; it needs \d+\)\)\. Reinstall the package, or build it from source: SDNODE_BUILD_FROM_SOURCE=1 npm rebuild stable-diffusion-node$/);
  });

  test('a truncated CPU variant module (ggml opens each one) is caught before anything loads', { skip: noVariants }, () => {
    const r = loadInChild(makeRoot({ prebuild: 'truncated-variant' }));
    assert.equal(r.signal, null);
    assert.equal(r.error?.code, 'ERR_NATIVE_LOAD');
    assert.match(r.error!.message, /: libggml-cpu-\w+\.so is truncated \(200000 bytes; it needs \d+\)\)/);
  });

  test('a prebuilt binary for another architecture is passed over, saying so', { skip: process.arch !== 'x64' ? 'x64 only' : false }, () => {
    const r = loadInChild(makeRoot({ prebuild: 'arm64' }));
    assert.equal(r.error?.code, 'ERR_NATIVE_LOAD');
    assert.match(r.error!.message, /sd_node\.node: built for arm64, this is x64\)/);
  });

  test('a prebuilt binary for another C library is passed over, saying so', () => {
    const r = loadInChild(makeRoot({ prebuild: 'musl' }));
    assert.equal(r.error?.code, 'ERR_NATIVE_LOAD');
    assert.match(r.error!.message, /it was built for musl and this system uses glibc/);
  });

  test('a source build wins over a broken prebuilt binary', () => {
    const r = loadInChild(makeRoot({ prebuild: 'truncated', sourceBuild: true }));
    assert.equal(r.error, undefined);
    assert.equal(r.source, 'source build');
  });

  test('no binary at all: ERR_NATIVE_MISSING naming where it looked', () => {
    const r = loadInChild(makeRoot({}));
    assert.equal(r.error?.code, 'ERR_NATIVE_MISSING');
    assert.match(r.error!.message, new RegExp(`no prebuilt binary exists for ${tag}`));
  });
});

describe('choosing GPU variants', { skip: gpuPackageName('vulkan') === undefined ? `no GPU packages exist for ${tag}` : false }, () => {
  test('GPU packages that are not installed are named, and ERR_BACKEND_UNAVAILABLE says to install them', () => {
    const r = loadInChild(makeRoot({ sourceBuild: true }));
    for (const backend of ['cuda', 'vulkan']) {
      const builtIn = readdirSync(builtDir).includes(backendModuleFile(backend));
      const v = r.gpu!.find((g) => g.backend === backend)!;
      if (builtIn) assert.equal(v.status, 'built-in');
      else assert.deepEqual(v, { backend, package: gpuPackageName(backend as 'cuda'), status: 'not-installed', reason: `install ${gpuPackageName(backend as 'cuda')} (npm install ${gpuPackageName(backend as 'cuda')})` });
    }
  });

  test('a GPU package of another version is not loaded', () => {
    const root = makeRoot({ sourceBuild: true });
    installGpuPackage(root, 'cuda', { version: '9.9.9' });
    const v = loadInChild(root).gpu!.find((g) => g.backend === 'cuda')!;
    assert.equal(v.status, 'failed');
    assert.match(v.reason!, /linux-x64-cuda@9\.9\.9 does not match stable-diffusion-node@1\.2\.3/);
  });

  test('a GPU package without its module is not loaded', () => {
    const root = makeRoot({ sourceBuild: true });
    installGpuPackage(root, 'cuda', { module: 'none' });
    const v = loadInChild(root).gpu!.find((g) => g.backend === 'cuda')!;
    assert.equal(v.status, 'failed');
    assert.match(v.reason!, /has no libggml-cuda\.so/);
  });

  test('a broken GPU module falls back to the CPU with one debug line: no driver, or a failed test load in a child', () => {
    for (const backend of ['cuda', 'vulkan'] as const) {
      // A source build with this backend built in loads that one and never looks at the package.
      if (readdirSync(builtDir).includes(backendModuleFile(backend))) continue;
      const root = makeRoot({ sourceBuild: true });
      installGpuPackage(root, backend);
      const r = loadInChild(root, { SDNODE_LOG: 'debug' });
      assert.equal(r.signal, null);
      const v = r.gpu!.find((g) => g.backend === backend)!;
      const hasDriver = probeDriver(backend);
      if (hasDriver) {
        assert.equal(v.status, 'failed', JSON.stringify(v));
        assert.match(v.reason!, /could not be loaded: .*(invalid ELF header|too short)/);
      } else {
        assert.equal(v.status, 'no-driver', JSON.stringify(v));
        assert.match(v.reason!, new RegExp(`no ${backend === 'cuda' ? 'CUDA' : 'Vulkan'} driver found \\(.*${driverLibrary(backend).replace(/\./g, '\\.')}`));
      }
      assert.ok(!r.backends!.includes(backend === 'cuda' ? 'CUDA' : 'Vulkan'));
      const lines = r.stderr.split('\n').filter((l) => l.startsWith(`[sdnode] ${backend === 'cuda' ? 'CUDA' : 'Vulkan'} variant not used: `));
      assert.equal(lines.length, 1, r.stderr);
      // Unless the source build has a GPU backend built in that finds a device, 'auto' takes the CPU.
      const fallback = ['CUDA', 'Vulkan'].find((b) => listDevices().some((d) => d.backend === b)) ?? 'the CPU';
      assert.match(lines[0]!, new RegExp(`; using ${fallback}$`));
    }
  });
});

function probeDriver(backend: 'cuda' | 'vulkan'): boolean {
  return (loadedBinary().addon.probeLibrary(driverLibrary(backend)) as string) === '';
}

test('the CPU variant is named from its module file', () => {
  assert.equal(cpuVariantOf('/x/libggml-cpu-zen4.so'), 'zen4');
  assert.equal(cpuVariantOf('C:\\x\\ggml-cpu-haswell.dll'), 'haswell');
  assert.equal(cpuVariantOf('/x/libggml-cpu.so'), undefined);
  assert.equal(cpuVariantOf('/x/libggml.so.0'), undefined);
});
