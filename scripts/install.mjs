#!/usr/bin/env node
// The package's install script. With a prebuilt binary for this platform that loads, there is
// nothing to do (and the package works just as well when install scripts are skipped:
// `--ignore-scripts`, pnpm, Bun). Otherwise it builds the addon from source, saying why and what
// that needs:
//   - SDNODE_BUILD_FROM_SOURCE=1 asks for a source build;
//   - no prebuilt binary exists for this platform (only linux-x64 with glibc is built so far);
//   - the prebuilt binary does not load here (corrupt, another C library, too old a system).
// An existing source build (build/Release, e.g. in a clone of the repository) is kept.
import { spawnSync, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const tag = `${process.platform}-${process.arch}`;
const say = (message) => console.log(`[sdnode] ${message}`);

// Loads an addon and its CPU backend in a child process: a binary that crashes while loading
// must not take npm with it.
const TEST_LOAD = `
const [addonPath, dir] = process.argv.slice(1);
const addon = require(addonPath);
addon.init(dir, [], {});
const info = addon.systemInfo();
if (!info.backends.includes('CPU')) { console.error('no CPU backend could be loaded'); process.exit(3); }
`;

function loadError(addonPath) {
  const child = spawnSync(process.execPath, ['-e', TEST_LOAD, addonPath, dirname(addonPath)], { encoding: 'utf8', timeout: 120_000 });
  if (child.status === 0) return undefined;
  const said = (child.stderr ?? '').trim().split('\n').find((line) => /Error|error/.test(line)) ?? child.stderr?.trim().split('\n').pop();
  if (child.signal) return `the test load crashed with ${child.signal}${child.signal === 'SIGBUS' ? ': a truncated file' : ''}`;
  return said || `the test load exited with code ${child.status}`;
}

function has(command, args = ['--version']) {
  const found = spawnSync(command, args, { encoding: 'utf8' });
  return found.status === 0 ? found.stdout : undefined;
}

function missingTools() {
  const missing = [];
  const cmake = has('cmake');
  const version = /cmake version (\d+)\.(\d+)/.exec(cmake ?? '');
  if (!version || Number(version[1]) < 3 || (Number(version[1]) === 3 && Number(version[2]) < 19)) missing.push('cmake ≥ 3.19');
  if (!['c++', 'g++', 'clang++'].some((cxx) => has(cxx))) missing.push('a C++17 compiler (g++ or clang++)');
  if (!has('git')) missing.push('git');
  return missing;
}

function buildFromSource(reason) {
  say(`building the native addon from source: ${reason}`);
  const missing = missingTools();
  if (missing.length > 0) {
    say(`cannot build from source: ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} missing. Install ${missing.length === 1 ? 'it' : 'them'}, or use a platform with prebuilt binaries (linux-x64 with glibc 2.34 or later).`);
    process.exit(1);
  }
  execFileSync(process.execPath, [join(root, 'scripts', 'build-native.mjs')], { stdio: 'inherit', cwd: root });
}

const sourceBuild = join(root, 'build', 'Release', 'sd_node.node');
const prebuilt = join(root, 'prebuilds', tag, 'sd_node.node');
const wanted = process.env.SDNODE_BUILD_FROM_SOURCE;

if (wanted === '1' || wanted === 'true') {
  buildFromSource('SDNODE_BUILD_FROM_SOURCE is set');
} else if (existsSync(sourceBuild) && loadError(sourceBuild) === undefined) {
  say(`using the existing source build at ${sourceBuild}`);
} else if (!existsSync(prebuilt)) {
  buildFromSource(`no prebuilt binary for ${tag}`);
} else {
  const error = loadError(prebuilt);
  if (error === undefined) {
    say(`using the prebuilt binary for ${tag}`);
  } else {
    buildFromSource(`the prebuilt binary for ${tag} does not load here (${error})`);
  }
}
