import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import sharp from 'sharp';

import { Progress } from '../lib/cli/progress.js';
import { inspectModel, StableDiffusion } from '../lib/index.js';
import { packageRoot } from '../lib/native.js';
import { readPngText } from '../lib/png-parameters.js';

// The compiled bin, as npm links it (npm test compiles lib/ first). SDNODE_TEST_CLI points the
// tests at another build of it.
const bin = process.env.SDNODE_TEST_CLI ?? join(packageRoot, 'dist', 'cli', 'sdnode.js');

test('sdnode system --json prints real values', () => {
  const out = JSON.parse(execFileSync(process.execPath, [bin, 'system', '--json'], { encoding: 'utf8' }));
  assert.ok(out.backends.includes('CPU'));
  assert.match(out.ggml.version, /^\d+\.\d+\.\d+/);
});

test('sdnode devices lists the CPU', () => {
  const out = execFileSync(process.execPath, [bin, 'devices'], { encoding: 'utf8' });
  assert.match(out, /^CPU\s+cpu\s+/m);
});

test('sdnode rejects unknown commands and options with one line and a non-zero exit', () => {
  for (const args of [['frobnicate'], ['devices', '--frob']]) {
    const run = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
    assert.equal(run.status, 2);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, /^sdnode: unknown/i);
  }
});

const tiny = join(packageRoot, 'test', 'fixtures', 'tiny');
const dir = mkdtempSync(join(tmpdir(), 'sdnode-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// Model hashes are cached under the test's folder, not the user's.
const env = { ...process.env, SDNODE_CACHE_DIR: join(dir, 'cache') };

function sdnode(...args: string[]) {
  return spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env });
}

test('sdnode info describes a model, as text and as JSON', () => {
  const text = sdnode('info', join(tiny, 'sd2-v-ldm.safetensors'));
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /sd2 base, v_prediction \(heuristic[^)]*\), 768×768/);
  assert.match(text.stdout, /ldm layout, safetensors/);
  const json = sdnode('info', join(tiny, 'sd1-diffusers'), '--json');
  assert.equal(json.status, 0, json.stderr);
  const info = JSON.parse(json.stdout);
  assert.equal(info.family, 'sd1');
  assert.equal(info.layout, 'diffusers');
  assert.ok(info.tensorCount > 100);
  const forced = JSON.parse(sdnode('info', join(tiny, 'sd2-v-ldm.safetensors'), '--prediction-type', 'epsilon', '--json').stdout);
  assert.equal(forced.predictionType, 'epsilon');
});

test('sdnode convert writes a GGUF that loads with the same configuration', async () => {
  const out = join(dir, 'sd1.q8_0.gguf');
  const run = sdnode('convert', join(tiny, 'sd1-ldm.safetensors'), '-o', out, '--weight-type', 'q8_0', '--json');
  assert.equal(run.status, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.equal(report.weightType, 'q8_0');
  assert.ok(report.bytes > 0);
  const { info, tensors } = await inspectModel(out);
  assert.equal(info.layout, 'canonical');
  assert.equal(info.family, 'sd1');
  assert.ok(tensors.some((t) => t.type === 'q8_0'));
  assert.equal(tensors.length, report.tensors);
  const sd = await StableDiffusion.load({ model: out });
  assert.equal(sd.info.family, 'sd1');
  await sd.dispose();
});

test('sdnode: bad flags, missing files and unreadable models give one line and a non-zero exit', () => {
  const cases: [string[], number, RegExp][] = [
    [['convert', join(tiny, 'sd1-diffusers')], 2, /needs -o/],
    [['convert', join(tiny, 'sd1-diffusers'), '-o', join(dir, 'x.gguf'), '--weight-type', 'q3_k'], 2, /--weight-type must be one of/],
    [['info'], 2, /one model path/],
    [['info', join(dir, 'missing.safetensors')], 1, /missing\.safetensors/],
    [['info', join(packageRoot, 'package.json')], 1, /package\.json/],
    [['info', join(tiny, 'sd1-diffusers'), '--prediction-type', 'x0'], 2, /--prediction-type must be one of/],
  ];
  for (const [args, status, message] of cases) {
    const run = sdnode(...args);
    assert.equal(run.status, status, `${args.join(' ')}: ${run.stderr}`);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, message);
    assert.doesNotMatch(run.stderr, /\n\s+at /);
  }
  const help = sdnode('convert', '--help');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /Usage: sdnode convert/);
});

