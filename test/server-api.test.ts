// `sdnode serve` (createServer) end to end over loopback: A1111's endpoints, field names and
// behaviour (seeds, batches, img2img and inpainting, progress with previews, interrupt and skip,
// options and model switching, png-info) on the tiny demo model and the tiny fixtures.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import Fastify from 'fastify';

import { createServer, sdnodeServer } from '../lib/index.js';
import { readPngText } from '../lib/png-parameters.js';
import { tinyDir } from './helpers/goldens.js';
import { call, DEMO, maskBase64, pixels, pngBase64, scratch, startServer, waitForIdle, waitForStep } from './helpers/server.js';

const tmp = scratch('server-api');
const modelsDir = join(tmp.dir, 'models');
mkdirSync(join(modelsDir, 'sub'), { recursive: true });
symlinkSync(join(tinyDir, 'sd1-ldm.safetensors'), join(modelsDir, 'sd1-ldm.safetensors'));
symlinkSync(join(tinyDir, 'sd1-inpaint-ldm.ckpt'), join(modelsDir, 'sub', 'sd1-inpaint-ldm.ckpt'));

let url = '';
let close: () => Promise<void> = async () => {};
let server: Awaited<ReturnType<typeof startServer>>['server'];
before(async () => {
  ({ url, close, server } = await startServer({ modelsDir }));
});
after(async () => {
  await close();
  tmp.dispose();
});

const small = { prompt: 'a red square', steps: 3, width: 64, height: 64, sampler_name: 'DDIM', cfg_scale: 5 };

function infoOf(body: { info: string }): Record<string, any> {
  return JSON.parse(body.info) as Record<string, any>;
}

function parametersOf(base64: string): string | undefined {
  return readPngText(Buffer.from(base64, 'base64')).parameters;
}

describe('txt2img', () => {
  test('returns PNGs carrying their infotext, the request echoed with defaults, and info', async () => {
    const { status, body } = await call(url, '/sdapi/v1/txt2img', { ...small, seed: 42, negative_prompt: 'blurry', not_an_a1111_field: [1, 2] });
    assert.equal(status, 200);
    assert.equal(body.images.length, 1);
    const text = parametersOf(body.images[0]);
    assert.equal(text, 'a red square\nNegative prompt: blurry\nSteps: 3, Sampler: DDIM, CFG scale: 5, Seed: 42, Size: 64x64, Model hash: ' +
      `${infoOf(body).sd_model_hash}, Model: demo-sd1-tiny`);
    assert.deepEqual([(await pixels(body.images[0])).width, (await pixels(body.images[0])).height], [64, 64]);
    // Echo: what was sent, A1111's defaults for the rest, unknown fields dropped.
    assert.equal(body.parameters.steps, 3);
    assert.equal(body.parameters.n_iter, 1);
    assert.equal(body.parameters.sampler_index, 'Euler');
    assert.equal(body.parameters.enable_hr, false);
    assert.equal('not_an_a1111_field' in body.parameters, false);
    const info = infoOf(body);
    assert.equal(info.seed, 42);
    assert.deepEqual(info.all_seeds, [42]);
    assert.equal(info.sampler_name, 'DDIM');
    assert.match(info.sd_model_hash, /^[0-9a-f]{10}$/);
    assert.equal(info.infotexts[0], text);
  });

  test('a batch numbers seeds seed + i, and each image is the one its seed makes alone', async () => {
    const batch = await call(url, '/sdapi/v1/txt2img', { ...small, seed: 7, batch_size: 2, n_iter: 2 });
    assert.equal(batch.status, 200);
    assert.equal(batch.body.images.length, 4);
    assert.deepEqual(infoOf(batch.body).all_seeds, [7, 8, 9, 10]);
    assert.deepEqual(batch.body.images.map((png: string) => /Seed: (\d+)/.exec(parametersOf(png)!)![1]), ['7', '8', '9', '10']);
    const alone = await call(url, '/sdapi/v1/txt2img', { ...small, seed: 9 });
    assert.equal(alone.body.images[0], batch.body.images[2]);
    assert.notEqual(batch.body.images[0], batch.body.images[1]);
  });

  test('seed -1 picks a random seed; the batch still counts up from it', async () => {
    const { body } = await call(url, '/sdapi/v1/txt2img', { ...small, seed: -1, batch_size: 2 });
    const [a, b] = infoOf(body).all_seeds as number[];
    assert.ok(Number.isInteger(a) && a! >= 0);
    assert.equal(b, a! + 1);
    assert.equal(body.parameters.seed, -1);
  });

  test('sampler_index, A1111 aliases and schedule types select our schedulers', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ sampler_index: 'Euler a' }, /Sampler: Euler a,/],
      [{ sampler_name: 'k_dpmpp_2m' }, /Sampler: DPM\+\+ 2M,/],
      [{ sampler_name: 'DPM++ 2M', scheduler: 'Karras' }, /Sampler: DPM\+\+ 2M Karras,/],
      [{ sampler_name: 'Euler', scheduler: 'karras' }, /Sampler: Euler, .*Schedule type: Karras/],
      [{ sampler_name: 'Euler', scheduler: 'SGM Uniform' }, /Schedule type: SGM Uniform/],
      [{ sampler_name: 'DDIM', scheduler: 'Automatic' }, /Sampler: DDIM, (?!.*Schedule type)/],
    ];
    for (const [fields, expected] of cases) {
      const { status, body } = await call(url, '/sdapi/v1/txt2img', { ...small, sampler_name: undefined, ...fields, seed: 1 });
      assert.equal(status, 200, JSON.stringify(body));
      assert.match(parametersOf(body.images[0])!, expected, JSON.stringify(fields));
    }
  });

  test('send_images false answers without images', async () => {
    const { body } = await call(url, '/sdapi/v1/txt2img', { ...small, send_images: false });
    assert.deepEqual(body.images, []);
    assert.equal(infoOf(body).infotexts.length, 1);
  });
});

