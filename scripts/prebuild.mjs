#!/usr/bin/env node
// Builds the release binaries (`npm run prebuild`):
//
//   prebuilds/<platform>-<arch>/      the addon, ggml's libraries and every CPU variant module,
//                                     with build.json (what it was built for); ships in the main package
//   packages/<platform>-<arch>-vulkan/   @stable-diffusion-node/<platform>-<arch>-vulkan: libggml-vulkan
//   packages/<platform>-<arch>-cuda/     @stable-diffusion-node/<platform>-<arch>-cuda: libggml-cuda
//
//   node scripts/prebuild.mjs [--vulkan] [--cuda] [--cuda-architectures LIST] [--jobs N]
//                             [--out DIR] [--gpu-only] [--skip-build]
//
// --out DIR builds in DIR instead of build/ (e.g. the hour-long CUDA build beside a working tree
// that keeps rebuilding build/); --gpu-only then writes only the GPU packages. --skip-build
// packages what DIR already holds.
//
// It compiles into build/, the folder `npm install` builds into from source, with the same flags
// (every CPU variant, no -march=native), so after `npm ci` only the GPU backends are left to
// compile. A GPU module is built against the same ggml-base as the addon and must ship with the
// same version of the main package. prebuildify's layout, not prebuildify itself: it drives
// node-gyp only and copies one .node file, while our addon comes with ggml's libraries and modules.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : undefined;
};

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const tag = `${process.platform}-${process.arch}`;
const buildDir = resolve(root, option('--out') ?? 'build');
const releaseDir = join(buildDir, 'Release');
const gpuBackends = ['vulkan', 'cuda'].filter((b) => flag(`--${b}`));
const moduleFile = (name) => (process.platform === 'win32' ? `ggml-${name}.dll` : `libggml-${name}.${process.platform === 'darwin' ? 'dylib' : 'so'}`);

function log(message) {
  console.log(`[sdnode prebuild] ${message}`);
}

function build() {
  const buildArgs = [join(root, 'scripts', 'build-native.mjs'), ...gpuBackends.map((b) => `--${b}`)];
  const architectures = option('--cuda-architectures');
  if (architectures) buildArgs.push('--cuda-architectures', architectures);
  const jobs = option('--jobs');
  if (jobs) buildArgs.push('--jobs', jobs);
  buildArgs.push('--out', buildDir);
  execFileSync(process.execPath, buildArgs, { stdio: 'inherit', cwd: root });
}

// A release build must run on any CPU of its architecture: no -march=native / -mtune=native, and
// instruction-set flags only in ggml's CPU variant modules (each loaded only where the CPU has them).
function checkPortableFlags() {
  const cache = readFileSync(join(buildDir, 'CMakeCache.txt'), 'utf8');
  for (const [name, wanted] of [['GGML_NATIVE', 'OFF'], ['GGML_BACKEND_DL', 'ON'], ['SDNODE_ALL_CPU_VARIANTS', 'ON']]) {
    const value = new RegExp(`^${name}:\\w+=(.*)$`, 'm').exec(cache)?.[1];
    if (value !== wanted) throw new Error(`${buildDir} is configured with ${name}=${value}; a release build needs ${wanted} (do not pass --native-cpu)`);
  }
  const commands = JSON.parse(readFileSync(join(buildDir, 'compile_commands.json'), 'utf8'));
  const isaFlag = /(^|\s)-m(avx\S*|sse\S*|fma|f16c|bmi\S*|amx\S*|arch=\S+|tune=\S+)(?=\s|$)/g;
  let checked = 0;
  for (const entry of commands) {
    const command = entry.command ?? entry.arguments.join(' ');
    if (/-m(arch|tune|cpu)=native/.test(command)) throw new Error(`-march=native in the release build: ${entry.file}`);
    const variantModule = /ggml-cpu-[A-Za-z0-9_]+\.dir/.test(entry.output ?? command);
    const found = [...command.matchAll(isaFlag)].map((m) => m[0].trim());
    if (found.length > 0 && !variantModule) throw new Error(`${found.join(' ')} outside a CPU variant module: ${entry.file}`);
    checked += 1;
  }
  log(`checked ${checked} compile commands: no -march=native, instruction-set flags only in CPU variant modules`);
}

// Copies a built file, stripping its symbol table (not needed to run; about a tenth of the size).
function ship(from, to) {
  copyFileSync(realpathSync(from), to);
  try {
    execFileSync('strip', ['--strip-unneeded', to], { stdio: 'ignore' });
  } catch {
    // no strip on this machine: ship it as built
  }
}

