import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import sharp from 'sharp';

import { encodeImage, formatForPath, readDepthMap, readImage, readMask, resizeImage, toRgbBytes } from '../lib/image.js';
import { readPngText } from '../lib/png-parameters.js';
import { Tensor } from '../lib/tensor.js';

const dir = mkdtempSync(join(tmpdir(), 'sdnode-image-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// A 4×2 RGB image with distinct values per pixel and channel.
const rgb = Uint8Array.from({ length: 4 * 2 * 3 }, (_, i) => (i * 10) % 256);

function planarOf(bytes: Uint8Array, width: number, height: number, channels: number): number[] {
  const out: number[] = [];
  for (let c = 0; c < channels; c++) for (let i = 0; i < width * height; i++) out.push(bytes[i * channels + c]! / 255);
  return out;
}

test('readImage reads paths, Buffers of PNG/JPEG/WebP, sharp instances and raw pixels to [1, 3, H, W] in [0, 1]', async () => {
  const png = await sharp(rgb, { raw: { width: 4, height: 2, channels: 3 } }).png().toBuffer();
  const path = join(dir, 'rgb.png');
  writeFileSync(path, png);
  const want = planarOf(rgb, 4, 2, 3);
  for (const input of [path, png, new Uint8Array(png), sharp(png), { data: rgb, width: 4, height: 2, channels: 3 as const }]) {
    const t = await readImage(input, 'image');
    assert.deepEqual(t.shape, [1, 3, 2, 4]);
    assert.deepEqual(Array.from(t.data), want.map(Math.fround));
  }
  for (const format of ['jpeg', 'webp'] as const) {
    const encoded = await sharp(rgb, { raw: { width: 4, height: 2, channels: 3 } })[format]({ quality: 100 }).toBuffer();
    const t = await readImage(encoded, 'image');
    assert.deepEqual(t.shape, [1, 3, 2, 4]);
  }
  // Grey and grey+alpha raw pixels become RGB with the alpha dropped.
  const grey = await readImage({ data: Uint8Array.of(0, 255, 51, 102), width: 2, height: 2, channels: 1 }, 'image');
  assert.deepEqual(Array.from(grey.data.subarray(0, 4)), [0, 1, 0.2, 0.4].map(Math.fround));
  assert.deepEqual(Array.from(grey.data.subarray(8, 12)), [0, 1, 0.2, 0.4].map(Math.fround));
  // A 16-bit PNG is read at 8 bits per channel, like PIL's convert('RGB').
  const wide = await sharp(Uint16Array.of(0, 65535, 32896, 0, 0, 0), { raw: { width: 2, height: 1, channels: 3 } }).png().toBuffer();
  const t16 = await readImage(wide, 'image');
  assert.deepEqual(Array.from(t16.data).map((v) => Math.round(v * 255)), [0, 0, 255, 0, 128, 0]);
});

test('readImage applies the EXIF orientation', async () => {
  const tall = await sharp(rgb, { raw: { width: 4, height: 2, channels: 3 } }).jpeg().withMetadata({ orientation: 6 }).toBuffer();
  const t = await readImage(tall, 'image');
  assert.deepEqual(t.shape, [1, 3, 4, 2]);
});

test('readMask uses alpha when it is not opaque, else luminance as PIL computes it', async () => {
  const rgba = Uint8Array.of(255, 255, 255, 0, 0, 0, 0, 255, 10, 20, 30, 128, 200, 100, 50, 255);
  const fromAlpha = await readMask({ data: rgba, width: 2, height: 2, channels: 4 }, 'mask');
  assert.deepEqual(fromAlpha.shape, [1, 1, 2, 2]);
  assert.deepEqual(Array.from(fromAlpha.data), [0, 1, 128 / 255, 1].map(Math.fround));
  const opaque = Uint8Array.of(255, 255, 255, 255, 0, 0, 0, 255, 10, 20, 30, 255, 200, 100, 50, 255);
  const fromLuma = await readMask(await sharp(opaque, { raw: { width: 2, height: 2, channels: 4 } }).png().toBuffer(), 'mask');
  // PIL: L = R·299/1000 + G·587/1000 + B·114/1000 → 255, 0, 18, 124
  assert.deepEqual(Array.from(fromLuma.data).map((v) => Math.round(v * 255)), [255, 0, 18, 124]);
  const grey = await readMask({ data: Uint8Array.of(0, 255), width: 2, height: 1, channels: 1 }, 'mask');
  assert.deepEqual(Array.from(grey.data), [0, 1]);
});

test('readDepthMap keeps 16-bit precision', async () => {
  const levels = Uint16Array.of(0, 1, 257, 65535);
  const png = await sharp(levels, { raw: { width: 4, height: 1, channels: 1 } }).toColourspace('grey16').png().toBuffer();
  assert.equal((await sharp(png).metadata()).depth, 'ushort');
  const depth = await readDepthMap(png, 'depthMap');
  assert.deepEqual(depth.shape, [1, 1, 1, 4]);
  assert.deepEqual(Array.from(depth.data).map((v) => Math.round(v * 65535)), [0, 1, 257, 65535]);
  const eight = await readDepthMap({ data: Uint8Array.of(0, 128), width: 2, height: 1, channels: 1 }, 'depthMap');
  assert.deepEqual(Array.from(eight.data), [0, 128 / 255].map(Math.fround));
});

test('unreadable images and wrong inputs give clear errors', async () => {
  await assert.rejects(readImage(join(dir, 'missing.png'), 'image'), { code: 'ERR_FILE_NOT_FOUND', message: /missing\.png/ });
  const junk = join(dir, 'junk.png');
  writeFileSync(junk, 'not an image');
  await assert.rejects(readImage(junk, 'image'), { code: 'ERR_FILE_READ', message: /junk\.png/ });
  await assert.rejects(readImage(Buffer.from('nope'), 'image'), TypeError);
  await assert.rejects(readImage(42, 'image'), { name: 'TypeError', message: /Expected image to be an image path.*received 42/ });
  await assert.rejects(readMask({ data: new Uint8Array(3), width: 2, height: 2, channels: 1 }, 'mask'), {
    name: 'RangeError',
    message: /Expected mask\.data to hold 2×2×1 = 4 bytes but received 3/,
  });
  await assert.rejects(readImage(new Tensor([1, 4, 2, 2]), 'image'), RangeError);
});

test('resizeImage: Lanczos-3 through 16 bits, identity when the size matches', async () => {
  const flat = new Tensor([2, 3, 8, 8], new Float32Array(2 * 3 * 64).fill(0.3));
  assert.equal(await resizeImage(flat, 8, 8), flat);
  const resized = await resizeImage(flat, 4, 6);
  assert.deepEqual(resized.shape, [2, 3, 6, 4]);
  // libvips filters 16-bit pixels with fixed-point coefficients: a few 16-bit levels off, far below 8-bit steps.
  for (const v of resized.data) assert.ok(Math.abs(v - 0.3) < 2e-4, `${v}`);
  const mask = new Tensor([1, 1, 4, 4], Float32Array.from({ length: 16 }, (_, i) => (i % 4 < 2 ? 0 : 1)));
  const wider = await resizeImage(mask, 8, 4);
  assert.deepEqual(wider.shape, [1, 1, 4, 8]);
  assert.ok(wider.data[0]! < 0.01 && wider.data[7]! > 0.99);
});

test('toRgbBytes rounds half to even as numpy does; encodeImage writes PNG with parameters, JPEG and WebP', async () => {
  // x · 255 in float32 lands exactly on .5 for these: 0.5 → 0 and 2.5 → 2 (even), 126.5 → 126, 128.5 → 128.
  const t = new Tensor([1, 3, 1, 2], Float32Array.of(0.5 / 255, 2.5 / 255, 126.5 / 255, 128.5 / 255, -0.2, 1.7));
  const bytes = toRgbBytes(t);
  assert.deepEqual([...bytes.data], [0, 126, 0, 2, 128, 255]);
  const image = new Tensor([2, 3, 8, 8], new Float32Array(2 * 3 * 64).fill(0.25));
  const png = await encodeImage(image, 1, { parameters: { prompt: 'a cat', steps: 2, seed: 1 } });
  assert.equal(readPngText(png).parameters, 'a cat\nSteps: 2, Seed: 1');
  const meta = await sharp(png).metadata();
  assert.equal(meta.format, 'png');
  assert.equal(meta.width, 8);
  assert.equal((await sharp(await encodeImage(image, 0, { format: 'jpeg' })).metadata()).format, 'jpeg');
  assert.equal((await sharp(await encodeImage(image, 0, { format: 'webp' })).metadata()).format, 'webp');
  assert.equal(formatForPath('a/b.JPG'), 'jpeg');
  assert.equal(formatForPath('x.webp'), 'webp');
  assert.equal(formatForPath('x.gif'), undefined);
});