describe('img2img and inpainting', () => {
  test('img2img starts from the init image at the requested size', async () => {
    const init = await pngBase64(48, 40, [200, 30, 30]);
    const { status, body } = await call(url, '/sdapi/v1/img2img', { ...small, init_images: [init], denoising_strength: 0.5, width: 64, height: 64, seed: 3 });
    assert.equal(status, 200, JSON.stringify(body));
    const out = await pixels(body.images[0]);
    assert.deepEqual([out.width, out.height], [64, 64]);
    assert.match(parametersOf(body.images[0])!, /Denoising strength: 0\.5/);
    assert.equal(body.parameters.init_images, null);
    assert.equal(infoOf(body).denoising_strength, 0.5);
    // Without a size, the init image's (rounded down to a multiple of 8).
    const own = await call(url, '/sdapi/v1/img2img', { ...small, width: undefined, height: undefined, init_images: [init], denoising_strength: 0.5 });
    assert.deepEqual([(await pixels(own.body.images[0])).width, (await pixels(own.body.images[0])).height], [48, 40]);
    const echoed = await call(url, '/sdapi/v1/img2img', { ...small, init_images: [init], include_init_images: true });
    assert.deepEqual(echoed.body.parameters.init_images, [init]);
  });

  test('a mask repaints only its white area; the rest is the original, as A1111 pastes it back', async () => {
    const init = await pngBase64(64, 64, [20, 180, 40]);
    const mask = await maskBase64(64, 64, { x: 16, y: 16, w: 32, h: 32 });
    const original = await pixels(init);
    for (const invert of [0, 1]) {
      const { status, body } = await call(url, '/sdapi/v1/img2img', {
        ...small, init_images: [init], mask, mask_blur: 0, denoising_strength: 1, inpainting_mask_invert: invert, seed: 5,
      });
      assert.equal(status, 200, JSON.stringify(body));
      const out = await pixels(body.images[0]);
      let keptSame = 0;
      let keptTotal = 0;
      let repaintedSame = 0;
      for (let y = 0; y < 64; y++) {
        for (let x = 0; x < 64; x++) {
          const inside = x >= 16 && x < 48 && y >= 16 && y < 48;
          const repainted = invert ? !inside : inside;
          const i = (y * 64 + x) * 3;
          const same = out.data[i] === original.data[i] && out.data[i + 1] === original.data[i + 1] && out.data[i + 2] === original.data[i + 2];
          if (repainted) repaintedSame += same ? 1 : 0;
          else {
            keptTotal++;
            keptSame += same ? 1 : 0;
          }
        }
      }
      assert.equal(keptSame, keptTotal, `invert ${invert}: every kept pixel is the original`);
      assert.ok(repaintedSame < 10, `invert ${invert}: the repainted area changed (${repaintedSame} pixels unchanged)`);
    }
  });

  test('mask_blur softens the seam: pixels next to the mask blend the original and the new', async () => {
    const init = await pngBase64(64, 64, [20, 180, 40]);
    const mask = await maskBase64(64, 64, { x: 16, y: 16, w: 32, h: 32 });
    const sharpEdge = await pixels((await call(url, '/sdapi/v1/img2img', { ...small, init_images: [init], mask, mask_blur: 0, denoising_strength: 1, seed: 5 })).body.images[0]);
    const blurred = await pixels((await call(url, '/sdapi/v1/img2img', { ...small, init_images: [init], mask, mask_blur: 4, denoising_strength: 1, seed: 5 })).body.images[0]);
    const at = (p: { data: Buffer }, x: number, y: number) => p.data[(y * 64 + x) * 3 + 1];
    // Just outside the mask: the original with a sharp edge, partly new with a blurred one.
    assert.equal(at(sharpEdge, 14, 32), 180);
    assert.notEqual(at(blurred, 14, 32), 180);
    // Far outside: the original either way.
    assert.equal(at(blurred, 2, 2), 180);
  });
});