// Generation tests run the tiny random-weight fixtures at 32×32 with a few steps: they check the
// plumbing (files, parameters, determinism, progress), not pictures.
const sd1 = join(tiny, 'sd1-ldm.safetensors');
const small = ['--width', '32', '--height', '32'];

async function pixels(path: string): Promise<Buffer> {
  return sharp(path).raw().toBuffer();
}

test('sdnode generate: PNG with A1111 parameters, info reads them, --from regenerates the same pixels', async () => {
  const out = join(dir, 'cat.png');
  const run = sdnode('generate', '--model', sd1, '--prompt', 'a cat, sitting', '--negative-prompt', 'blurry', ...small,
    '--steps', '2', '--sampler', 'Euler a', '--cfg-scale', '7', '--seed', '42', '--clip-skip', '2', '--batch-size', '2', '-o', out);
  assert.equal(run.status, 0, run.stderr);
  // Not a terminal: one plain line per step, and the stages.
  assert.match(run.stderr, /^encode\nstep 1\/2 +\d+\.\d\d s\/it +ETA \d+:\d\d\nstep 2\/2 .*\ndecode\n$/);
  const files = [join(dir, 'cat-1.png'), join(dir, 'cat-2.png')];
  assert.match(run.stdout, /wrote .*cat-1\.png \(32×32, seed 42\)\nwrote .*cat-2\.png/);
  const text = readPngText(readFileSync(files[1]!)).parameters!;
  assert.match(text, /^a cat, sitting\nNegative prompt: blurry\nSteps: 2, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 32x32, Model hash: [0-9a-f]{10}, Model: sd1-ldm, Clip skip: 2, Batch size: 2, Batch pos: 1$/);
  const sha = execFileSync('sha256sum', [sd1], { encoding: 'utf8' }).slice(0, 10);
  assert.ok(text.includes(`Model hash: ${sha}`), text);
  assert.ok(readdirSync(join(dir, 'cache')).includes('model-hashes.json'));

  const info = sdnode('info', files[1]!);
  assert.equal(info.status, 0, info.stderr);
  assert.equal(info.stdout, `${text}\n`);
  const parsed = JSON.parse(sdnode('info', files[1]!, '--json').stdout);
  assert.equal(parsed.sampler, 'euler_a');
  assert.equal(parsed.seed, 42);
  assert.equal(parsed.batchPosition, 1);

  // The second image of the batch: the batch is made again and that image kept.
  const again = join(dir, 'again.png');
  const from = sdnode('generate', '--model', sd1, '--from', files[1]!, '-o', again, '--quiet');
  assert.equal(from.status, 0, from.stderr);
  assert.equal(from.stderr, '');
  assert.deepEqual(await pixels(again), await pixels(files[1]!));
  assert.notDeepEqual(await pixels(files[0]!), await pixels(files[1]!));
  assert.equal(readPngText(readFileSync(again)).parameters, text);
});

