#!/usr/bin/env node
// Builds the libFuzzer targets of test/fuzz/ and runs them (see test/fuzz/README.md).
//
//   npm run fuzz -- [--seconds N] [--runs N] [--target NAME,...] [--jobs N] [--build-only] [--replay]
//
// The core's parsers and ggml's base library (whose GGUF parser the GGUF target goes through) are
// compiled straight from their sources with clang and AddressSanitizer + UndefinedBehaviorSanitizer
// (-fsanitize=fuzzer-no-link: coverage for the fuzzer), into an archive that each target links;
// nothing else of the core (networks, backends) is needed. Everything lands in build-fuzz/
// (git-ignored): objects, targets, each target's growing corpus, crash artifacts and logs.
// Each target runs for --seconds (default 60) or --runs executions, whichever ends first, over
// its seeds (test/fuzz/corpus/NAME) and what earlier runs found; --replay runs every seed and
// regression input (test/fuzz/regressions/NAME) once instead. --jobs N (default 2): compiles, and
// targets run, N at a time. Exits 1 when a target fails.
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'build-fuzz');
const ggmlDir = join(root, 'deps', 'llama.cpp', 'ggml');

// The core sources the targets reach: the readers, detection and name mapping, the LoRA
// reader, the text units, logging.
const coreSources = [
  'io/checkpoint_reader.cpp', 'io/gguf_reader.cpp', 'io/guarded_read.cpp', 'io/json.cpp', 'io/mapped_file.cpp',
  'io/model_file_reader.cpp', 'io/pickle_reader.cpp', 'io/safetensors_reader.cpp', 'io/tensor_index.cpp',
  'io/weight_types.cpp', 'io/zip_reader.cpp', 'model/detection.cpp', 'model/lora_file.cpp', 'model/name_mapping.cpp',
  'text/clip_tokenizer.cpp', 'text/prompt_parser.cpp', 'text/unicode.cpp', 'text/unicode_tables.cpp', 'runtime/log.cpp',
].map((f) => join(root, 'native', 'core', f));
// ggml-base as ggml's CMakeLists.txt lists it.
const ggmlSources = ['ggml.c', 'ggml.cpp', 'ggml-alloc.c', 'ggml-backend.cpp', 'ggml-backend-meta.cpp', 'ggml-opt.cpp',
  'ggml-threading.cpp', 'ggml-quants.c', 'gguf.cpp'].map((f) => join(ggmlDir, 'src', f));

function usage(message) {
  if (message) console.error(message);
  console.error('Usage: npm run fuzz -- [--seconds N] [--runs N] [--target NAME,...] [--jobs N] [--build-only] [--replay]');
  process.exit(2);
}

