// Real-ESRGAN (RRDBNet) against our PyTorch RRDBNet on random weights, in both layouts (.pth with
// params_ema / params, .safetensors), ×4 and ×2 (pixel-unshuffle, reflection padding); tiling
// against the untiled result; other scales, image inputs, progress, cancelling; bad input.
// Goldens: tools/goldens/make_esrgan_goldens.py → test/fixtures/goldens/esrgan/.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import sharp from 'sharp';

import {
  AbortError, ArgumentRangeError, ArgumentTypeError, MAX_UPSCALE_OUTPUT_PIXELS, Tensor, Upscaler, resizeImage, upscale,
  type UpscaleProgress,
} from '../lib/index.js';
import { goldensDir, relativeError, tinyDir } from './helpers/goldens.js';

interface Entry { shape: number[]; offset: number }
interface GoldenModel {
  name: string; scale: number; features: number; growth: number; blocks: number;
  stateDict: { pth: string; safetensors: string };
  cases: Array<{ seed: number; input: Entry; output: Entry }>;
}

const dir = join(goldensDir, 'esrgan');
const goldens = JSON.parse(readFileSync(join(dir, 'goldens.json'), 'utf8')) as { models: GoldenModel[] };
const bytes = readFileSync(join(dir, 'goldens.bin'));
const floats = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
const tensor = (e: Entry): Tensor => new Tensor(e.shape, floats.slice(e.offset, e.offset + e.shape.reduce((a, b) => a * b, 1)));
const clamp01 = (t: Tensor): Tensor => new Tensor(t.shape, t.data.map((v) => Math.min(1, Math.max(0, v))));
const file = (name: string): string => join(tinyDir, 'esrgan', name);
const OPTIONS = { backend: 'cpu', threads: 2 } as const;
const UNTILED = { tileSize: 2048 } as const;

/** A reproducible image [1, 3, h, w] in [0, 1] with some structure (gradients and a checker). */
function pattern(width: number, height: number): Tensor {
  const data = new Float32Array(3 * width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      data[i] = x / width;
      data[width * height + i] = ((x >> 2) + (y >> 2)) % 2 === 0 ? 0.9 : 0.1;
      data[2 * width * height + i] = (Math.sin(x * 0.7) * Math.cos(y * 0.45) + 1) / 2;
    }
  }
  return new Tensor([1, 3, height, width], data);
}

describe('Real-ESRGAN RRDBNet against PyTorch', () => {
  const F32 = 1e-4;
  for (const model of goldens.models) {
    for (const ext of ['pth', 'safetensors'] as const) {
      test(`${model.name}.${ext}: f32 within ${F32} of PyTorch on every case`, async () => {
        const upscaler = await Upscaler.load(file(`${model.name}.${ext}`), OPTIONS);
        try {
          assert.deepEqual(
            { ...upscaler.info, device: undefined },
            {
              path: file(`${model.name}.${ext}`), format: ext === 'pth' ? 'checkpoint' : 'safetensors', architecture: 'RRDBNet',
              stateDict: model.stateDict[ext], scale: model.scale, features: model.features, growth: model.growth, blocks: model.blocks,
              inputMultiple: 4 / model.scale, device: undefined,
            },
          );
          for (const c of model.cases) {
            const result = await upscaler.upscale(tensor(c.input), UNTILED);
            const golden = clamp01(tensor(c.output));
            assert.deepEqual([...result.images.shape], [...golden.shape]);
            assert.equal(result.scale, model.scale);
            const error = relativeError(result.images, golden);
            assert.ok(error <= F32, `${model.name}.${ext} case ${c.seed}: relative error ${error}`);
          }
        } finally {
          upscaler.dispose();
        }
      });
    }
  }

  test('f16 weights stay within 3e-3', async () => {
    const upscaler = await Upscaler.load(file('tiny-x4.safetensors'), { ...OPTIONS, weightType: 'f16' });
    try {
      const c = goldens.models[0]!.cases[0]!;
      const error = relativeError((await upscaler.upscale(tensor(c.input), UNTILED)).images, clamp01(tensor(c.output)));
      assert.ok(error <= 3e-3, `f16: ${error}`);
    } finally {
      upscaler.dispose();
    }
  });
});