test('sdnode generate: --lora, --lora-dir, --embedding-dir; the PNG carries the tags and hashes, --from reproduces it', async () => {
  const fixtures = join(packageRoot, 'test', 'fixtures', 'lora');
  const embeddings = join(dir, 'embeddings');
  mkdirSync(embeddings, { recursive: true });
  copyFileSync(join(fixtures, 'tinystyle.pt'), join(embeddings, 'tinystyle.pt'));
  const out = join(dir, 'lora.png');
  const common = ['--model', sd1, ...small, '--steps', '2', '--seed', '7', '--lora-dir', fixtures, '--embedding-dir', embeddings, '--quiet'];
  const run = sdnode('generate', ...common, '--prompt', 'a painting of tinystyle <lora:sd1-loha:0.5>', '--lora', 'sd1-kohya:0.8', '-o', out);
  assert.equal(run.status, 0, run.stderr);
  const text = readPngText(readFileSync(out)).parameters!;
  assert.match(text, /^a painting of tinystyle <lora:sd1-loha:0\.5> <lora:sd1-kohya:0\.8>\n/);
  assert.match(text, /Lora hashes: "sd1-kohya: [0-9a-f]{12}, sd1-loha: [0-9a-f]{12}", TI hashes: "tinystyle: [0-9a-f]{12}"$/);
  // Without the LoRAs the image differs; --from (the tags in its prompt) gives it again.
  const plain = join(dir, 'plain.png');
  assert.equal(sdnode('generate', ...common, '--prompt', 'a painting of tinystyle', '-o', plain).status, 0);
  assert.notDeepEqual(await pixels(plain), await pixels(out));
  const again = join(dir, 'lora-again.png');
  const from = sdnode('generate', '--model', sd1, '--from', out, '--lora-dir', fixtures, '--embedding-dir', embeddings, '-o', again, '--quiet');
  assert.equal(from.status, 0, from.stderr);
  assert.deepEqual(await pixels(again), await pixels(out));
  // A file path and split strengths; bad values are one-line usage errors.
  assert.equal(sdnode('generate', ...common, '--prompt', 'x', '--lora', `${join(fixtures, 'sd1-kohya.safetensors')}:0.5:1`, '-o', join(dir, 'p.png')).status, 0);
  for (const [flag, message] of [['sd1-kohya:abc', /--lora takes NAME/], [':1', /--lora needs a name/]] as const) {
    const bad = sdnode('generate', ...common, '--prompt', 'x', '--lora', flag, '-o', join(dir, 'bad.png'));
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, message);
  }
  const missing = sdnode('generate', ...common, '--prompt', 'x', '--lora', 'no-such-lora', '-o', join(dir, 'bad.png'));
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /No LoRA named "no-such-lora"/);
  assert.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr);
});

test('sdnode generate --json, JPEG output and size rounding on the demo model', async () => {
  const out = join(dir, 'demo.jpg');
  const run = sdnode('generate', '--model', 'demo', '--prompt', 'a cat', '--steps', '1', '--width', '36', '--height', '32', '--seed', '3', '-o', out, '--json');
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stderr, /^sdnode: warning: --width 36 is not a multiple of 8; using 32$/m);
  const result = JSON.parse(run.stdout);
  assert.equal(result.pipeline, 'txt2img');
  assert.deepEqual(result.outputs.map((o: { path: string; width: number }) => [o.path, o.width]), [[out, 32]]);
  assert.match(result.outputs[0].parameters, /Model: demo-sd1-tiny/);
  const meta = await sharp(out).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['jpeg', 32, 32]);
  // JPEG keeps the parameters in EXIF, where A1111 puts them; info reads them.
  assert.equal(sdnode('info', out).stdout, `${result.outputs[0].parameters}\n`);
  // Progress as JSON lines.
  const events = run.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  assert.deepEqual(events.map((e) => e.event), ['stage', 'stage', 'stage', 'step', 'stage']);
  const strict = sdnode('generate', '--model', 'demo', '--prompt', 'a cat', '--width', '36', '--strict', '-o', join(dir, 'never.png'));
  assert.equal(strict.status, 2);
  assert.match(strict.stderr, /^sdnode: --width 36 is not a multiple of 8 \(--strict\)\n$/);
});

