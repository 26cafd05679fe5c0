// The server's hires fix over loopback: enable_hr with latent modes, pixel resizes and a
// Real-ESRGAN file given at start (`upscalers`), hr_scale and hr_resize_x/y, the lists A1111
// clients read (/upscalers, /latent-upscale-modes, /realesrgan-models), the infotext, and the
// fields it refuses. A latent request is checked against the library's txt2img with the same
// hires options, pixel for pixel.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { encodeImage, StableDiffusion } from '../lib/index.js';
import { readPngText } from '../lib/png-parameters.js';
import { tinyDir } from './helpers/goldens.js';
import { call, DEMO, pixels, scratch, startServer } from './helpers/server.js';

const tmp = scratch('server-hires');
const esrgan = join(tinyDir, 'esrgan', 'tiny-x2.safetensors');
let url = '';
let close: () => Promise<void> = async () => {};
before(async () => {
  ({ url, close } = await startServer({ upscalers: [esrgan] }));
});
after(async () => {
  await close();
  tmp.dispose();
});

const small = { prompt: 'a lighthouse', steps: 3, width: 64, height: 64, sampler_name: 'DDIM', cfg_scale: 5, seed: 21 };

test("the upscaler lists in A1111's shapes: pixel resizes and the loaded ESRGAN model, the latent modes", async () => {
  const upscalers = (await call(url, '/sdapi/v1/upscalers')).body;
  assert.deepEqual(upscalers.map((u: { name: string }) => u.name), ['None', 'Lanczos', 'Nearest', 'tiny-x2']);
  assert.deepEqual(upscalers[3], { name: 'tiny-x2', model_name: 'tiny-x2', model_path: esrgan, model_url: null, scale: 2 });
  assert.deepEqual((await call(url, '/sdapi/v1/latent-upscale-modes')).body.map((m: { name: string }) => m.name), [
    'Latent', 'Latent (antialiased)', 'Latent (bicubic)', 'Latent (bicubic antialiased)', 'Latent (nearest)', 'Latent (nearest-exact)',
  ]);
  assert.deepEqual((await call(url, '/sdapi/v1/realesrgan-models')).body, [{ name: 'tiny-x2', path: esrgan, scale: 2 }]);
});

test('enable_hr with a latent mode: the image the library makes with the same hires options, and the infotext', async () => {
  const request = { ...small, enable_hr: true, hr_scale: 2, hr_upscaler: 'Latent (bicubic)', hr_second_pass_steps: 4, denoising_strength: 0.5 };
  const { status, body } = await call(url, '/sdapi/v1/txt2img', request);
  assert.equal(status, 200, JSON.stringify(body));
  const served = await pixels(body.images[0]);
  assert.equal(served.width, 128);
  assert.equal(served.height, 128);
  const text = readPngText(Buffer.from(body.images[0], 'base64')).parameters!;
  assert.match(text, /Steps: 3, Sampler: DDIM, CFG scale: 5, Seed: 21, Size: 64x64, .*Denoising strength: 0\.5/);
  assert.match(text, /Hires upscale: 2, Hires steps: 4, Hires upscaler: Latent \(bicubic\)/);
  const info = JSON.parse(body.info);
  assert.equal(info.denoising_strength, 0.5);
  assert.equal(info.extra_generation_params['Hires upscaler'], 'Latent (bicubic)');
  assert.equal(body.parameters.enable_hr, true);

  const sd = await StableDiffusion.load({ model: DEMO, backend: 'cpu', threads: 1 });
  try {
    const result = await sd.txt2img({
      prompt: small.prompt, steps: 3, width: 64, height: 64, scheduler: 'ddim', guidanceScale: 5, seed: 21, clipSkip: 1,
      hires: { scale: 2, upscaler: 'latent-bicubic', steps: 4, denoisingStrength: 0.5 },
    });
    const ours = await pixels((await encodeImage(result.images!, 0)).toString('base64'));
    let diff = 0;
    for (let i = 0; i < ours.data.length; i++) diff = Math.max(diff, Math.abs(ours.data[i]! - served.data[i]!));
    assert.ok(diff <= 1, `max |Δ| ${diff} of 255 between the server's image and the library's`);
  } finally {
    await sd.dispose();
  }
});

test('enable_hr with the ESRGAN model and both target sides: covered, then cropped to them', async () => {
  const request = { ...small, enable_hr: true, hr_upscaler: 'tiny-x2', hr_resize_x: 96, hr_resize_y: 128, denoising_strength: 0.7 };
  const { status, body } = await call(url, '/sdapi/v1/txt2img', request);
  assert.equal(status, 200, JSON.stringify(body));
  const image = await pixels(body.images[0]);
  assert.deepEqual([image.width, image.height], [96, 128]);
  assert.match(readPngText(Buffer.from(body.images[0], 'base64')).parameters!, /Hires resize: 96x128, Hires steps: 3, Hires upscaler: tiny-x2/);
  // "None" is A1111's plain resize (Lanczos), with hr_resize_x alone keeping the aspect ratio.
  const none = await call(url, '/sdapi/v1/txt2img', { ...small, enable_hr: true, hr_upscaler: 'None', hr_resize_x: 80, denoising_strength: 0.7 });
  assert.equal(none.status, 200, JSON.stringify(none.body));
  assert.deepEqual([(await pixels(none.body.images[0])).width, (await pixels(none.body.images[0])).height], [80, 80]);
});

test('hires fields it cannot honour are 422s naming the field', async () => {
  const cases: [Record<string, unknown>, (string | number)[], RegExp][] = [
    [{ hr_upscaler: 'R-ESRGAN 4x+' }, ['body', 'hr_upscaler'], /not one of "Latent", .*"tiny-x2"/],
    [{ hr_scale: 0.5 }, ['body', 'hr_scale'], /between 1 and 8/],
    [{ hr_resize_x: 5000 }, ['body', 'hr_resize_x'], /at most 4096/],
    [{ hr_sampler_name: 'Euler a' }, ['body', 'hr_sampler_name'], /not supported/],
    [{ hr_prompt: 'another prompt' }, ['body', 'hr_prompt'], /not supported/],
    [{ hr_checkpoint_name: 'other.safetensors' }, ['body', 'hr_checkpoint_name'], /not supported/],
    [{ firstphase_width: 32 }, ['body', 'firstphase_width'], /not supported/],
    [{ denoising_strength: 0.1 }, ['body', 'denoising_strength'], /leaves no step/],
  ];
  for (const [fields, loc, message] of cases) {
    const { status, body } = await call(url, '/sdapi/v1/txt2img', { ...small, enable_hr: true, ...fields });
    assert.equal(status, 422, JSON.stringify(fields));
    assert.deepEqual(body.detail[0].loc, loc, JSON.stringify(fields));
    assert.match(body.detail[0].msg, message);
  }
  // "Use same sampler" and the first pass's own values are fine.
  const same = { hr_sampler_name: 'Use same sampler', hr_scheduler: 'Use same scheduler', hr_prompt: small.prompt, hr_negative_prompt: '', hr_checkpoint_name: '' };
  assert.equal((await call(url, '/sdapi/v1/txt2img', { ...small, enable_hr: true, hr_scale: 1.25, ...same })).status, 200);
});