describe('progress, interrupt and skip', () => {
  test('progress reports the running job with a preview, and interrupt returns what it has', async () => {
    const job = call(url, '/sdapi/v1/txt2img', { ...small, steps: 150, width: 128, height: 128, n_iter: 3, seed: 11 });
    await waitForStep(url);
    const { body: p } = await call(url, '/sdapi/v1/progress');
    assert.ok(p.progress > 0 && p.progress < 1, `progress ${p.progress}`);
    assert.equal(p.state.job, 'txt2img');
    assert.equal(p.state.job_count, 3);
    assert.equal(p.state.sampling_steps, 150);
    assert.ok(p.state.sampling_step >= 1);
    assert.ok(p.eta_relative >= 0);
    const preview = await pixels(p.current_image);
    assert.deepEqual([preview.width, preview.height], [16, 16], 'the latent preview is an eighth of the image');
    const { body: skipImage } = await call(url, '/sdapi/v1/progress?skip_current_image=true');
    assert.equal(skipImage.current_image, null);

    assert.deepEqual((await call(url, '/sdapi/v1/interrupt', {})).body, {});
    const { status, body } = await job;
    assert.equal(status, 200);
    assert.equal(body.images.length, 1, 'the image in progress, and no other');
    assert.equal(infoOf(body).interrupted, true);
    assert.deepEqual([(await pixels(body.images[0])).width], [128]);
    await waitForIdle(url);
    const idle = (await call(url, '/sdapi/v1/progress')).body;
    assert.equal(idle.progress, 0);
    assert.equal(idle.state.job_count, 0);
  });

  test('skip ends the current image early and goes on with the next', async () => {
    const request = { ...small, steps: 80, n_iter: 2, seed: 21 };
    const job = call(url, '/sdapi/v1/txt2img', request);
    await waitForStep(url);
    await call(url, '/sdapi/v1/skip', {});
    const { body } = await job;
    assert.equal(body.images.length, 2);
    assert.equal(infoOf(body).interrupted, false);
    // The first image stopped short of its steps; the second ran in full.
    const [first, second] = await Promise.all([21, 22].map(async (seed) => (await call(url, '/sdapi/v1/txt2img', { ...request, n_iter: 1, seed })).body.images[0]));
    assert.notEqual(body.images[0], first);
    assert.equal(body.images[1], second);
  });
});

