#!/usr/bin/env node
// Obtains ggml's source from the pinned node-llama-cpp tarball (see ggml-source.json):
// `npm pack` fetches the tarball, we check its sha512 against the pinned integrity, then clone
// the llama.cpp git bundle it ships into deps/llama.cpp and applies our scripts/patches/*.patch
// (also to an existing checkout, whenever the set of patches changes). The package's own
// install script is never run. Nothing fetched here is committed (deps/ is git-ignored).
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pin = JSON.parse(readFileSync(join(root, 'scripts', 'ggml-source.json'), 'utf8'));
const depsDir = join(root, 'deps');
const cacheDir = join(depsDir, 'cache');
const checkout = join(depsDir, 'llama.cpp');
const patchDir = join(root, 'scripts', 'patches');

function run(cmd, args, options = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...options }).trim();
}

// Our patches to ggml (scripts/patches/*.patch, applied in name order). The marker file in the
// checkout records each one with its hash, so adding, changing or removing a patch is noticed
// on an existing checkout too.
function wantedPatches() {
  const names = existsSync(patchDir) ? readdirSync(patchDir).filter((f) => f.endsWith('.patch')).sort() : [];
  return names.map((name) => {
    const sha = createHash('sha256').update(readFileSync(join(patchDir, name))).digest('hex');
    return { name, file: join(patchDir, name), line: `${name} ${sha}` };
  });
}

const markerFile = join(checkout, '.sdnode-patched');
const markerText = (patches) => patches.map((p) => p.line).join('\n') + '\n';

function checkoutAtPin() {
  if (!existsSync(join(checkout, 'ggml', 'CMakeLists.txt'))) return false;
  try {
    return run('git', ['-C', checkout, 'rev-parse', 'HEAD']) === pin.commit;
  } catch {
    return false;
  }
}

// Brings the tracked files back to the pinned commit, then applies every patch. git rewrites
// only the files that differ, so a re-patch leaves the rest of an existing build untouched.
function applyPatches(patches) {
  run('git', ['-C', checkout, 'reset', '--quiet', '--hard', pin.commit]);
  for (const patch of patches) {
    console.log(`[sdnode] applying ${patch.name}`);
    run('git', ['-C', checkout, 'apply', '--whitespace=nowarn', patch.file]);
  }
  writeFileSync(markerFile, markerText(patches));
}

function fetchTarball() {
  mkdirSync(cacheDir, { recursive: true });
  const tarball = join(cacheDir, `${pin.package}-${pin.version}.tgz`);
  if (!existsSync(tarball) || integrityOf(tarball) !== pin.integrity) {
    console.log(`[sdnode] fetching ${pin.package}@${pin.version} through npm for ggml's source`);
    // --ignore-scripts: the package is only a carrier for the llama.cpp bundle.
    run('npm', ['pack', `${pin.package}@${pin.version}`, '--ignore-scripts', '--silent',
      '--pack-destination', cacheDir], { shell: process.platform === 'win32' });
  }
  const actual = integrityOf(tarball);
  if (actual !== pin.integrity) {
    throw new Error(`Integrity mismatch for ${tarball}: expected ${pin.integrity} but got ${actual}`);
  }
  return tarball;
}

function integrityOf(file) {
  return 'sha512-' + createHash('sha512').update(readFileSync(file)).digest('base64');
}

function main() {
  const patches = wantedPatches();
  if (checkoutAtPin()) {
    const marker = existsSync(markerFile) ? readFileSync(markerFile, 'utf8') : null;
    if (marker !== markerText(patches)) applyPatches(patches);
    console.log(`[sdnode] ggml source ready at ${checkout} (${pin.commit.slice(0, 7)})`);
    return;
  }
  const tarball = fetchTarball();
  run('tar', ['-xzf', tarball, '-C', cacheDir, pin.bundle]);
  rmSync(checkout, { recursive: true, force: true });
  run('git', ['clone', '--quiet', '--no-checkout', join(cacheDir, pin.bundle), checkout]);
  run('git', ['-C', checkout, '-c', 'advice.detachedHead=false', 'checkout', '--quiet', pin.commit]);
  applyPatches(patches);
  console.log(`[sdnode] ggml source ready at ${checkout} (${pin.commit.slice(0, 7)})`);
}

main();