function sonameFiles() {
  // ggml's shared libraries are found by their soname (libggml-base.so.0); npm does not pack the
  // symlinks, so the real file is shipped under that name.
  return readdirSync(releaseDir).filter((f) => /^libggml(-base)?\.so\.\d+$/.test(f) || /^ggml(-base)?\.dll$/.test(f) || /^libggml(-base)?\.\d+\.dylib$/.test(f));
}

function writeMainPrebuild() {
  const out = join(root, 'prebuilds', tag);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const cpuVariants = readdirSync(releaseDir).filter((f) => /^(lib)?ggml-cpu-[A-Za-z0-9_]+\.(so|dll|dylib)$/.test(f));
  if (cpuVariants.length === 0) throw new Error(`no CPU variant modules in ${releaseDir}`);
  const files = ['sd_node.node', ...sonameFiles(), ...cpuVariants];
  for (const f of files) ship(join(releaseDir, f), join(out, f));
  const ggmlCommit = JSON.parse(readFileSync(join(root, 'scripts', 'ggml-source.json'), 'utf8')).commit;
  const manifest = {
    platform: process.platform,
    arch: process.arch,
    ...(process.platform === 'linux' && { libc: 'glibc' }),
    napi: Math.max(...pkg.binary.napi_versions),
    version: pkg.version,
    ggmlCommit,
    cpuVariants: cpuVariants.map((f) => /ggml-cpu-([A-Za-z0-9_]+)\./.exec(f)[1]),
  };
  writeFileSync(join(out, 'build.json'), JSON.stringify(manifest, null, 2) + '\n');
  log(`prebuilds/${tag}: ${files.length} files, ${mb(folderBytes(out))} (CPU variants: ${manifest.cpuVariants.join(', ')})`);
}

const GPU_DESCRIPTIONS = {
  vulkan: {
    title: 'Vulkan',
    needs: 'a Vulkan driver (libvulkan.so.1 and a device: any recent GPU driver, or Mesa)',
  },
  cuda: {
    title: 'CUDA',
    needs: 'an NVIDIA driver and the CUDA 13 runtime with cuBLAS (libcudart.so.13, libcublas.so.13, libcublasLt.so.13: a CUDA 13 toolkit, or the nvidia-cuda-runtime and nvidia-cublas wheels on the library path)',
  },
};

function writeGpuPackage(backend) {
  const file = moduleFile(backend);
  const built = join(releaseDir, file);
  if (!existsSync(built)) throw new Error(`${file} was not built (is the ${backend} toolchain installed?)`);
  const dir = join(root, 'packages', `${tag}-${backend}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  ship(built, join(dir, file));
  const { title, needs } = GPU_DESCRIPTIONS[backend];
  const [os, cpu] = [process.platform, process.arch];
  const manifest = {
    name: `@stable-diffusion-node/${tag}-${backend}`,
    version: pkg.version,
    description: `${title} variant of stable-diffusion-node for ${tag}: ggml's ${title} backend module, loaded by stable-diffusion-node@${pkg.version} when ${needs.split(' (')[0]} is present`,
    license: pkg.license,
    os: [os],
    cpu: [cpu],
    ...(os === 'linux' && { libc: ['glibc'] }),
    files: [file, 'README.md'],
    ...(backend === 'cuda' && { cudaArchitectures: cudaArchitectures() }),
  };
  writeFileSync(join(dir, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
  writeFileSync(
    join(dir, 'README.md'),
    `# ${manifest.name}\n\nThe ${title} variant of [stable-diffusion-node](https://www.npmjs.com/package/stable-diffusion-node) ${pkg.version} for ${tag}: ` +
      `ggml's ${title} backend as a module (\`${file}\`). Not used on its own: stable-diffusion-node lists it in its ` +
      `optionalDependencies, tests it in a child process at start-up and loads it when it finds a device.\n\n` +
      `Needs ${needs}.${backend === 'cuda' ? ` Compiled for CUDA architectures ${cudaArchitectures()}.` : ''}\n`,
  );
  log(`packages/${tag}-${backend}: ${file} ${mb(statSync(join(dir, file)).size)}`);
}

function cudaArchitectures() {
  const cache = readFileSync(join(buildDir, 'CMakeCache.txt'), 'utf8');
  return /^CMAKE_CUDA_ARCHITECTURES:\w+=(.*)$/m.exec(cache)?.[1] ?? 'unknown';
}

function folderBytes(dir) {
  return readdirSync(dir).reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
}

function mb(bytes) {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

const started = Date.now();
if (!flag('--skip-build')) build();
checkPortableFlags();
if (!flag('--gpu-only')) writeMainPrebuild();
for (const backend of gpuBackends) writeGpuPackage(backend);
log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s; \`npm run pack:release\` packs them into release/`);