test('sdnode generate --hires-*: a Real-ESRGAN file as the upscaler, the same pixels as the API', async () => {
  const x2 = join(packageRoot, 'test', 'fixtures', 'tiny', 'esrgan', 'tiny-x2.safetensors');
  const out = join(dir, 'hires.png');
  const args = ['--prompt', 'a cat', '--steps', '2', '--seed', '5', '--sampler', 'euler', '--threads', '2'];
  const run = sdnode('generate', '--model', 'demo', ...args, '--hires-upscaler', x2, '--hires-steps', '3', '--hires-denoise', '0.7', '-o', out);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(await sharp(out).metadata().then((m) => [m.width, m.height]), [128, 128]);
  const text = sdnode('info', out).stdout;
  assert.match(text, /Size: 64x64, .*Denoising strength: 0\.7, Hires upscale: 2, Hires steps: 3, Hires upscaler: tiny-x2/);
  const { StableDiffusion, Upscaler, encodeImage } = await import('../lib/index.js');
  const sd = await StableDiffusion.load({ model: join(packageRoot, 'models', 'demo-sd1-tiny.gguf'), backend: 'cpu', threads: 2 });
  const upscaler = await Upscaler.load(x2, { backend: 'cpu', threads: 2 });
  try {
    const result = await sd.txt2img({ prompt: 'a cat', steps: 2, seed: 5, scheduler: 'euler', hires: { upscaler, steps: 3, denoisingStrength: 0.7 } });
    const expected = await sharp(await encodeImage(result.images!, 0)).raw().toBuffer();
    assert.ok(expected.equals(await sharp(out).raw().toBuffer()), 'the CLI and the API give the same pixels');
  } finally {
    upscaler.dispose();
    await sd.dispose();
  }
  // --from takes the Hires fields back; a Real-ESRGAN model is named, so its file is given again.
  const again = join(dir, 'hires-again.png');
  const missing = sdnode('generate', '--model', 'demo', '--from', out, '-o', again);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /made with the hires upscaler "tiny-x2"; pass its file with --hires-upscaler/);
  assert.equal(sdnode('generate', '--model', 'demo', '--from', out, '--hires-upscaler', x2, '--threads', '2', '-o', again).status, 0);
  assert.ok((await sharp(out).raw().toBuffer()).equals(await sharp(again).raw().toBuffer()), '--from makes the same pixels');
  const latent = join(dir, 'hires-latent.png');
  const made = sdnode('generate', '--model', 'demo', ...args, '--hires-scale', '1.5', '--hires-upscaler', 'latent-bicubic', '-o', latent);
  assert.equal(made.status, 0, made.stderr);
  assert.deepEqual(await sharp(latent).metadata().then((m) => [m.width, m.height]), [96, 96]);
  const latentAgain = join(dir, 'hires-latent-again.png');
  assert.equal(sdnode('generate', '--model', 'demo', '--from', latent, '--threads', '2', '-o', latentAgain).status, 0);
  assert.ok((await sharp(latent).raw().toBuffer()).equals(await sharp(latentAgain).raw().toBuffer()), '--from makes the same pixels');
});

test('sdnode generate: --offload and --vae-tiling give the same pixels', async () => {
  const plain = join(dir, 'plain.png');
  const lean = join(dir, 'lean.png');
  const args = ['generate', '--model', 'demo', '--prompt', 'a cat', '--steps', '2', '--sampler', 'ddim', '--seed', '5'];
  assert.equal(sdnode(...args, '-o', plain).status, 0);
  const run = sdnode(...args, '--offload', '--vae-tiling', '-o', lean);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(await pixels(lean), await pixels(plain));
  // Per-network placement: the CPU by backend and by device name gives the same pixels; a device
  // that is not there is named with what is.
  const placed = join(dir, 'placed.png');
  const onCpu = sdnode(...args, '--backend', 'cpu', '--text-encoder-device', 'cpu', '--unet-device', 'CPU', '--vae-device', 'cpu', '-o', placed);
  assert.equal(onCpu.status, 0, onCpu.stderr);
  assert.deepEqual(await pixels(placed), await pixels(plain));
  const missing = sdnode(...args, '--vae-device', 'Vulkan9', '-o', join(dir, 'never.png'));
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /Device "Vulkan9" is not available; present: .*CPU/);
});

