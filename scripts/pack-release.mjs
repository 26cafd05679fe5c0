#!/usr/bin/env node
// Packs what `npm run prebuild` made into publishable tarballs in release/:
//
//   release/stable-diffusion-node-<version>.tgz      dist/, the prebuilt binaries for this platform,
//                                                    the sources for a build elsewhere, the demo model
//   release/stable-diffusion-node-<platform>-<arch>-<gpu>-<version>.tgz   each GPU package in packages/
//
// The main package lists each GPU package it is packed with in its optionalDependencies, pinned to
// its own version (npm installs the ones whose os/cpu/libc match). They are added here rather than
// in package.json so that a clone's `npm ci` does not ask the registry for packages of a version
// that is not published yet. Publish with `npm publish release/<file>.tgz`.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const releaseDir = join(root, 'release');
const stageDir = join(releaseDir, 'stage');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function pack(dir, args = []) {
  const out = execFileSync(npm, ['pack', '--json', '--pack-destination', releaseDir, ...args], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const [result] = JSON.parse(out.slice(out.indexOf('[')));
  return result;
}

function report(result) {
  console.log(`[sdnode pack] ${result.filename}: ${(result.size / 1e6).toFixed(1)} MB packed, ${(result.unpackedSize / 1e6).toFixed(1)} MB unpacked, ${result.entryCount} files`);
}

const tag = `${process.platform}-${process.arch}`;
if (!existsSync(join(root, 'prebuilds', tag, 'sd_node.node'))) {
  throw new Error(`prebuilds/${tag} is missing: run \`npm run prebuild\` first`);
}
rmSync(releaseDir, { recursive: true, force: true });
mkdirSync(stageDir, { recursive: true });

// GPU packages first: the main package lists the ones that exist.
const gpuPackages = [];
const packagesDir = join(root, 'packages');
for (const name of existsSync(packagesDir) ? readdirSync(packagesDir).sort() : []) {
  const dir = join(packagesDir, name);
  if (!statSync(dir).isDirectory() || !existsSync(join(dir, 'package.json'))) continue;
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  if (manifest.version !== pkg.version) throw new Error(`${manifest.name}@${manifest.version} in packages/ does not match ${pkg.name}@${pkg.version}: run \`npm run prebuild\` again`);
  gpuPackages.push(manifest.name);
  report(pack(dir));
}

// The main package: npm's own file list (package.json `files`, prepare run), then the manifest
// with the GPU packages, packed again from the staged copy without scripts.
const first = pack(root);
execFileSync('tar', ['-xzf', join(releaseDir, first.filename), '-C', stageDir]);
rmSync(join(releaseDir, first.filename));
const staged = join(stageDir, 'package');
const manifest = JSON.parse(readFileSync(join(staged, 'package.json'), 'utf8'));
if (gpuPackages.length > 0) manifest.optionalDependencies = Object.fromEntries(gpuPackages.map((name) => [name, pkg.version]));
writeFileSync(join(staged, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
report(pack(staged, ['--ignore-scripts']));
rmSync(stageDir, { recursive: true, force: true });