describe('options and models', () => {
  test('sd-models lists --models-dir and the start model; options name the loaded one', async () => {
    const { body: models } = await call(url, '/sdapi/v1/sd-models');
    const names = models.map((m: { model_name: string }) => m.model_name).sort();
    assert.deepEqual(names, ['demo-sd1-tiny', 'sd1-ldm', 'sub_sd1-inpaint-ldm']);
    const { body: options } = await call(url, '/sdapi/v1/options');
    assert.match(options.sd_model_checkpoint, /^demo-sd1-tiny\.gguf \[[0-9a-f]{10}\]$/);
    assert.equal(options.CLIP_stop_at_last_layers, 1);
  });

  test('CLIP_stop_at_last_layers, as an option or a per-request override', async () => {
    const override = await call(url, '/sdapi/v1/txt2img', { ...small, override_settings: { CLIP_stop_at_last_layers: 2 } });
    assert.match(parametersOf(override.body.images[0])!, /Clip skip: 2/);
    assert.equal((await call(url, '/sdapi/v1/options')).body.CLIP_stop_at_last_layers, 1, 'restored after the request');
    assert.equal((await call(url, '/sdapi/v1/options', { CLIP_stop_at_last_layers: 2 })).status, 200);
    const set = await call(url, '/sdapi/v1/txt2img', small);
    assert.equal(infoOf(set.body).clip_skip, 2);
    await call(url, '/sdapi/v1/options', { CLIP_stop_at_last_layers: 1 });
    assert.equal((await call(url, '/sdapi/v1/options', { CLIP_stop_at_last_layers: 99 })).status, 422);
  });

  test('sd_model_checkpoint switches models, per request or for good; unknown names are 404', async () => {
    const perRequest = await call(url, '/sdapi/v1/txt2img', { ...small, override_settings: { sd_model_checkpoint: 'sd1-ldm' } });
    assert.equal(perRequest.status, 200, JSON.stringify(perRequest.body));
    assert.equal(infoOf(perRequest.body).sd_model_name, 'sd1-ldm');
    assert.match((await call(url, '/sdapi/v1/options')).body.sd_model_checkpoint, /^demo-sd1-tiny/);
    // The next request runs on the option's model again.
    assert.equal(infoOf((await call(url, '/sdapi/v1/txt2img', small)).body).sd_model_name, 'demo-sd1-tiny');

    const inpaintTitle = (await call(url, '/sdapi/v1/sd-models')).body.find((m: { model_name: string }) => m.model_name === 'sub_sd1-inpaint-ldm').title;
    assert.equal((await call(url, '/sdapi/v1/options', { sd_model_checkpoint: inpaintTitle })).status, 200);
    assert.match((await call(url, '/sdapi/v1/options')).body.sd_model_checkpoint, /^sub\/sd1-inpaint-ldm\.ckpt \[[0-9a-f]{10}\]$/);
    const refused = await call(url, '/sdapi/v1/txt2img', small);
    assert.equal(refused.status, 422);
    assert.match(refused.body.detail[0].msg, /inpainting model/);
    const init = await pngBase64(64, 64, [20, 180, 40]);
    const mask = await maskBase64(64, 64, { x: 16, y: 16, w: 32, h: 32 });
    const inpainted = await call(url, '/sdapi/v1/img2img', { ...small, init_images: [init], mask, denoising_strength: 1 });
    assert.equal(inpainted.status, 200, JSON.stringify(inpainted.body));
    assert.equal(infoOf(inpainted.body).is_using_inpainting_conditioning, true);

    assert.equal((await call(url, '/sdapi/v1/options', { sd_model_checkpoint: 'demo-sd1-tiny.gguf' })).status, 200);
    assert.equal((await call(url, '/sdapi/v1/options', { sd_model_checkpoint: 'no-such-model' })).status, 404);
    const missing = await call(url, '/sdapi/v1/txt2img', { ...small, override_settings: { sd_model_checkpoint: 'no-such-model' } });
    assert.equal(missing.status, 404);
    assert.match(missing.body.detail, /Model not found/);
  });

  test('refresh-checkpoints picks up new files', async () => {
    copyFileSync(join(tinyDir, 'sd2-v-ldm.safetensors'), join(modelsDir, 'added.safetensors'));
    assert.equal((await call(url, '/sdapi/v1/sd-models')).body.some((m: { model_name: string }) => m.model_name === 'added'), false);
    assert.equal((await call(url, '/sdapi/v1/refresh-checkpoints', {})).status, 200);
    assert.equal((await call(url, '/sdapi/v1/sd-models')).body.some((m: { model_name: string }) => m.model_name === 'added'), true);
  });
});

