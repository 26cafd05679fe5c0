import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { test } from 'node:test';

import sharp from 'sharp';

import { encodeImage } from '../lib/image.js';
import { formatParameters, parseParameters, readExifUserComment, readPngText, samplerLabel, setPngText } from '../lib/png-parameters.js';
import { Tensor } from '../lib/tensor.js';

test('formatParameters writes A1111 infotext, quoting values with commas, colons, quotes or newlines', () => {
  const text = formatParameters({
    prompt: 'a (red:1.2) cat, sitting',
    negativePrompt: 'blurry, low quality',
    steps: 20,
    sampler: 'euler_a',
    guidanceScale: 7,
    seed: 42,
    width: 512,
    height: 768,
    modelHash: '6ce0161689',
    model: 'v1-5-pruned, emaonly',
    strength: 0.75,
    clipSkip: 2,
    extra: { Note: 'say "hi": now' },
  });
  assert.equal(
    text,
    'a (red:1.2) cat, sitting\nNegative prompt: blurry, low quality\n' +
      'Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x768, Model hash: 6ce0161689, ' +
      'Model: "v1-5-pruned, emaonly", Denoising strength: 0.75, Clip skip: 2, Note: "say \\"hi\\": now"',
  );
  // Clip skip 1 (A1111's default) and an empty negative prompt are left out, as A1111 does.
  assert.equal(formatParameters({ prompt: 'x', negativePrompt: '', steps: 1, clipSkip: 1 }), 'x\nSteps: 1');
  // White space at either end of a value would be trimmed by the reader: quoted (found by test/properties.test.ts).
  assert.equal(formatParameters({ prompt: 'x', steps: 1, model: '# ' }), 'x\nSteps: 1, Model: "# "');
  assert.equal(samplerLabel('dpmpp_2m_karras'), 'DPM++ 2M Karras');
  assert.equal(samplerLabel('pndm'), 'PLMS');
});

test('parseParameters reads its own output and A1111 images back', () => {
  const parameters = {
    prompt: 'a cat,\nsecond line',
    negativePrompt: 'ugly',
    steps: 30,
    sampler: 'dpmpp_2m_karras',
    guidanceScale: 7.5,
    seed: 18446744073709551615n,
    width: 64,
    height: 32,
    model: 'tiny: model',
    clipSkip: 2,
    batchSize: 4,
    batchPosition: 3,
  };
  const parsed = parseParameters(formatParameters(parameters));
  const { fields, ...typed } = parsed;
  assert.deepEqual(typed, parameters);
  assert.equal(fields.Model, 'tiny: model');

  // As A1111 1.9 writes it: the Karras schedule separate, unknown fields kept.
  const a1111 = parseParameters(
    'masterpiece, best quality, 1girl\nNegative prompt: lowres, bad anatomy\n' +
      'Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 3407, Size: 512x768, ' +
      'Model hash: cbfba64e66, Model: anything-v3, Denoising strength: 0.5, Hires upscale: 2, Version: v1.9.4',
  );
  assert.equal(a1111.prompt, 'masterpiece, best quality, 1girl');
  assert.equal(a1111.negativePrompt, 'lowres, bad anatomy');
  assert.equal(a1111.sampler, 'dpmpp_2m_karras');
  assert.equal(a1111.seed, 3407);
  assert.equal(a1111.strength, 0.5);
  assert.deepEqual(a1111.extra, { 'Hires upscale': '2', Version: 'v1.9.4' });

  // A last line with fewer than three fields is part of the prompt.
  const plain = parseParameters('a cat\nstyle: oil, mood: calm');
  assert.equal(plain.prompt, 'a cat\nstyle: oil, mood: calm');
  assert.deepEqual(plain.fields, {});
  // Unknown sampler names are kept as written.
  assert.equal(parseParameters('x\nSteps: 1, Sampler: DPM++ SDE, Seed: 1').sampler, 'DPM++ SDE');
  assert.throws(() => parseParameters('x\nSteps: many, Seed: 1, Size: 1x1'), { name: 'RangeError', message: /"Steps"/ });
});