test('sdnode generate: img2img, inpaint and depth2img from the CLI', async () => {
  const source = join(dir, 'source.png');
  await sharp({ create: { width: 40, height: 32, channels: 3, background: '#3080c0' } }).png().toFile(source);
  const img2img = join(dir, 'img2img.webp');
  let run = sdnode('generate', '--model', sd1, '--prompt', 'a cat', '--init-image', source, '--strength', '0.5', '--steps', '4', '--sampler', 'euler', '--seed', '1', '-o', img2img, '--json');
  assert.equal(run.status, 0, run.stderr);
  assert.equal(JSON.parse(run.stdout).pipeline, 'img2img');
  assert.match(JSON.parse(run.stdout).outputs[0].parameters, /Denoising strength: 0\.5/);
  assert.equal(run.stderr.split('\n').filter((l) => l.includes('"step"')).length, 2); // half of 4 steps
  assert.deepEqual([(await sharp(img2img).metadata()).format, (await sharp(img2img).metadata()).width], ['webp', 40]);

  const mask = join(dir, 'mask.png');
  // Drawn at half the image's size: the CLI resizes it, with a warning.
  await sharp({ create: { width: 20, height: 16, channels: 4, background: { r: 255, g: 255, b: 255, alpha: 0 } } })
    .composite([{ input: { create: { width: 8, height: 8, channels: 4, background: '#ffffff' } }, left: 4, top: 4 }])
    .png()
    .toFile(mask);
  const inpainted = join(dir, 'inpaint.png');
  run = sdnode('generate', '--model', join(tiny, 'sd1-inpaint-ldm.ckpt'), '--prompt', 'a cat', '--init-image', source, '--mask', mask, '--steps', '2', '--seed', '1', '-o', inpainted, '-q');
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stderr, 'sdnode: warning: --mask is 20×16, the image 40×32: resizing the mask\n');
  assert.match(readPngText(readFileSync(inpainted)).parameters!, /Denoising strength: 1$/);
  // An inpainting model cannot do txt2img: the message says what it needs.
  run = sdnode('generate', '--model', join(tiny, 'sd1-inpaint-ldm.ckpt'), '--prompt', 'a cat', '-o', join(dir, 'never.png'), '-q');
  assert.equal(run.status, 2);
  assert.match(run.stderr, /inpaint model: pass --init-image and --mask/);

  const depth = join(dir, 'depth.png');
  const levels = Uint16Array.from({ length: 40 * 32 }, (_, i) => (i % 40) * 1600);
  await sharp(levels, { raw: { width: 40, height: 32, channels: 1 } }).toColourspace('grey16').png().toFile(depth);
  const depthOut = join(dir, 'depth2img.png');
  run = sdnode('generate', '--model', join(tiny, 'sd2-depth-ldm.safetensors'), '--prompt', 'a cat', '--init-image', source, '--depth-map', depth, '--steps', '2', '--strength', '1', '--seed', '1', '-o', depthOut, '-q');
  assert.equal(run.status, 0, run.stderr);
  assert.equal((await sharp(depthOut).metadata()).width, 40);
  // --from an img2img image without the input image says what is missing.
  run = sdnode('generate', '--model', join(tiny, 'sd2-depth-ldm.safetensors'), '--from', depthOut, '-q');
  assert.equal(run.status, 2);
  assert.match(run.stderr, /was made from an input image \(Denoising strength 1\): pass --init-image/);
});

