// A real install, as a user does it: the release tarballs (`npm run prebuild -- --vulkan` then
// `npm run pack:release`) are published to a local verdaccio registry, and a fresh folder installs
// `stable-diffusion-node` from it with no compiler, cmake, make, ninja or git on the PATH. Then the
// CLI generates, says which variant it took, and broken binaries fall back or fail with one clear
// error. Run with `npm run test:install` (CI runs it after the prebuild); loopback only.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const releaseDir = join(repo, 'release');
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string };
const tag = `${process.platform}-${process.arch}`;
const work = mkdtempSync(join(tmpdir(), 'sdnode-install-'));

const tarballs = existsSync(releaseDir) ? readdirSync(releaseDir).filter((f) => f.endsWith('.tgz')) : [];
const mainTarball = tarballs.find((f) => f === `stable-diffusion-node-${pkg.version}.tgz`);
const gpuTarball = (backend: string) => tarballs.find((f) => f === `stable-diffusion-node-${tag}-${backend}-${pkg.version}.tgz`);

// Everything on the PATH except compilers and build tools, as on a machine that has none.
const HIDDEN = /^(cc|c\+\+|cpp|make|gmake|ld(\..*)?|as|git(-.*)?)$|gcc|g\+\+|clang|cmake|ctest|cpack|ninja|nvcc/;
function compilerFreePath(): string {
  const bin = join(work, 'bin');
  mkdirSync(bin);
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir || !existsSync(dir)) continue;
    for (const name of readdirSync(dir)) {
      if (HIDDEN.test(name) || existsSync(join(bin, name))) continue;
      try {
        const stat = statSync(join(dir, name));
        if (stat.isFile() && (stat.mode & 0o111) !== 0) symlinkSync(join(dir, name), join(bin, name));
      } catch {
        // a dangling link: skip it
      }
    }
  }
  return bin;
}

let registry = '';
let verdaccio: ReturnType<typeof spawn> | undefined;
let PATH = '';
let userconfig = '';

interface Run extends SpawnSyncReturns<string> {
  seconds: number;
}

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Run {
  const started = Date.now();
  const result = spawnSync(command, args, {
    cwd,
    encoding: 'utf8',
    timeout: 600_000,
    env: { ...process.env, PATH, npm_config_userconfig: userconfig, npm_config_registry: registry, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false', ...env },
  });
  return Object.assign(result, { seconds: (Date.now() - started) / 1000 });
}

function ok(result: Run, what: string): Run {
  assert.equal(result.status, 0, `${what} failed (status ${result.status}, signal ${result.signal}):\n${result.stdout}\n${result.stderr}`);
  return result;
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolvePort(port));
    });
  });
}

async function startRegistry(): Promise<void> {
  const port = await freePort();
  registry = `http://127.0.0.1:${port}/`;
  const upstream = spawnSync('npm', ['config', 'get', 'registry'], { encoding: 'utf8' }).stdout.trim() || 'https://registry.npmjs.org/';
  const config = join(work, 'verdaccio.yaml');
  writeFileSync(
    config,
    [
      `storage: ${join(work, 'storage')}`,
      'auth:',
      '  htpasswd:',
      `    file: ${join(work, 'htpasswd')}`,
      'uplinks:',
      '  upstream:',
      `    url: ${upstream}`,
      '    timeout: 120s',
      'packages:',
      // Ours are served from what we publish only: never looked up upstream.
      "  'stable-diffusion-node':",
      '    access: $all',
      '    publish: $authenticated',
      "  '@stable-diffusion-node/*':",
      '    access: $all',
      '    publish: $authenticated',
      "  '**':",
      '    access: $all',
      '    proxy: upstream',
      // Our tarballs are larger than verdaccio's default limit of 10 MB (the CUDA one by far).
      'max_body_size: 1gb',
      'log: { type: stdout, format: pretty, level: warn }',
      '',
    ].join('\n'),
  );
  const bin = join(repo, 'node_modules', 'verdaccio', 'bin', 'verdaccio');
  verdaccio = spawn(process.execPath, [bin, '--config', config, '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let said = '';
  verdaccio.stdout!.on('data', (d: Buffer) => (said += d.toString()));
  verdaccio.stderr!.on('data', (d: Buffer) => (said += d.toString()));
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`${registry}-/ping`)).ok) break;
    } catch {
      // not listening yet
    }
    if (verdaccio.exitCode !== null) throw new Error(`verdaccio exited: ${said}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // A user to publish as; the token goes into an npmrc of this test's own.
  const user = await fetch(`${registry}-/user/org.couchdb.user:ci`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'ci', password: 'ci-password-for-loopback', type: 'user' }),
  });
  const { token } = (await user.json()) as { token?: string };
  assert.ok(token, `verdaccio gave no token (${user.status})`);
  userconfig = join(work, 'npmrc');
  writeFileSync(userconfig, `registry=${registry}\n//127.0.0.1:${port}/:_authToken=${token}\n`);
}

