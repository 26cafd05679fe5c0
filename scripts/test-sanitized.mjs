#!/usr/bin/env node
// Runs `npm test`'s suites on the ASan + UBSan build of the addon (`npm run build:native -- --sanitize
// --native-cpu --out build-asan`). node itself is not instrumented, so the sanitizer runtimes are
// preloaded into it (LD_PRELOAD); every child process the tests start inherits them. Leaks are
// checked by LSan at each process's exit, with test/sanitizers/lsan.supp hiding Node's own.
//
//   node scripts/test-sanitized.mjs [--addon PATH] [--concurrency N] [--no-leak-check] [test files…]
//
// --no-leak-check: ASan and UBSan without LSan (detect_leaks=0), for runs that want only those.
//
// --addon PATH: the sanitized addon (default build-asan/Release/sd_node.node). --concurrency N:
// run N test files at once (the test runner's default is one fewer than the cores: 1 on CI's 2,
// where most of a sanitized suite's time is single-threaded JS on ASan's allocator). Test files: run
// only those, as they are (dist/ must be built for the CLI's suites: `npm run build:ts`). Default:
// package.json's `test` script, its steps before the test runner (tsc: the type checks, and dist/)
// without the sanitizer, as they run no native code and tsc under ASan is several times slower.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const fail = (message) => {
  console.error(`[sdnode] ${message}`);
  process.exit(1);
};

const args = process.argv.slice(2);
const options = {};
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--no-leak-check') options.noLeakCheck = true;
  else if (args[i] === '--addon' || args[i] === '--concurrency') {
    if (i + 1 >= args.length) fail(`${args[i]} needs a value`);
    options[args[i].slice(2)] = args[++i];
  } else files.push(args[i]);
}
const addon = resolve(root, options.addon ?? 'build-asan/Release/sd_node.node');
const concurrency = options.concurrency === undefined ? [] : [`--test-concurrency=${options.concurrency}`];
if (options.concurrency !== undefined && !/^[1-9]\d*$/.test(options.concurrency)) fail('--concurrency needs a positive integer');
if (!existsSync(addon)) fail(`no sanitized addon at ${addon}: build it with \`npm run build:native -- --sanitize --native-cpu --out build-asan\``);

// The runtimes must be the ones of the compiler that built the addon: read it from that build's
// CMake cache and ask it where its libasan and libubsan are.
const cache = readFileSync(join(dirname(dirname(addon)), 'CMakeCache.txt'), 'utf8');
if (!/^SDNODE_SANITIZE:BOOL=ON$/m.test(cache)) fail(`${addon} was not built with --sanitize`);
const compiler = /^CMAKE_CXX_COMPILER:\w+=(.+)$/m.exec(cache)?.[1];
if (!compiler) fail('the build has no CMAKE_CXX_COMPILER in its CMakeCache.txt');
const runtime = (name) => {
  const path = execFileSync(compiler, [`-print-file-name=${name}`], { encoding: 'utf8' }).trim();
  if (!existsSync(path)) fail(`${compiler} has no ${name} (GCC's runtimes are needed; Clang's are not supported here)`);
  return path;
};

const env = {
  ...process.env,
  SDNODE_ADDON: addon,
  // ASan's runtime must come first; UBSan's is loaded beside it so that the addon's reports stop
  // the process instead of finding no runtime.
  LD_PRELOAD: [runtime('libasan.so'), runtime('libubsan.so'), process.env.LD_PRELOAD].filter(Boolean).join(' '),
  // allocator_may_return_null: a huge allocation fails as malloc's would (our out-of-memory paths
  // are tested) instead of ASan aborting. allow_user_segv_handler: Node's SIGSEGV handler
  // (WebAssembly bounds checks) and our guarded reads' SIGBUS handler (io/guarded_read.cpp) take
  // over from ASan's and pass on what is not theirs.
  // intercept_tls_get_addr=0: GCC's runtimes up to 13 (Debian 12 has 12) take a dynamic TLS
  // block (the addon's and ggml's thread_locals, as a dlopen'd library has) for a pre-2.25 glibc
  // one when its address is 16 bytes past a page boundary, and read the two words before it as
  // the block's start and size; LSan then scans that made-up range inside its tracer, which dies
  // of SIGSEGV ("Tracer caught signal 11") at the exit of whichever process drew such an address.
  ASAN_OPTIONS: `detect_leaks=${options.noLeakCheck ? 0 : 1}:intercept_tls_get_addr=0:allocator_may_return_null=1:allow_user_segv_handler=1`,
  LSAN_OPTIONS: `suppressions=${join(root, 'test', 'sanitizers', 'lsan.supp')}:print_suppressions=0`,
  UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1:report_error_type=1',
};

// The runtime is in node and the addon loads under it (without the preload it refuses: "ASan
// runtime does not come first"), so a clean run below means something.
const probe = spawnSync(process.execPath, ['-e', `
  require(${JSON.stringify(addon)});
  const maps = require('node:fs').readFileSync('/proc/self/maps', 'utf8');
  if (!/libasan/.test(maps) || !maps.includes(${JSON.stringify(addon)})) process.exit(3);`], { env, encoding: 'utf8' });
if (probe.status !== 0) fail(`the sanitized addon did not load under ASan: ${probe.stderr || `exit ${probe.status}`}`);

const steps = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts.test.split('&&').map((step) => step.trim());
const runner = steps.pop();
if (!runner.startsWith('node ')) fail(`the last step of the test script is not the node test runner: ${runner}`);
// As under `npm test`, the package's own tools come first on the PATH.
const path = `${join(root, 'node_modules', '.bin')}${delimiter}${process.env.PATH}`;
for (const step of files.length > 0 ? [] : steps) {
  const before = spawnSync(step, { stdio: 'inherit', cwd: root, shell: true, env: { ...process.env, PATH: path } });
  if (before.status !== 0) fail(`\`${step}\` failed`);
}
const started = Date.now();
const run = files.length > 0
  ? spawnSync(process.execPath, ['--import', 'tsx', '--test', ...concurrency, '--test-reporter=spec', ...files], { stdio: 'inherit', cwd: root, env })
  : spawnSync(runner.replace(/ --test /, ` --test ${concurrency.join(' ')} `), { stdio: 'inherit', cwd: root, env: { ...env, PATH: path }, shell: true });
console.log(`[sdnode] sanitized tests took ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exit(run.status ?? 1);