test('sdnode generate: comma-separated values make one labelled grid', async () => {
  const out = join(dir, 'grid.png');
  const run = sdnode('generate', '--model', sd1, '--prompt', 'a cat', ...small, '--steps', '2', '--sampler', 'euler',
    '--cfg-scale', '1,7.5', '--seed', '42,7', '-o', out, '--json');
  assert.equal(run.status, 0, run.stderr);
  const { grid, outputs } = JSON.parse(run.stdout);
  assert.deepEqual(grid.columns, ['CFG scale: 1', 'CFG scale: 7.5']);
  assert.deepEqual(grid.rows, ['Seed: 42', 'Seed: 7']);
  assert.equal(outputs.length, 1);
  // Four progress runs, each tagged with its cell.
  const events = run.stderr.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(events.filter((e) => e.stage === 'decode').map((e) => `${e.job}/${e.jobs}`), ['1/4', '2/4', '3/4', '4/4']);
  assert.ok(events.every((e) => e.event !== 'step' || e.secondsPerStep >= 0));
  const meta = await sharp(out).metadata();
  assert.equal(meta.width, grid.left + 2 * grid.cellWidth);
  assert.equal(meta.height, grid.top + 2 * 32);
  assert.ok(grid.left > 0 && grid.top > 0 && grid.cellWidth >= 32);
  const { data, info } = await sharp(out).raw().toBuffer({ resolveWithObject: true });
  const dark = (x0: number, y0: number, w: number, h: number) => {
    let n = 0;
    for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) if (data[(y * info.width + x) * info.channels]! < 128) n++;
    return n;
  };
  // Text in every label cell: above each column, left of each row.
  for (let c = 0; c < 2; c++) assert.ok(dark(grid.left + c * grid.cellWidth, 0, grid.cellWidth, grid.top) > 10, `column label ${c}`);
  for (let r = 0; r < 2; r++) assert.ok(dark(0, grid.top + r * 32, grid.left, 32) > 10, `row label ${r}`);
  // The grid carries its first cell's parameters; --from regenerates that cell.
  assert.match(readPngText(readFileSync(out)).parameters!, /CFG scale: 1, Seed: 42, Size: 32x32/);
  const cell = join(dir, 'cell.png');
  const from = sdnode('generate', '--model', sd1, '--from', out, '-o', cell, '-q');
  assert.equal(from.status, 0, from.stderr);
  const crop = await sharp(out).extract({ left: grid.left + Math.floor((grid.cellWidth - 32) / 2), top: grid.top, width: 32, height: 32 }).raw().toBuffer();
  assert.deepEqual(crop, await pixels(cell));
});

test('sdnode generate: Ctrl-C cancels cleanly and writes nothing', async () => {
  const out = join(dir, 'cancelled.png');
  const child = spawn(process.execPath, [bin, 'generate', '--model', sd1, '--prompt', 'a cat', ...small, '--steps', '500', '-o', out], { env });
  let stderr = '';
  let sent = false;
  const status = await new Promise<number | null>((done) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (!sent && /step 1\//.test(stderr)) sent = child.kill('SIGINT');
    });
    child.on('close', (code) => done(code));
  });
  assert.equal(status, 130, stderr);
  assert.match(stderr, /^sdnode: cancelled; nothing was written$/m);
  assert.ok(!existsSync(out));
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp')), []);
});

test('sdnode generate: bad flags, missing files and unreadable images give one line and a non-zero exit', async () => {
  const junk = join(dir, 'junk.png');
  writeFileSync(junk, 'not an image');
  const plain = join(dir, 'plain.png');
  await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000000' } }).png().toFile(plain);
  const base = ['generate', '--model', sd1, '--prompt', 'x', '-o', join(dir, 'never.png')];
  const cases: [string[], number, RegExp][] = [
    [['generate', '--prompt', 'x'], 2, /needs --model/],
    [['generate', '--model', sd1], 2, /needs --prompt/],
    [[...base, '--steps', '0'], 2, /--steps must be an integer from 1 to 1000 \(got "0"\)/],
    [[...base, '--cfg-scale', 'high'], 2, /--cfg-scale must be a number/],
    [[...base, '--sampler', 'k_euler_x'], 2, /--sampler must be one of .*"Euler a"/],
    [[...base, '--seed', '1,,2'], 2, /--seed has an empty value/],
    [[...base, '--frobnicate'], 2, /Unknown option '--frobnicate'$/m],
    [[...base, '--weight-type', 'q3'], 2, /--weight-type must be one of/],
    [[...base, '-o', join(dir, 'x.gif')], 2, /-o must end in \.png, \.jpg, \.jpeg or \.webp/],
    [[...base, '--mask', junk], 2, /--mask needs --init-image/],
    [[...base, '--strength', '0.5'], 2, /--strength needs --init-image/],
    [[...base, '--hires-upscaler', 'bogus'], 2, /--hires-upscaler must be one of latent, .* or a Real-ESRGAN file \(got "bogus"\)/],
    [[...base, '--hires-scale', '2', '--init-image', plain], 2, /--hires-scale is for text to image/],
    [[...base, '--hires-scale', '2', '--hires-width', '128'], 2, /--hires-scale cannot be combined/],
    [[...base, '--hires-denoise', '1.5'], 2, /--hires-denoise must be a number from 0 to 1/],
    [['generate', '--model', join(dir, 'nope.safetensors'), '--prompt', 'x'], 1, /--model .*nope\.safetensors does not exist/],
    [[...base, '--init-image', join(dir, 'nope.png')], 1, /--init-image .*nope\.png does not exist/],
    [[...base, '--init-image', junk], 1, /Cannot read --init-image .*junk\.png/],
    [['generate', '--model', sd1, '--from', junk], 1, /Cannot read .*junk\.png: .*unsupported image format/],
    [['generate', '--model', sd1, '--from', plain], 1, /plain\.png has no generation parameters/],
    [[...base, '-o', join(dir, 'no', 'such', 'dir.png')], 1, /Cannot write .*dir\.png: its folder does not exist/],
    [['info', junk], 1, /junk\.png/],
  ];
  for (const [args, status, message] of cases) {
    const run = sdnode(...args);
    assert.equal(run.status, status, `${args.join(' ')}: ${run.stderr}`);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, message);
    assert.doesNotMatch(run.stderr, /\n\s+at /);
  }
  const verbose = sdnode(...base, '--init-image', junk, '--verbose');
  assert.equal(verbose.status, 1);
  assert.match(verbose.stderr, /\n\s+at /);
  const help = sdnode('generate', '--help');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /Usage: sdnode generate[\s\S]*--init-image[\s\S]*--from/);
  assert.ok(statSync(bin).isFile());
});