/** A fresh project folder with its own npm cache, so that every install downloads. */
function project(name: string): string {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true, type: 'module' }, null, 2));
  return dir;
}

function systemJson(dir: string, env: NodeJS.ProcessEnv = {}) {
  const result = ok(run('npx', ['--no-install', 'sdnode', 'system', '--json'], dir, env), 'sdnode system');
  return JSON.parse(result.stdout) as {
    version: string;
    binary: { source: string; path: string };
    variant: string;
    cpuVariant?: string;
    gpu: { backend: string; status: string; reason?: string; devices?: string[] }[];
  };
}

const hasLavapipe = existsSync('/usr/share/vulkan/icd.d') && readdirSync('/usr/share/vulkan/icd.d').some((f) => f.startsWith('lvp'));

describe('npm install from a registry, no compilers', { skip: mainTarball === undefined ? 'no release tarball: run `npm run prebuild -- --vulkan && npm run pack:release` first' : false }, () => {
  let installed = '';

  before(async () => {
    PATH = compilerFreePath();
    for (const name of ['gcc', 'g++', 'cc', 'c++', 'clang', 'cmake', 'make', 'ninja', 'git']) {
      const found = spawnSync('sh', ['-c', `command -v ${name}`], { env: { PATH }, encoding: 'utf8' });
      assert.notEqual(found.status, 0, `${name} is still on the PATH: ${found.stdout}`);
    }
    await startRegistry();
    for (const file of tarballs) ok(run('npm', ['publish', join(releaseDir, file)], work), `npm publish ${file}`);
  });

  after(() => {
    verdaccio?.kill();
    rmSync(work, { recursive: true, force: true });
  });

  test('the main package holds the prebuilt binaries and no test fixtures, deps, build or bench output', () => {
    const listing = spawnSync('tar', ['-tzf', join(releaseDir, mainTarball!)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    for (const file of listing) assert.doesNotMatch(file, /^package\/(test|deps|build|bench|tools|release|packages|\.ci)\//, file);
    for (const wanted of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/sdnode.js', `prebuilds/${tag}/sd_node.node`, `prebuilds/${tag}/build.json`, 'models/demo-sd1-tiny.gguf', 'CMakeLists.txt', 'scripts/install.mjs']) {
      assert.ok(listing.includes(`package/${wanted}`), `${wanted} is missing from the tarball`);
    }
    assert.ok(listing.some((f) => /prebuilds\/[^/]+\/(lib)?ggml-cpu-x64\./.test(f)), 'the baseline x64 CPU variant is missing');
    const manifest = JSON.parse(spawnSync('tar', ['-xzOf', join(releaseDir, mainTarball!), 'package/package.json'], { encoding: 'utf8' }).stdout) as { optionalDependencies?: Record<string, string> };
    for (const backend of ['vulkan', 'cuda']) {
      if (gpuTarball(backend)) assert.equal(manifest.optionalDependencies?.[`@stable-diffusion-node/${tag}-${backend}`], pkg.version);
    }
  });

  test('npm install stable-diffusion-node takes the prebuilt binary, generates and names its variant', () => {
    installed = project('app');
    const install = ok(run('npm', ['install', 'stable-diffusion-node', '--cache', join(work, 'cache-app')], installed), 'npm install');
    console.log(`# npm install took ${install.seconds.toFixed(1)} s (fresh npm cache, through the local registry)`);
    const root = join(installed, 'node_modules', 'stable-diffusion-node');
    assert.ok(!existsSync(join(root, 'build')), 'the install script built from source');
    if (gpuTarball('vulkan')) assert.ok(existsSync(join(installed, 'node_modules', '@stable-diffusion-node', `${tag}-vulkan`)), 'the Vulkan package was not installed');

    ok(run('npx', ['--no-install', 'sdnode', 'generate', '--model', 'demo', '--prompt', 'a red circle', '--steps', '2', '-o', 'x.png'], installed), 'sdnode generate');
    assert.deepEqual([...readFileSync(join(installed, 'x.png')).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);

    const info = systemJson(installed);
    assert.equal(info.version, pkg.version);
    assert.equal(info.binary.source, 'prebuilt');
    assert.ok(info.binary.path.startsWith(join(root, 'prebuilds', tag)), info.binary.path);
    assert.match(info.cpuVariant ?? '', /^[a-z0-9_]+$/, 'no CPU variant named');
    const text = ok(run('npx', ['--no-install', 'sdnode', 'system'], installed), 'sdnode system').stdout;
    assert.match(text, new RegExp(`CPU variant: ${info.cpuVariant}`));
  });

  test('installed with --ignore-scripts it works the same (the prebuilt binary needs no install script)', () => {
    const dir = project('no-scripts');
    ok(run('npm', ['install', 'stable-diffusion-node', '--ignore-scripts', '--cache', join(work, 'cache-app')], dir), 'npm install --ignore-scripts');
    ok(run('npx', ['--no-install', 'sdnode', 'generate', '--model', 'demo', '--prompt', 'a blue square', '--steps', '2', '-o', 'y.png'], dir), 'sdnode generate');
    assert.equal(systemJson(dir).binary.source, 'prebuilt');
  });

  test('types resolve for a TypeScript consumer (ESM, moduleResolution node16)', () => {
    writeFileSync(
      join(installed, 'consumer.ts'),
      [
        "import { StableDiffusion, systemInfo, createServer, type ServerOptions, type SystemInfo, type Txt2ImgOptions } from 'stable-diffusion-node';",
        'const info: SystemInfo = systemInfo();',
        "const serverOptions: ServerOptions = { model: 'demo.gguf', queueSize: 4 };",
        'void createServer;',
        'void serverOptions;',
        "const options: Txt2ImgOptions = { prompt: 'a cat', steps: 2 };",
        'const sd = await StableDiffusion.load({ model: "demo.gguf" });',
        'const { seeds } = await sd.txt2img(options);',
        'console.log(info.variant, seeds.length);',
        'await sd.dispose();',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(installed, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { module: 'node16', moduleResolution: 'node16', target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, typeRoots: [join(repo, 'node_modules', '@types')], types: ['node'] }, files: ['consumer.ts'] }),
    );
    ok(run(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], installed), 'tsc --noEmit on a consumer');
  });

  test('sdnode serve from the installed package answers the API and serves its page', async () => {
    const port = await freePort();
    const child = spawn('npx', ['--no-install', 'sdnode', 'serve', '--model', 'demo', '--port', String(port)], {
      cwd: installed,
      env: { ...process.env, PATH, npm_config_userconfig: userconfig, npm_config_registry: registry },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group: npx and the server it starts stop together
    });
    try {
      let output = '';
      await new Promise<void>((resolveListening, reject) => {
        child.stdout!.on('data', (chunk: Buffer) => {
          output += chunk.toString();
          if (/listening on http/.test(output)) resolveListening();
        });
        child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
        child.on('exit', (code) => reject(new Error(`sdnode serve exited with ${code}: ${output}`)));
      });
      const base = `http://127.0.0.1:${port}`;
      const page = await fetch(`${base}/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<title>sdnode<\/title>/);
      assert.equal((await fetch(`${base}/app.js`)).status, 200);
      const answer = await fetch(`${base}/sdapi/v1/txt2img`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'a red circle', steps: 2 }) });
      assert.equal(answer.status, 200);
      const { images } = (await answer.json()) as { images: string[] };
      assert.deepEqual([...Buffer.from(images[0]!, 'base64').subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
    } finally {
      process.kill(-child.pid!, 'SIGTERM');
    }
  });

  test('the Vulkan package finds lavapipe and generates through the prebuilt Vulkan module', { skip: !gpuTarball('vulkan') ? 'no Vulkan package in release/' : !hasLavapipe ? "Mesa's lavapipe is not installed" : false }, () => {
    const env = { GGML_VK_VISIBLE_DEVICES: '0' };
    const info = systemJson(installed, env);
    const vulkan = info.gpu.find((g) => g.backend === 'vulkan')!;
    assert.equal(vulkan.status, 'loaded', JSON.stringify(vulkan));
    assert.equal(info.variant, 'vulkan');
    ok(run('npx', ['--no-install', 'sdnode', 'generate', '--model', 'demo', '--backend', 'vulkan', '--prompt', 'a red circle', '--steps', '1', '-o', 'vk.png'], installed, env), 'sdnode generate --backend vulkan');
  });

  test('the CUDA package without a GPU falls back with one debug line and no crash', { skip: !gpuTarball('cuda') ? 'no CUDA package in release/ (built outside CI: npm run prebuild -- --cuda)' : false }, () => {
    assert.ok(existsSync(join(installed, 'node_modules', '@stable-diffusion-node', `${tag}-cuda`)), 'the CUDA package was not installed');
    const result = ok(run('npx', ['--no-install', 'sdnode', 'system', '--json'], installed, { SDNODE_LOG: 'debug' }), 'sdnode system');
    const info = JSON.parse(result.stdout) as ReturnType<typeof systemJson>;
    const cuda = info.gpu.find((g) => g.backend === 'cuda')!;
    assert.notEqual(cuda.status, 'loaded');
    assert.notEqual(info.variant, 'cuda');
    const lines = result.stderr.split('\n').filter((l) => /CUDA variant not used/.test(l));
    assert.equal(lines.length, 1, result.stderr);
    const forced = run('npx', ['--no-install', 'sdnode', 'generate', '--model', 'demo', '--backend', 'cuda', '--prompt', 'x', '--steps', '1', '-o', 'c.png'], installed);
    assert.equal(forced.status, 1, forced.stderr);
    assert.equal(forced.signal, null);
    assert.match(forced.stderr, /cuda backend is not available: (no CUDA driver found|the CUDA module of .* finds no device|.*could not be loaded)/);
  });

  test('a corrupt Vulkan module falls back to the CPU with one debug line', { skip: !gpuTarball('vulkan') ? 'no Vulkan package in release/' : false }, () => {
    const dir = project('broken-vulkan');
    ok(run('npm', ['install', 'stable-diffusion-node', '--ignore-scripts', '--cache', join(work, 'cache-app')], dir), 'npm install');
    const module = join(dir, 'node_modules', '@stable-diffusion-node', `${tag}-vulkan`, 'libggml-vulkan.so');
    truncateSync(module, 4096);
    const result = ok(run('npx', ['--no-install', 'sdnode', 'system', '--json'], dir, { SDNODE_LOG: 'debug', GGML_VK_VISIBLE_DEVICES: '0' }), 'sdnode system');
    const info = JSON.parse(result.stdout) as ReturnType<typeof systemJson>;
    const vulkan = info.gpu.find((g) => g.backend === 'vulkan')!;
    // Without libvulkan.so.1 the driver check stops it first; with it, the test load fails.
    assert.ok(['failed', 'no-driver'].includes(vulkan.status), JSON.stringify(vulkan));
    assert.equal(info.variant, 'cpu');
    assert.equal(result.stderr.split('\n').filter((l) => /Vulkan variant not used/.test(l)).length, 1, result.stderr);
    ok(run('npx', ['--no-install', 'sdnode', 'generate', '--model', 'demo', '--prompt', 'x', '--steps', '1', '-o', 'z.png'], dir, { GGML_VK_VISIBLE_DEVICES: '0' }), 'sdnode generate');
  });

  for (const [what, damage] of [
    ['truncated', (file: string) => truncateSync(file, 1000)],
    // e_machine at offset 18: AArch64 (183) instead of x86-64, as a binary for another platform reads.
    ['built for another architecture', (file: string) => {
      const bytes = readFileSync(file);
      bytes.writeUInt16LE(183, 18);
      writeFileSync(file, bytes);
      chmodSync(file, 0o755);
    }],
  ] as const) {
    test(`a ${what} prebuilt addon gives one clear error, and the install script says what a source build needs`, () => {
      const dir = project(`broken-addon-${what.split(' ')[0]}`);
      ok(run('npm', ['install', 'stable-diffusion-node', '--ignore-scripts', '--cache', join(work, 'cache-app')], dir), 'npm install');
      const root = join(dir, 'node_modules', 'stable-diffusion-node');
      damage(join(root, 'prebuilds', tag, 'sd_node.node'));

      const cli = run('npx', ['--no-install', 'sdnode', 'system'], dir);
      assert.equal(cli.signal, null, 'the process crashed');
      assert.equal(cli.status, 1);
      const lines = cli.stderr.trim().split('\n');
      assert.equal(lines.length, 1, cli.stderr);
      assert.match(lines[0]!, /^sdnode: The native addon could not be loaded \(prebuilt .*sd_node\.node: (truncated \(1000 bytes; it needs \d+\)|built for arm64, this is x64)\)\. Reinstall the package, or build it from source/);

      const api = run(process.execPath, ['--input-type=module', '-e', "import('stable-diffusion-node').then((m) => m.systemInfo()).catch((e) => { console.log(JSON.stringify({ code: e.code, name: e.name })); })"], dir);
      assert.equal(api.signal, null);
      assert.deepEqual(JSON.parse(api.stdout.trim()), { code: 'ERR_NATIVE_LOAD', name: 'StableDiffusionError' });

      const rebuild = run('npm', ['rebuild', 'stable-diffusion-node', '--foreground-scripts'], dir);
      assert.notEqual(rebuild.status, 0);
      assert.equal(rebuild.signal, null);
      const said = rebuild.stdout + rebuild.stderr;
      assert.match(said, new RegExp(`building the native addon from source: the prebuilt binary for ${tag} does not load here`));
      assert.match(said, /cannot build from source: cmake ≥ 3\.19, a C\+\+17 compiler \(g\+\+ or clang\+\+\), git are missing/);
    });
  }
});