test('setPngText adds tEXt for Latin-1 and iTXt for other text; readPngText reads tEXt, iTXt and zTXt', async () => {
  const png = await sharp({ create: { width: 2, height: 2, channels: 3, background: '#808080' } }).png().toBuffer();
  const latin = setPngText(png, 'parameters', 'café, Steps: 1');
  assert.ok(latin.includes(Buffer.from('tEXtparameters\0caf\xe9', 'latin1')));
  assert.deepEqual(readPngText(latin), { parameters: 'café, Steps: 1' });
  const unicode = setPngText(latin, 'parameters', '猫 🐈');
  assert.ok(unicode.includes(Buffer.from('iTXtparameters', 'latin1')));
  assert.deepEqual(readPngText(unicode), { parameters: '猫 🐈' }); // replaced, not added
  assert.equal((await sharp(unicode).metadata()).width, 2); // still a valid PNG (CRCs right)
  await sharp(unicode).raw().toBuffer();

  // A zTXt chunk, as other tools write, is read too.
  const body = Buffer.concat([Buffer.from('Comment\0\0', 'latin1'), deflateSync(Buffer.from('zipped'))]);
  const chunk = Buffer.alloc(12 + body.length);
  chunk.writeUInt32BE(body.length, 0);
  chunk.write('zTXt', 4, 'latin1');
  body.copy(chunk, 8);
  const iend = png.length - 12;
  const withZ = Buffer.concat([png.subarray(0, iend), chunk, png.subarray(iend)]);
  assert.deepEqual(readPngText(withZ), { Comment: 'zipped' });
  assert.throws(() => readPngText(Buffer.from('GIF89a')), TypeError);
  assert.throws(() => setPngText(png, '', 'x'), RangeError);
});

test('JPEG and WebP carry ASCII parameters in EXIF UserComment, as A1111 stores them', async () => {
  const image = new Tensor([1, 3, 8, 8], new Float32Array(3 * 64).fill(0.5));
  const text = 'a cat, sitting\nSteps: 2, Sampler: Euler a, Seed: 1';
  for (const format of ['jpeg', 'webp'] as const) {
    const encoded = await encodeImage(image, 0, { format, parameters: text });
    const { exif } = await sharp(encoded).metadata();
    assert.equal(readExifUserComment(exif!), text);
  }
  // Non-ASCII text is left out rather than transliterated.
  const cjk = await encodeImage(image, 0, { format: 'jpeg', parameters: '猫' });
  const meta = await sharp(cjk).metadata();
  assert.equal(meta.exif === undefined ? undefined : readExifUserComment(meta.exif), undefined);

  // piexif's UNICODE comment (UTF-16 big-endian) in a big-endian TIFF block, as A1111 writes it.
  const comment = Buffer.concat([Buffer.from('UNICODE\0', 'latin1'), Buffer.from('猫 Steps: 1', 'utf16le').swap16()]);
  const tiff = Buffer.alloc(8 + 18 + 18 + comment.length);
  tiff.write('MM', 0, 'latin1');
  tiff.writeUInt16BE(42, 2);
  tiff.writeUInt32BE(8, 4);
  tiff.writeUInt16BE(1, 8); // IFD0: one entry, the Exif IFD pointer
  tiff.writeUInt16BE(0x8769, 10);
  tiff.writeUInt16BE(4, 12);
  tiff.writeUInt32BE(1, 14);
  tiff.writeUInt32BE(26, 18);
  tiff.writeUInt16BE(1, 26); // Exif IFD: UserComment
  tiff.writeUInt16BE(0x9286, 28);
  tiff.writeUInt16BE(7, 30);
  tiff.writeUInt32BE(comment.length, 32);
  tiff.writeUInt32BE(44, 36);
  comment.copy(tiff, 44);
  assert.equal(readExifUserComment(Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff])), '猫 Steps: 1');
  assert.equal(readExifUserComment(Buffer.from('nothing')), undefined);
});
