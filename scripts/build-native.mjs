#!/usr/bin/env node
// Builds the native addon: fetches ggml's pinned source, then configures and compiles
// CMakeLists.txt through cmake-js into build/Release.
//
//   node scripts/build-native.mjs [--vulkan] [--cuda] [--debug] [--jobs N] [--if-missing]
//                                 [--out DIR] [--native-cpu] [--cuda-architectures LIST] [--sanitize]
//
// --if-missing (used by `npm install`) keeps an existing build/Release/sd_node.node.
// --out DIR builds into DIR instead of build/ (load it with SDNODE_ADDON=DIR/Release/sd_node.node).
// --native-cpu builds one CPU backend for this machine's CPU only (quick developer builds; the
// result does not run on older CPUs).
// --sanitize builds with ASan + UBSan (development only; run the tests on it with
// `npm run test:sanitize`, which preloads the sanitizer runtime into node).
// --cuda-architectures LIST compiles CUDA code for those GPU generations only (CMake's
// CMAKE_CUDA_ARCHITECTURES, e.g. 89 or "86-real;89-real"); each one adds most of an hour on 2 cores.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};

const outDir = resolve(root, option('--out', 'build'));
const addon = join(outDir, 'Release', 'sd_node.node');
if (flag('--if-missing') && existsSync(addon)) {
  console.log(`[sdnode] using the existing native build at ${addon}`);
  process.exit(0);
}

const env = process.env;
const vulkan = flag('--vulkan') || env.SDNODE_VULKAN === '1';
const cuda = flag('--cuda') || env.SDNODE_CUDA === '1';
const jobs = Number(option('--jobs', env.SDNODE_BUILD_JOBS ?? String(availableParallelism())));

execFileSync(process.execPath, [join(root, 'scripts', 'fetch-ggml.mjs')], { stdio: 'inherit', cwd: root });

const cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
const defines = [
  `--CDSDNODE_VULKAN=${vulkan ? 'ON' : 'OFF'}`,
  `--CDSDNODE_CUDA=${cuda ? 'ON' : 'OFF'}`,
  `--CDSDNODE_ALL_CPU_VARIANTS=${flag('--native-cpu') ? 'OFF' : 'ON'}`,
  `--CDSDNODE_SANITIZE=${flag('--sanitize') ? 'ON' : 'OFF'}`,
];
const cudaArchitectures = option('--cuda-architectures', env.SDNODE_CUDA_ARCHITECTURES);
if (cudaArchitectures) defines.push(`--CDCMAKE_CUDA_ARCHITECTURES=${cudaArchitectures}`);
const common = ['--out', outDir, ...(flag('--debug') ? ['--debug'] : [])];
const started = Date.now();
console.log(`[sdnode] building the native addon (vulkan ${vulkan ? 'on' : 'off'}, cuda ${cuda ? 'on' : 'off'}, ${jobs} jobs)`);
execFileSync(process.execPath, [cmakeJs, 'configure', ...common, ...defines], { stdio: 'inherit', cwd: root });
execFileSync(process.execPath, [cmakeJs, 'build', ...common, '--parallel', String(jobs)], { stdio: 'inherit', cwd: root });
console.log(`[sdnode] native build done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