test('the progress bar on a terminal: stage, step i/n, s/it and ETA redrawn in place', () => {
  let out = '';
  const bar = new Progress('bar', (text) => (out += text));
  assert.equal(Progress.modeFor({}, true), 'bar');
  assert.equal(Progress.modeFor({}, false), 'lines');
  assert.equal(Progress.modeFor({ json: true }, true), 'json');
  assert.equal(Progress.modeFor({ quiet: true, json: true }, true), 'quiet');
  bar.stage('encode');
  bar.step({ step: 1, steps: 4, timestep: 999, elapsedMs: 3000 });
  bar.step({ step: 2, steps: 4, timestep: 749, elapsedMs: 3500 });
  bar.step({ step: 4, steps: 4, timestep: 249, elapsedMs: 4500 });
  bar.done();
  const frames = out.split('\r\x1b[K');
  assert.deepEqual(frames.slice(1), [
    'encode…',
    `sample ${'█'.repeat(6)}${'░'.repeat(18)} 1/4  3.00 s/it  ETA 0:09`,
    `sample ${'█'.repeat(12)}${'░'.repeat(12)} 2/4  0.50 s/it  ETA 0:01`,
    `sample ${'█'.repeat(24)} 4/4  0.50 s/it  ETA 0:00`,
    'decode…',
    '',
  ]);
});

