// Bad input to `sdnode serve`: wrong types, absurd sizes and step counts, unknown samplers,
// broken or non-image base64, a mask of another size, a body over the limit, malformed JSON,
// features we do not have. Each is a 4xx JSON error naming the field, and the server goes on.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { call, maskBase64, pngBase64, scratch, startServer } from './helpers/server.js';

const tmp = scratch('server-bad-input');
let url = '';
let close: () => Promise<void> = async () => {};
before(async () => {
  ({ url, close } = await startServer({ bodyLimit: 4 * 1024 * 1024 }));
});
after(async () => {
  await close();
  tmp.dispose();
});

const ok = { prompt: 'x', steps: 2, width: 64, height: 64, sampler_name: 'DDIM' };

/** A 422 whose detail names `loc` (['body', field, …]). */
async function expect422(path: string, body: unknown, loc: (string | number)[], msg?: RegExp): Promise<void> {
  const answer = await call(url, path, body);
  assert.equal(answer.status, 422, `${JSON.stringify(body).slice(0, 200)} → ${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`);
  assert.ok(Array.isArray(answer.body.detail), JSON.stringify(answer.body));
  const issue = answer.body.detail.find((d: { loc: unknown[] }) => JSON.stringify(d.loc) === JSON.stringify(loc));
  assert.ok(issue, `no issue at ${JSON.stringify(loc)} in ${JSON.stringify(answer.body.detail)}`);
  const field = loc.slice(1).filter((p) => typeof p === 'string').at(-1);
  if (field !== undefined) assert.ok(String(issue.msg).includes(String(field)), `the message names ${field}: ${issue.msg}`);
  if (msg) assert.match(issue.msg, msg);
}

async function stillServes(): Promise<void> {
  const { status, body } = await call(url, '/sdapi/v1/txt2img', ok);
  assert.equal(status, 200);
  assert.equal(body.images.length, 1);
}

test('wrong types name the field', async () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ prompt: 5 }, 'prompt'],
    [{ steps: '20' }, 'steps'],
    [{ width: true }, 'width'],
    [{ batch_size: 1.5 }, 'batch_size'],
    [{ seed: 'abc' }, 'seed'],
    [{ cfg_scale: '7' }, 'cfg_scale'],
    [{ negative_prompt: ['a'] }, 'negative_prompt'],
    [{ override_settings: 'x' }, 'override_settings'],
    [{ styles: 'a' }, 'styles'],
    [{ send_images: 'yes' }, 'send_images'],
  ];
  for (const [fields, field] of cases) await expect422('/sdapi/v1/txt2img', { ...ok, ...fields }, ['body', field], /must be/);
  await expect422('/sdapi/v1/txt2img', { ...ok, override_settings: { CLIP_stop_at_last_layers: 'two' } }, ['body', 'override_settings', 'CLIP_stop_at_last_layers']);
  await expect422('/sdapi/v1/img2img', { ...ok, init_images: 'aGVsbG8=' }, ['body', 'init_images']);
  await expect422('/sdapi/v1/img2img', { ...ok, init_images: [42] }, ['body', 'init_images', 0]);
  await stillServes();
});

test('absurd sizes, step counts and scales are out of range', async () => {
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ width: 100000 }, 'width', /at most 2048/],
    [{ height: -5 }, 'height', /at least 8/],
    [{ width: 0 }, 'width', /at least 8/],
    [{ steps: 0 }, 'steps', /at least 1/],
    [{ steps: 10000 }, 'steps', /at most 150/],
    [{ batch_size: 100 }, 'batch_size', /at most 8/],
    [{ n_iter: 0 }, 'n_iter', /at least 1/],
    [{ cfg_scale: 1000 }, 'cfg_scale', /at most 100/],
    [{ denoising_strength: 2 }, 'denoising_strength', /at most 1/],
    [{ seed: -2 }, 'seed', /at least -1/],
    [{ prompt: 'x'.repeat(20_001) }, 'prompt', /at most 20000 characters/],
  ];
  for (const [fields, field, msg] of cases) await expect422('/sdapi/v1/txt2img', { ...ok, ...fields }, ['body', field], msg);
  // Several wrong fields: each named.
  const both = await call(url, '/sdapi/v1/txt2img', { ...ok, width: 100000, steps: 0 });
  assert.deepEqual(both.body.detail.map((d: { loc: string[] }) => d.loc[1]).sort(), ['steps', 'width']);
  // img2img where strength × steps leaves no step.
  const init = await pngBase64(64, 64, [1, 2, 3]);
  await expect422('/sdapi/v1/img2img', { ...ok, steps: 1, init_images: [init], denoising_strength: 0.5 }, ['body'], /strength/);
  await stillServes();
});