describe('upscale: tiling, scales, inputs', () => {
  let x4: Upscaler;
  let x2: Upscaler;
  before(async () => {
    x4 = await Upscaler.load(file('tiny-x4.safetensors'), OPTIONS);
    x2 = await Upscaler.load(file('tiny-x2.pth'), OPTIONS);
  });
  after(() => {
    x4.dispose();
    x2.dispose();
  });

  // The tiny ×4 network sees 34 input pixels around each output pixel (32 3×3 convolutions at the
  // input's size, and the upsampling part's four at 2× and 4×); the ×2 one twice that, less a
  // little (its body runs at half the size after the pixel-unshuffle). An overlap of 40 and 72
  // pixels leaves every kept output pixel with all of its context: tiled equals untiled up to
  // rounding.
  test('tiles whose overlap covers the receptive field equal the untiled result; without overlap they do not', async () => {
    const cases = [
      { upscaler: () => x4, width: 100, height: 90, tileSize: 40, tileOverlap: 40, tiles: 9 },
      { upscaler: () => x2, width: 151, height: 139, tileSize: 72, tileOverlap: 72, tiles: 6 },
    ];
    for (const { upscaler, width, height, tileSize, tileOverlap, tiles } of cases) {
      const image = pattern(width, height);
      const whole = await upscaler().upscale(image, UNTILED);
      const progress: UpscaleProgress[] = [];
      const tiled = await upscaler().upscale(image, { tileSize, tileOverlap, onProgress: (p) => void progress.push(p) });
      const error = relativeError(tiled.images, whole.images);
      assert.ok(error <= 1e-5, `tiled vs untiled: ${error}`);
      assert.deepEqual(progress.map((p) => p.tile), Array.from({ length: tiles }, (_, i) => i + 1));
      assert.ok(progress.every((p) => p.tiles === tiles));
      const seams = relativeError((await upscaler().upscale(image, { tileSize, tileOverlap: 0 })).images, whole.images);
      assert.ok(seams > 1e-3, `without overlap the seams should show, got ${seams}`);
    }
  });

  test('another scale resizes the network output with Lanczos; above the network scale it runs twice', async () => {
    const image = pattern(24, 20);
    const own = await x4.upscale(image, UNTILED);
    assert.deepEqual([...own.images.shape], [1, 3, 80, 96]);
    const half = await x4.upscale(image, { ...UNTILED, scale: 2 });
    assert.deepEqual([own.width, own.height, half.width, half.height, half.scale], [96, 80, 48, 40, 2]);
    assert.ok(relativeError(half.images, await resizeImage(own.images, 48, 40)) < 1e-6);
    // ×8 with a ×4 network: a second pass (96 → 384 pixels across), then Lanczos down to 192.
    const twice = await x4.upscale(image, { ...UNTILED, scale: 8 });
    assert.deepEqual([...twice.images.shape], [1, 3, 160, 192]);
    const again = await x4.upscale(own.images, UNTILED);
    assert.ok(relativeError(twice.images, await resizeImage(again.images, 192, 160)) < 1e-6);
    const odd = await x2.upscale(pattern(9, 7), { ...UNTILED, scale: 1.5 });
    assert.deepEqual([odd.width, odd.height], [14, 11]);
  });

  test('every image input gives the same result: path, Buffer, sharp instance, raw pixels, tensor', async () => {
    const raw = Buffer.alloc(23 * 17 * 3);
    for (let i = 0; i < raw.length; i++) raw[i] = (i * 37) % 256;
    const png = await sharp(raw, { raw: { width: 23, height: 17, channels: 3 } }).png().toBuffer();
    const work = mkdtempSync(join(tmpdir(), 'sdnode-upscale-'));
    try {
      const path = join(work, 'in.png');
      writeFileSync(path, png);
      const reference = await x4.upscale({ data: raw, width: 23, height: 17, channels: 3 }, UNTILED);
      const planar = new Float32Array(raw.length);
      for (let i = 0; i < 23 * 17; i++) for (let c = 0; c < 3; c++) planar[c * 23 * 17 + i] = raw[i * 3 + c]! / 255;
      for (const input of [path, png, sharp(png), new Tensor([1, 3, 17, 23], planar)]) {
        const result = await x4.upscale(input, UNTILED);
        assert.ok(relativeError(result.images, reference.images) < 1e-6);
      }
      const out = join(work, 'out.png');
      await reference.save(out);
      const meta = await sharp(out).metadata();
      assert.deepEqual([meta.width, meta.height, meta.channels], [92, 68, 3]);
      assert.deepEqual(await sharp(await reference.toPNG()).metadata().then((m) => [m.width, m.height]), [92, 68]);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  test('upscale() loads, runs and disposes; it also takes a loaded Upscaler', async () => {
    const c = goldens.models[0]!.cases[1]!;
    const golden = clamp01(tensor(c.output));
    const once = await upscale(tensor(c.input), { model: file('tiny-x4.pth'), ...OPTIONS });
    assert.ok(relativeError(once.images, golden) <= 1e-4);
    const loaded = await upscale(tensor(c.input), { model: x4 });
    assert.ok(relativeError(loaded.images, golden) <= 1e-4);
    await assert.rejects(upscale(tensor(c.input), { model: x4, threads: 2 }), ArgumentTypeError);
  });
});

describe('upscale: bad input', () => {
  let x2: Upscaler;
  let work: string;
  before(async () => {
    x2 = await Upscaler.load(file('tiny-x2.safetensors'), OPTIONS);
    work = mkdtempSync(join(tmpdir(), 'sdnode-upscale-bad-'));
  });
  after(() => {
    x2.dispose();
    rmSync(work, { recursive: true, force: true });
  });
  const image = pattern(16, 12);
  const works = async (): Promise<void> => {
    const c = goldens.models[1]!.cases[0]!;
    const result = await x2.upscale(tensor(c.input), UNTILED);
    assert.ok(relativeError(result.images, clamp01(tensor(c.output))) <= 1e-4);
  };

  test('a file that is not an RRDBNet: ERR_UPSCALER_FORMAT naming it', async () => {
    const text = join(work, 'notes.pth');
    writeFileSync(text, 'not a model at all');
    const truncated = join(work, 'truncated.safetensors');
    writeFileSync(truncated, readFileSync(file('tiny-x4.safetensors')).subarray(0, 5000));
    const renamed = join(work, 'copy.safetensors');
    copyFileSync(join(tinyDir, 'taesd', 'taesd_decoder.safetensors'), renamed);
    for (const path of [renamed, text, truncated]) {
      await assert.rejects(Upscaler.load(path, OPTIONS), (error: NodeJS.ErrnoException & { path?: string }) => {
        assert.equal(error.code, 'ERR_UPSCALER_FORMAT', `${path}: ${error.message}`);
        assert.equal(error.path, path);
        assert.match(error.message, new RegExp(path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
        return true;
      });
    }
    await assert.rejects(Upscaler.load(renamed, OPTIONS), /Not an ESRGAN upscaler \(RRDBNet\) file: .*no tensor conv_first\.weight/);
    await assert.rejects(Upscaler.load(join(work, 'missing.pth'), OPTIONS), { code: 'ERR_FILE_NOT_FOUND' });
    await assert.rejects(upscale(image, { model: renamed }), { code: 'ERR_UPSCALER_FORMAT' });
  });

  test('options out of range or of the wrong type', async () => {
    await assert.rejects(x2.upscale(image, { tileSize: 8 }), (error: Error) => {
      assert.ok(error instanceof ArgumentRangeError);
      assert.equal(error.message, 'Expected integer tileSize between 32 and 2048 but received 8');
      return true;
    });
    await assert.rejects(x2.upscale(image, { tileSize: 64, tileOverlap: 65 }), /Expected integer tileOverlap between 0 and 64 but received 65/);
    await assert.rejects(x2.upscale(image, { scale: 0.5 }), ArgumentRangeError);
    await assert.rejects(x2.upscale(image, { scale: '2' as unknown as number }), ArgumentTypeError);
    await assert.rejects(x2.upscale(image, { tileSise: 64 } as never), { code: 'ERR_INVALID_ARG_VALUE', message: /did you mean 'tileSize'/ });
    await assert.rejects(x2.upscale(image, { onProgress: 1 as never }), ArgumentTypeError);
    await assert.rejects(x2.upscale(image, { signal: {} as never }), ArgumentTypeError);
    await assert.rejects(Upscaler.load(file('tiny-x2.pth'), { weightType: 'q8_0' as never }), ArgumentRangeError);
    await assert.rejects(Upscaler.load(file('tiny-x2.pth'), { thread: 2 } as never), { code: 'ERR_INVALID_ARG_VALUE' });
    await assert.rejects(Upscaler.load('' as string), ArgumentRangeError);
    await assert.rejects(upscale(image, {} as never), ArgumentTypeError);
    await assert.rejects(x2.upscale(42 as never), ArgumentTypeError);
    await works();
  });

  test('images too small for the network or too large for the output', async () => {
    await assert.rejects(x2.upscale(pattern(1, 1)), (error: Error) => {
      assert.ok(error instanceof ArgumentRangeError);
      assert.match(error.message, /at least 2×2 pixels .* received 1×1/);
      return true;
    });
    const side = Math.ceil(Math.sqrt(MAX_UPSCALE_OUTPUT_PIXELS) / 2) + 2;
    const big = { data: new Uint8Array(side * side), width: side, height: side, channels: 1 } as const;
    await assert.rejects(x2.upscale(big), (error: Error) => {
      assert.ok(error instanceof ArgumentRangeError);
      assert.match(error.message, /within 67108864 pixels/);
      return true;
    });
    await works();
  });

  test('cancelling by signal or onProgress: AbortError, and the upscaler still works', async () => {
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(x2.upscale(image, { signal: controller.signal }), AbortError);
    let calls = 0;
    await assert.rejects(x2.upscale(pattern(80, 80), { tileSize: 32, onProgress: () => ++calls < 2 }), AbortError);
    assert.equal(calls, 2);
    const late = new AbortController();
    await assert.rejects(x2.upscale(pattern(80, 80), { tileSize: 32, signal: late.signal, onProgress: () => late.abort() }), { code: 'ABORT_ERR' });
    await works();
  });

  test('a disposed upscaler rejects with ERR_DISPOSED', async () => {
    const upscaler = await Upscaler.load(file('tiny-x2.safetensors'), OPTIONS);
    await upscaler[Symbol.asyncDispose]();
    await assert.rejects(upscaler.upscale(image), { code: 'ERR_DISPOSED' });
    upscaler.dispose();
  });
});
