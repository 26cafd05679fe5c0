#!/usr/bin/env node
// Obtains ggml's source from the pinned node-llama-cpp tarball (see ggml-source.json):
// `npm pack` fetches the tarball, we check its sha512 against the pinned integrity, then clone
// the llama.cpp git bundle it ships into deps/llama.cpp. The package's own install script is
// never run. Nothing fetched here is committed (deps/ is git-ignored).
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

function checkoutIsCurrent() {
  if (!existsSync(join(checkout, 'ggml', 'CMakeLists.txt'))) return false;
  try {
    return run('git', ['-C', checkout, 'rev-parse', 'HEAD']) === pin.commit &&
      existsSync(join(checkout, '.sdnode-patched'));
  } catch {
    return false;
  }
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
  if (checkoutIsCurrent()) {
    console.log(`[sdnode] ggml source ready at ${checkout} (${pin.commit.slice(0, 7)})`);
    return;
  }
  const tarball = fetchTarball();
  run('tar', ['-xzf', tarball, '-C', cacheDir, pin.bundle]);
  rmSync(checkout, { recursive: true, force: true });
  run('git', ['clone', '--quiet', '--no-checkout', join(cacheDir, pin.bundle), checkout]);
  run('git', ['-C', checkout, '-c', 'advice.detachedHead=false', 'checkout', '--quiet', pin.commit]);
  const patches = existsSync(patchDir) ? readdirSync(patchDir).filter((f) => f.endsWith('.patch')).sort() : [];
  for (const patch of patches) {
    console.log(`[sdnode] applying ${patch}`);
    run('git', ['-C', checkout, 'apply', join(patchDir, patch)]);
  }
  writeFileSync(join(checkout, '.sdnode-patched'), patches.join('\n') + '\n');
  console.log(`[sdnode] ggml source ready at ${checkout} (${pin.commit.slice(0, 7)})`);
}

main();