test('unknown samplers and schedule types list the known ones', async () => {
  await expect422('/sdapi/v1/txt2img', { ...ok, sampler_name: 'Euler b' }, ['body', 'sampler_name'], /Euler a/);
  await expect422('/sdapi/v1/txt2img', { ...ok, sampler_name: undefined, sampler_index: 'DPM fast' }, ['body', 'sampler_index']);
  await expect422('/sdapi/v1/txt2img', { ...ok, scheduler: 'Exponential' }, ['body', 'scheduler'], /Karras/);
  await stillServes();
});

test('images: broken base64, not an image, URLs, a mask of another size, none at all', async () => {
  const init = await pngBase64(64, 64, [10, 20, 30]);
  const cases: [Record<string, unknown>, (string | number)[], RegExp][] = [
    [{ init_images: ['!!!not base64!!!'] }, ['body', 'init_images', 0], /not valid base64/],
    [{ init_images: [init, 'abc'] }, ['body', 'init_images', 1], /not an image/],
    [{ init_images: [Buffer.from('plain text, not a picture').toString('base64')] }, ['body', 'init_images', 0], /not an image/],
    [{ init_images: [`data:image/png;base64,${Buffer.from('GIF89a but no').toString('base64')}`] }, ['body', 'init_images', 0], /not an image/],
    [{ init_images: ['data:image/png,rawtext'] }, ['body', 'init_images', 0], /without base64/],
    [{ init_images: ['https://example.com/cat.png'] }, ['body', 'init_images', 0], /URL/],
    [{ init_images: [''] }, ['body', 'init_images', 0], /empty/],
    [{ init_images: [] }, ['body', 'init_images'], /at least one/],
    [{}, ['body', 'init_images'], /at least one/],
    [{ init_images: [init], mask: await maskBase64(32, 64, { x: 0, y: 0, w: 8, h: 8 }) }, ['body', 'mask'], /32×64 but init_images\[0\] is 64×64/],
    [{ init_images: [init], mask: 'Zm9v!' }, ['body', 'mask'], /base64/],
    [{ init_images: [init, await pngBase64(32, 32, [0, 0, 0])] }, ['body', 'init_images'], /same size/],
  ];
  for (const [fields, loc, msg] of cases) await expect422('/sdapi/v1/img2img', { ...ok, ...fields }, loc, msg);
  await expect422('/sdapi/v1/png-info', { image: 'not base64 at all!' }, ['body', 'image']);
  await stillServes();
});

test('features this server does not have are refused, not ignored', async () => {
  const cases: [Record<string, unknown>, (string | number)[]][] = [
    [{ enable_hr: true, hr_sampler_name: 'Euler a' }, ['body', 'hr_sampler_name']],
    [{ restore_faces: true }, ['body', 'restore_faces']],
    [{ alwayson_scripts: { controlnet: { args: [] } } }, ['body', 'alwayson_scripts']],
    [{ script_name: 'x/y/z plot' }, ['body', 'script_name']],
    [{ styles: ['cinematic'] }, ['body', 'styles']],
    [{ subseed_strength: 0.3 }, ['body', 'subseed_strength']],
    [{ override_settings: { sd_vae: 'vae-ft-mse.safetensors' } }, ['body', 'override_settings', 'sd_vae']],
  ];
  for (const [fields, loc] of cases) await expect422('/sdapi/v1/txt2img', { ...ok, ...fields }, loc, /not supported/);
  // The same fields at their defaults, as clients send them, are fine.
  const defaults = { enable_hr: false, restore_faces: false, alwayson_scripts: {}, script_name: null, styles: [], subseed_strength: 0, save_images: true, override_settings: { sd_vae: 'Automatic' } };
  assert.equal((await call(url, '/sdapi/v1/txt2img', { ...ok, ...defaults })).status, 200);
});