describe('the other endpoints', () => {
  test('png-info reads back what txt2img wrote', async () => {
    const { body } = await call(url, '/sdapi/v1/txt2img', { ...small, seed: 99, negative_prompt: 'dull, grey' });
    const { status, body: info } = await call(url, '/sdapi/v1/png-info', { image: `data:image/png;base64,${body.images[0]}` });
    assert.equal(status, 200);
    assert.equal(info.info, infoOf(body).infotexts[0]);
    assert.equal(info.parameters.Prompt, 'a red square');
    assert.equal(info.parameters['Negative prompt'], 'dull, grey');
    assert.equal(info.parameters.Seed, '99');
    assert.equal(info.parameters['Size-1'], '64');
    assert.deepEqual((await call(url, '/sdapi/v1/png-info', { image: await pngBase64(8, 8, [0, 0, 0]) })).body, { info: '', items: {}, parameters: {} });
  });

  test('lists: samplers and schedule types we run, the pixel upscalers, empty lists for what we do not have yet (LoRAs and embeddings without --lora-dir / --embedding-dir)', async () => {
    const samplers = (await call(url, '/sdapi/v1/samplers')).body.map((s: { name: string }) => s.name);
    for (const name of ['Euler a', 'Euler', 'DPM++ 2M Karras', 'DDIM', 'PLMS', 'LCM']) assert.ok(samplers.includes(name), name);
    const schedulers = (await call(url, '/sdapi/v1/schedulers')).body.map((s: { label: string }) => s.label);
    assert.deepEqual(schedulers, ['Automatic', 'Uniform', 'Karras', 'SGM Uniform', 'Simple', 'Normal', 'DDIM']);
    for (const list of ['loras', 'sd-vae', 'face-restorers', 'prompt-styles', 'realesrgan-models']) {
      assert.deepEqual((await call(url, `/sdapi/v1/${list}`)).body, [], list);
    }
    // Without --upscaler: A1111's pixel resizes only (test/server-hires.test.ts has a model).
    assert.deepEqual((await call(url, '/sdapi/v1/upscalers')).body.map((u: { name: string }) => u.name), ['None', 'Lanczos', 'Nearest']);
    assert.deepEqual((await call(url, '/sdapi/v1/embeddings')).body, { loaded: {}, skipped: {} });
  });

  test('memory reports the process', async () => {
    const { body } = await call(url, '/sdapi/v1/memory');
    assert.ok(body.ram.used > 10e6 && body.ram.total > body.ram.used);
    assert.deepEqual(body.cuda, { error: 'unavailable' });
  });

  test('the page and /sdnode/v1/info', async () => {
    const page = await fetch(`${url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type')!, /text\/html/);
    assert.match(await page.text(), /<title>sdnode<\/title>/);
    const { body } = await call(url, '/sdnode/v1/info');
    assert.equal(body.model.imageSize, 64);
    assert.equal(body.model.family, 'sd1');
    assert.equal(body.limits.side.max, 2048);
  });
});

describe('createServer and the Fastify plugin', () => {
  test('createServer gives a Node http.Server listening on 127.0.0.1 unless told otherwise', () => {
    assert.ok(server.server instanceof Server);
    const address = server.server.address() as AddressInfo;
    assert.equal(address.address, '127.0.0.1');
    assert.equal(url, `http://127.0.0.1:${address.port}`);
    assert.equal(typeof server.fastify.inject, 'function');
  });

  test('its options are checked before any model is loaded: unknown ones and wrong types are errors', async () => {
    const cases: [Record<string, unknown>, ErrorConstructor, RegExp][] = [
      [{ frobnicate: 1 }, TypeError, /Unknown option 'frobnicate'/],
      [{ model: 42 }, TypeError, /options\.model/],
      [{ queueSize: -1 }, RangeError, /options\.queueSize/],
      [{ queueSize: '4' }, TypeError, /options\.queueSize/],
      [{ apiAuth: 'nopassword' }, RangeError, /user:password/],
      [{ corsOrigin: [7] }, TypeError, /options\.corsOrigin\[0\]/],
      [{ bodyLimit: 10 }, RangeError, /options\.bodyLimit/],
      [{ page: 'yes' }, TypeError, /options\.page/],
      [{ modelsDir: join(tmp.dir, 'no-such-folder') }, RangeError, /options\.modelsDir/],
    ];
    for (const [options, type, message] of cases) {
      await assert.rejects(createServer({ model: DEMO, ...options } as never), (error: Error) => {
        assert.ok(error instanceof type, `${JSON.stringify(options)}: ${error}`);
        assert.match(error.message, message);
        return true;
      });
    }
    await assert.rejects(createServer(undefined as never), TypeError);
  });

  test('an existing Fastify app mounts it under a prefix and keeps its own routes, parsing and errors', async () => {
    const app = Fastify();
    app.get('/health', async () => ({ ok: true }));
    app.post('/echo', async (request) => request.body);
    app.setErrorHandler((error: Error, _request, reply) => void reply.code(418).send({ host: error.message }));
    app.get('/fails', async () => {
      throw new Error('the host app failed');
    });
    await app.register(sdnodeServer, { prefix: '/sd', model: DEMO, load: { backend: 'cpu', threads: 1 } });
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      const generated = await call(base, '/sd/sdapi/v1/txt2img', { ...small, seed: 4 });
      assert.equal(generated.status, 200, JSON.stringify(generated.body));
      assert.equal(generated.body.images.length, 1);
      const invalid = await call(base, '/sd/sdapi/v1/txt2img', { ...small, steps: 0 });
      assert.equal(invalid.status, 422);
      assert.deepEqual(invalid.body.detail[0].loc, ['body', 'steps']);
      // The host's routes, JSON parser and error handler are its own.
      assert.deepEqual((await call(base, '/health')).body, { ok: true });
      assert.deepEqual((await call(base, '/echo', { a: [1, 2] })).body, { a: [1, 2] });
      assert.equal((await call(base, '/echo', 'not json', { headers: { 'content-type': 'text/plain' } })).body, 'not json');
      const failed = await call(base, '/fails');
      assert.deepEqual([failed.status, failed.body], [418, { host: 'the host app failed' }]);
      assert.equal((await call(base, '/sdapi/v1/samplers')).status, 404, 'nothing outside the prefix');
      // The page lives at /sd/, so that its relative URLs resolve inside the prefix (the page suite drives it there).
      const bare = await fetch(`${base}/sd?x=1`, { redirect: 'manual' });
      assert.equal(bare.status, 302);
      assert.equal(bare.headers.get('location'), '/sd/?x=1');
      const page = await fetch(`${base}/sd/`);
      assert.equal(page.status, 200);
      const html = await page.text();
      assert.match(html, /src="app\.js"/);
      assert.equal((await fetch(`${base}/sd/app.js`)).status, 200);
      assert.equal((await fetch(`${base}/sd/style.css`)).status, 200);
    } finally {
      await app.close();
    }
    const other = Fastify();
    await assert.rejects(async () => {
      await other.register(sdnodeServer, { model: DEMO, queue: 3 } as never);
    }, /Unknown option 'queue'/);
    await other.close();
  });
});