function parseArgs(argv) {
  const options = { seconds: 60, runs: undefined, targets: undefined, jobs: 2, buildOnly: false, replay: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${arg} needs a value`);
      return v;
    };
    const count = (name) => {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1) usage(`Expected a positive integer for ${name}`);
      return n;
    };
    if (arg === '--seconds') options.seconds = count(arg);
    else if (arg === '--runs') options.runs = count(arg);
    else if (arg === '--jobs') options.jobs = count(arg);
    else if (arg === '--target') options.targets = value().split(',');
    else if (arg === '--build-only') options.buildOnly = true;
    else if (arg === '--replay') options.replay = true;
    else usage(`Unknown option ${arg}`);
  }
  return options;
}

const allTargets = readdirSync(join(root, 'test', 'fuzz')).filter((f) => f.endsWith('.cpp')).map((f) => basename(f, '.cpp')).sort();

function findClang() {
  for (const suffix of ['-14', '-15', '-16', '-17', '-18', '-19', '']) {
    try {
      execFileSync(`clang++${suffix}`, ['--version'], { stdio: 'ignore' });
      return { cc: `clang${suffix}`, cxx: `clang++${suffix}` };
    } catch {}
  }
  console.error('clang not found: install clang-14 and libclang-rt-14-dev (Debian) for libFuzzer');
  process.exit(2);
}

const sanitize = ['-fsanitize=address,undefined', '-fno-sanitize-recover=undefined'];
const common = ['-g', '-O1', '-fno-omit-frame-pointer', '-ffunction-sections', '-DGGML_MAX_NAME=128', '-D_GNU_SOURCE',
  '-D_XOPEN_SOURCE=600', `-I${join(root, 'native', 'core')}`, `-I${join(root, 'native', 'core', 'include')}`,
  `-I${join(ggmlDir, 'include')}`, `-I${join(ggmlDir, 'src')}`, `-I${join(out, 'include')}`, ...sanitize];

// An output is stale when it is missing or older than one of its inputs: for objects, the files
// the compiler listed in its dependency file (-MMD), headers included.
function stale(output, inputs) {
  if (!existsSync(output)) return true;
  const built = statSync(output).mtimeMs;
  return inputs.some((input) => !existsSync(input) || statSync(input).mtimeMs > built);
}

function dependencies(object, source) {
  const file = `${object}.d`;
  if (!existsSync(file)) return [source];
  const text = readFileSync(file, 'utf8').replace(/\\\n/g, ' ');
  return text.slice(text.indexOf(':') + 1).split(/\s+/).filter(Boolean);
}

function runCommand(cmd, args) {
  return new Promise((resolveRun, reject) => {
    const child = spawn('nice', ['-n', '10', cmd, ...args], { stdio: 'inherit' });
    child.on('exit', (code) => (code === 0 ? resolveRun() : reject(new Error(`${cmd} ${args.at(-1)} failed (${code})`))));
  });
}

async function inParallel(tasks, jobs) {
  const queue = [...tasks];
  await Promise.all(Array.from({ length: jobs }, async () => {
    while (queue.length) await queue.shift()();
  }));
}

async function build(clang, targets, jobs) {
  mkdirSync(join(out, 'obj'), { recursive: true });
  mkdirSync(join(out, 'include'), { recursive: true });
  mkdirSync(join(out, 'bin'), { recursive: true });
  // ggml's version header, which its CMake configures; the values do not matter here.
  const versionHeader = join(out, 'include', 'ggml-version.h');
  if (!existsSync(versionHeader)) {
    const template = readFileSync(join(ggmlDir, 'src', 'ggml-version.h.in'), 'utf8');
    writeFileSync(versionHeader, template.replace(/@[A-Z_]+@/g, 'fuzz'));
  }
  // The CLIP merges list the tokenizer targets read, as the package ships it (gzipped).
  const merges = join(out, 'clip-merges.txt');
  if (!existsSync(merges)) writeFileSync(merges, gunzipSync(readFileSync(join(root, 'native', 'core', 'data', 'bpe_simple_vocab_16e6.txt.gz'))));

  const objects = [];
  const compiles = [];
  for (const source of [...coreSources, ...ggmlSources]) {
    const object = join(out, 'obj', `${source.startsWith(ggmlDir) ? 'ggml-' : ''}${basename(dirname(source))}-${basename(source)}.o`);
    objects.push(object);
    if (!stale(object, dependencies(object, source))) continue;
    const c = source.endsWith('.c');
    const args = [...common, '-fsanitize=fuzzer-no-link', c ? '-std=gnu11' : '-std=gnu++17', '-MMD', '-MF', `${object}.d`,
      '-c', source, '-o', object];
    compiles.push(() => runCommand(c ? clang.cc : clang.cxx, args));
  }
  await inParallel(compiles, jobs);
  const archive = join(out, 'libfuzz-core.a');
  if (compiles.length || !existsSync(archive)) execFileSync('ar', ['rcs', archive, ...objects]);

  const links = [];
  for (const target of targets) {
    const source = join(root, 'test', 'fuzz', `${target}.cpp`);
    const binary = join(out, 'bin', target);
    if (!stale(binary, [archive, ...dependencies(binary, source)])) continue;
    const args = [...common, '-std=gnu++17', '-fsanitize=fuzzer', `-DSDNODE_SOURCE_DIR="${root}"`, '-MMD', '-MF', `${binary}.d`,
      `-DSDNODE_FUZZ_MERGES="${merges}"`, source, archive, '-Wl,--gc-sections', '-lpthread', '-ldl', '-lm', '-o', binary];
    links.push(() => runCommand(clang.cxx, args));
  }
  await inParallel(links, jobs);
}

// Runs one target; returns its executions, seconds and whether it failed.
function fuzz(target, options) {
  const corpus = join(out, 'corpus', target);
  const artifacts = join(out, 'artifacts', target);
  mkdirSync(corpus, { recursive: true });
  mkdirSync(artifacts, { recursive: true });
  mkdirSync(join(out, 'logs'), { recursive: true });
  const seeds = join(root, 'test', 'fuzz', 'corpus', target);
  const regressions = join(root, 'test', 'fuzz', 'regressions', target);
  const args = ['-print_final_stats=1', '-timeout=10', '-rss_limit_mb=2560', `-artifact_prefix=${artifacts}/`];
  let dirs;
  if (options.replay) {
    args.push('-runs=0');
    dirs = [seeds, regressions].filter(existsSync);
  } else {
    args.push(`-max_total_time=${options.seconds}`);
    if (options.runs) args.push(`-runs=${options.runs}`);
    dirs = [corpus, seeds, regressions].filter(existsSync);
  }
  const log = join(out, 'logs', `${target}${options.replay ? '-replay' : ''}.log`);
  const started = Date.now();
  return new Promise((resolveRun) => {
    const child = spawn('nice', ['-n', '10', join(out, 'bin', target), ...args, ...dirs], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1', ASAN_OPTIONS: 'detect_leaks=1' },
    });
    // The log grows as libFuzzer reports (tail it to watch a long run); the summary reads it at the end.
    writeFileSync(log, '');
    let text = '';
    const keep = (d) => {
      text += d;
      appendFileSync(log, d);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('exit', (code) => {
      const executions = Number(/stat::number_of_executed_units:\s*(\d+)/.exec(text)?.[1] ?? 0);
      resolveRun({ target, code, executions, seconds: (Date.now() - started) / 1000, log });
    });
  });
}

const options = parseArgs(process.argv.slice(2));
const targets = options.targets ?? allTargets;
for (const t of targets) if (!allTargets.includes(t)) usage(`Unknown target ${t} (targets: ${allTargets.join(', ')})`);
if (!existsSync(join(ggmlDir, 'src', 'gguf.cpp'))) {
  console.error(`ggml's source is missing at ${ggmlDir}: run \`node scripts/fetch-ggml.mjs\` first`);
  process.exit(2);
}
await build(findClang(), targets, options.jobs);
if (options.buildOnly) process.exit(0);

// --jobs targets at a time (each libFuzzer process is single-threaded, so CI's 2 cores run two
// minute-long targets in one minute); a row is printed as its target ends.
let failed = false;
console.log('target              executions   seconds    exec/s  result');
await inParallel(targets.map((target) => async () => {
  const r = await fuzz(target, options);
  failed ||= r.code !== 0;
  const rate = r.seconds > 0 ? Math.round(r.executions / r.seconds) : 0;
  console.log(`${target.padEnd(18)} ${String(r.executions).padStart(11)} ${r.seconds.toFixed(1).padStart(9)} ${String(rate).padStart(9)}  ${r.code === 0 ? 'ok' : `FAILED (exit ${r.code}; see ${r.log})`}`);
}), options.jobs);
process.exit(failed ? 1 : 0);