test('unknown fields are ignored, as A1111 ignores them', async () => {
  const { status, body } = await call(url, '/sdapi/v1/txt2img', { ...ok, url: 'http://localhost:7860', auth: '', frobnicate: { deep: [1, 2, 3] }, clip_skip: 'ignored' });
  assert.equal(status, 200);
  assert.equal(body.images.length, 1);
});

test('malformed JSON, non-object bodies and prototype keys are 422s', async () => {
  for (const text of ['{"prompt": "x"', '{"prompt": "x",}', 'prompt=x&steps=2', '{"steps": 01}', '\u0000']) {
    const answer = await call(url, '/sdapi/v1/txt2img', text, { headers: { 'content-type': 'application/json' } });
    assert.equal(answer.status, 422, text);
    assert.deepEqual(answer.body.detail[0].loc, ['body']);
    assert.match(answer.body.detail[0].msg, /not valid JSON/);
  }
  for (const value of [[], 'a string', null, 42]) {
    const answer = await call(url, '/sdapi/v1/txt2img', JSON.stringify(value), { headers: { 'content-type': 'application/json' } });
    assert.equal(answer.status, 422, JSON.stringify(value));
  }
  const empty = await call(url, '/sdapi/v1/txt2img', '', { headers: { 'content-type': 'application/json' } });
  assert.equal(empty.status, 422);
  const poisoned = await call(url, '/sdapi/v1/txt2img', '{"prompt":"x","__proto__":{"steps":1}}', { headers: { 'content-type': 'application/json' } });
  assert.equal(poisoned.status, 422);
  // JSON is read whatever the content type says (scripts send text/plain, curl -d a form type).
  for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
    assert.equal((await call(url, '/sdapi/v1/txt2img', JSON.stringify(ok), { headers: { 'content-type': type } })).status, 200, type);
  }
  await stillServes();
});

test('a body over the limit is 413, whether announced or streamed', async () => {
  const big = JSON.stringify({ ...ok, prompt: 'x', init_images: ['A'.repeat(50 * 1024 * 1024)] });
  const announced = await call(url, '/sdapi/v1/img2img', big, { headers: { 'content-type': 'application/json' } });
  assert.equal(announced.status, 413);
  assert.match(announced.body.detail, /larger than the server's limit of 4194304 bytes/);
  // Chunked, without a Content-Length: cut off at the limit.
  const chunks = (async function* () {
    for (let i = 0; i < 50; i++) yield new Uint8Array(1024 * 1024).fill(0x41);
  })();
  const streamed = await fetch(`${url}/sdapi/v1/img2img`, { method: 'POST', body: chunks as unknown as BodyInit, headers: { 'content-type': 'application/json' }, duplex: 'half' } as RequestInit);
  assert.equal(streamed.status, 413);
  await stillServes();
});

test('unknown routes are 404 with a JSON detail; other errors keep A1111\'s shape', async () => {
  const missing = await call(url, '/sdapi/v1/no-such-endpoint');
  assert.equal(missing.status, 404);
  assert.deepEqual(missing.body, { detail: 'Not Found' });
  const wrongMethod = await call(url, '/sdapi/v1/txt2img');
  assert.equal(wrongMethod.status, 404);
  const unknownModel = await call(url, '/sdapi/v1/options', { sd_model_checkpoint: 'nope.safetensors' });
  assert.equal(unknownModel.status, 404);
  assert.deepEqual(Object.keys(unknownModel.body).sort(), ['body', 'detail', 'error', 'errors']);
  await stillServes();
});