test('sdnode upscale: Real-ESRGAN tile by tile, the same pixels as the API; progress per tile; bad input', async () => {
  const { Upscaler } = await import('../lib/index.js');
  const x4 = join(packageRoot, 'test', 'fixtures', 'tiny', 'esrgan', 'tiny-x4.safetensors');
  const raw = Buffer.alloc(40 * 36 * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 29) % 256;
  const input = join(dir, 'small.png');
  await sharp(raw, { raw: { width: 40, height: 36, channels: 3 } }).png().toFile(input);
  const out = join(dir, 'small-x4.png');
  const run = sdnode('upscale', input, '--upscaler', x4, '--tile-size', '32', '--threads', '2', '-o', out);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /^wrote .*small-x4\.png: 160×144 \(×4; RRDBNet ×4, 2 blocks\)/);
  assert.deepEqual(run.stderr.split('\n').filter((l) => l.startsWith('tile ')).map((l) => l.split('  ')[0]), ['tile 1/4', 'tile 2/4', 'tile 3/4', 'tile 4/4']);
  const upscaler = await Upscaler.load(x4, { backend: 'cpu', threads: 2 });
  try {
    const expected = await sharp(await (await upscaler.upscale(input, { tileSize: 32 })).toPNG()).raw().toBuffer();
    assert.ok(expected.equals(await sharp(out).raw().toBuffer()), 'the CLI and the API give the same pixels');
  } finally {
    upscaler.dispose();
  }
  const json = sdnode('upscale', input, '-u', x4, '--scale', '2', '--json', '-o', join(dir, 'small-x2.webp'));
  assert.equal(json.status, 0, json.stderr);
  const report = JSON.parse(json.stdout) as { width: number; height: number; scale: number; upscaler: { blocks: number } };
  assert.deepEqual([report.width, report.height, report.scale, report.upscaler.blocks], [80, 72, 2, 2]);
  assert.deepEqual(await sharp(join(dir, 'small-x2.webp')).metadata().then((m) => [m.format, m.width, m.height]), ['webp', 80, 72]);
  for (const [args, message] of [
    [['upscale', input], /needs --upscaler/],
    [['upscale', '-u', x4], /takes one image/],
    [['upscale', input, '-u', x4, '--tile-size', '8'], /--tile-size must be an integer from 32 to 2048 \(got "8"\)/],
    [['upscale', input, '-u', input], /Not an ESRGAN upscaler file: .*small\.png/],
  ] as const) {
    const bad = sdnode(...args);
    assert.notEqual(bad.status, 0, args.join(' '));
    assert.match(bad.stderr, message);
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  }
});

test('the upscale progress bar: tile i/n, s/tile and ETA redrawn in place', () => {
  let out = '';
  const bar = new Progress('bar', (text) => (out += text));
  bar.stage('load');
  bar.tile({ tile: 1, tiles: 4, elapsedMs: 2000 });
  bar.tile({ tile: 4, tiles: 4, elapsedMs: 6000 });
  bar.done();
  assert.deepEqual(out.split('\r\x1b[K').slice(1), [
    'load…',
    `upscale ${'█'.repeat(6)}${'░'.repeat(18)} 1/4  2.00 s/tile  ETA 0:06`,
    `upscale ${'█'.repeat(24)} 4/4  1.50 s/tile  ETA 0:00`,
    '',
  ]);
});

test("sdnode generate --safety-checker: flagged images are written black and named on stderr (diffusers' flags)", async () => {
  // The batch of test/fixtures/goldens/safety-checker's txt2img case, whose first image the tiny
  // checker flags (test/safety-checker.test.ts checks the flags against diffusers).
  const golden = JSON.parse(readFileSync(join(packageRoot, 'test', 'fixtures', 'goldens', 'safety-checker', 'goldens.json'), 'utf8')).txt2img;
  const out = join(dir, 'checked.png');
  const run = sdnode('generate', '--model', join(tiny, 'sd1-diffusers'), '--safety-checker', join(tiny, 'safety-checker', 'safety_checker'),
    '--prompt', golden.prompt, '--negative-prompt', golden.negativePrompt, '--width', String(golden.width), '--height', String(golden.height),
    '--steps', String(golden.steps), '--sampler', 'pndm', '--cfg-scale', String(golden.guidanceScale), '--seed', String(golden.seed),
    '--batch-size', String(golden.batchSize), '-q', '-o', out);
  assert.equal(run.status, 0, run.stderr);
  const flagged = (golden.nsfwContentDetected as boolean[]).flatMap((f, i) => (f ? [i + 1] : []));
  assert.deepEqual([...run.stderr.matchAll(/safety checker flagged image (\d) of 4 \(seed 42\): it was replaced by a black image/g)].map((m) => Number(m[1])), flagged);
  for (let i = 1; i <= 4; i++) {
    const black = (await pixels(join(dir, `checked-${i}.png`))).every((v) => v === 0);
    assert.equal(black, flagged.includes(i), `checked-${i}.png`);
  }
  const bad = sdnode('generate', '--model', sd1, '--prompt', 'a', ...small, '--safety-checker', '', '-o', join(dir, 'never.png'));
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--safety-checker takes on, off or the path/);
});