describe('the safety checker', () => {
  // test/fixtures/goldens/safety-checker's txt2img case: its first image (seed 42) is flagged by
  // the tiny checker; the server makes each image of a batch alone with seed + i, so seed 42
  // alone is that image (test/safety-checker.test.ts checks the flags against diffusers).
  const golden = JSON.parse(readFileSync(join(tinyDir, '..', 'goldens', 'safety-checker', 'goldens.json'), 'utf8')).txt2img;
  let checked: Awaited<ReturnType<typeof startServer>>;
  before(async () => {
    checked = await startServer({ model: join(tinyDir, 'sd1-diffusers'), load: { safetyChecker: join(tinyDir, 'safety-checker', 'safety_checker') } });
  });
  after(() => checked?.close());

  test("info's nsfw_content_detected says which images were sent black", async () => {
    assert.equal(golden.nsfwContentDetected[0], true);
    const { status, body } = await call(checked.url, '/sdapi/v1/txt2img', {
      prompt: golden.prompt, negative_prompt: golden.negativePrompt, width: golden.width, height: golden.height, steps: golden.steps,
      sampler_name: 'PLMS', cfg_scale: golden.guidanceScale, seed: 42,
    });
    assert.equal(status, 200);
    assert.deepEqual(infoOf(body).nsfw_content_detected, [true]);
    assert.ok((await pixels(body.images[0])).data.every((v: number) => v === 0));
  });

  test('without a checker info has no nsfw_content_detected', async () => {
    const { body } = await call(url, '/sdapi/v1/txt2img', { ...small, seed: 1 });
    assert.equal('nsfw_content_detected' in infoOf(body), false);
  });
});
