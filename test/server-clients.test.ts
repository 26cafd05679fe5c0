// Real A1111 clients against `sdnode serve`: modelfusion's Automatic1111 image model (the npm
// package, unchanged), and replays of what SillyTavern and Open WebUI send, written into
// test/fixtures/clients/ from their sources, each handled the way the client handles it.
import assert from 'node:assert/strict';
import { readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { automatic1111, generateImage } from 'modelfusion';

import { packageRoot } from '../lib/native.js';
import { readPngText } from '../lib/png-parameters.js';
import { tinyDir } from './helpers/goldens.js';
import { call, DEMO, pixels, scratch, startServer } from './helpers/server.js';

const fixtures = join(packageRoot, 'test', 'fixtures', 'clients');
const sillyTavern = JSON.parse(readFileSync(join(fixtures, 'sillytavern.json'), 'utf8'));
const openWebUi = JSON.parse(readFileSync(join(fixtures, 'open-webui.json'), 'utf8'));
const step = (fixture: { requests: { name: string }[] }, name: string) => fixture.requests.find((r) => r.name === name) as unknown as { method: string; path: string; body?: any };

const tmp = scratch('server-clients');
const modelsDir = join(tmp.dir, 'models');
symlinkSync(join(tinyDir), modelsDir);

const servers: Record<'open' | 'auth', { url: string; close(): Promise<void> }> = {} as never;
before(async () => {
  servers.open = await startServer({ modelsDir });
  servers.auth = await startServer({ modelsDir, apiAuth: 'st:tavern,owui:webui' });
});
after(async () => {
  await servers.open?.close();
  await servers.auth?.close();
  tmp.dispose();
});

const isPng = (bytes: Uint8Array) => Buffer.from(bytes.subarray(0, 8)).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));

describe('modelfusion (npm, Automatic1111 provider)', () => {
  const api = () => automatic1111.Api({ baseUrl: `${servers.open.url}/sdapi/v1` });

  test('generateImage gets an image', async () => {
    const title = (await call(servers.open.url, '/sdapi/v1/options')).body.sd_model_checkpoint as string;
    const model = automatic1111.ImageGenerator({ api: api(), model: title, steps: 3, width: 64, height: 64, cfgScale: 7, sampler: 'Euler a', seed: 12 }).withTextPrompt();
    const { image, imagesBase64, rawResponse } = await generateImage({ model, prompt: 'a lighthouse at night', fullResponse: true });
    assert.ok(isPng(image));
    assert.equal(imagesBase64.length, 1);
    assert.match(readPngText(image).parameters!, /^a lighthouse at night\nSteps: 3, Sampler: Euler a, CFG scale: 7, Seed: 12, Size: 64x64/);
    assert.equal(JSON.parse((rawResponse as { info: string }).info).seed, 12);
  });

  test('numberOfGenerations is a batch; no model name means the loaded one', async () => {
    // Its types ask for a model name; JavaScript callers can leave it out (override_settings is then {}).
    const model = automatic1111.ImageGenerator({ api: api(), model: undefined as unknown as string, steps: 2, width: 64, height: 64, numberOfGenerations: 2 }).withTextPrompt();
    const { images } = await generateImage({ model, prompt: 'two foxes', fullResponse: true });
    assert.equal(images.length, 2);
    assert.ok(images.every(isPng));
  });

  test('errors reach the caller with the server\'s message', async () => {
    const model = automatic1111.ImageGenerator({ api: api(), model: 'no-such-model.safetensors', steps: 2, width: 64, height: 64 }).withTextPrompt();
    await assert.rejects(generateImage({ model, prompt: 'x' }), /Model not found/);
  });
});

/** SillyTavern's calls, as its server-side proxy makes them. */
async function replaySillyTavern(url: string, auth: string): Promise<void> {
  const headers = { Authorization: `Basic ${Buffer.from(auth).toString('base64')}` };
  const get = async (name: string) => {
    const { status, body } = await call(url, step(sillyTavern, name).path, undefined, { headers });
    assert.equal(status, 200, `${name}: ${JSON.stringify(body)}`);
    return body;
  };
  await get('ping');
  const upscalers = [...(await get('upscalers')), ...(await get('latent upscalers'))].map((x: { name: string }) => x.name);
  assert.deepEqual(upscalers, ['None', 'Lanczos', 'Nearest', 'Latent', 'Latent (antialiased)', 'Latent (bicubic)', 'Latent (bicubic antialiased)', 'Latent (nearest)', 'Latent (nearest-exact)']);
  assert.deepEqual((await get('vaes')).map((x: { model_name: string }) => x.model_name), []);
  const samplers = (await get('samplers')).map((x: { name: string }) => x.name);
  assert.ok(samplers.includes(step(sillyTavern, 'generate').body.sampler_name));
  const schedulers = (await get('schedulers')).map((x: { name: string }) => x.name);
  assert.ok(schedulers.includes(step(sillyTavern, 'generate').body.scheduler));
  const models = (await get('models')).map((x: { title: string }) => ({ value: x.title, text: x.title }));
  const current = (await get('get-model')).sd_model_checkpoint;
  assert.ok(models.some((m: { value: string }) => m.value === current));

  // set-model: switch to another checkpoint, then wait as SillyTavern waits.
  const other = models.find((m: { value: string }) => m.value.startsWith('sd1-ldm.safetensors'))!.value;
  const set = await call(url, step(sillyTavern, 'set-model').path, { sd_model_checkpoint: other }, { headers });
  assert.equal(set.status, 200);
  let idle = false;
  for (let attempt = 0; attempt < 10 && !idle; attempt++) {
    const { body } = await call(url, '/sdapi/v1/progress', undefined, { headers });
    idle = body.progress === 0 && body.state.job_count === 0;
    if (!idle) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.ok(idle);
  assert.equal((await get('get-model')).sd_model_checkpoint.startsWith('sd1-ldm.safetensors'), true);

  // generate: the extension's body as the proxy forwards it, with the user's size and steps.
  const body = { ...step(sillyTavern, 'generate').body, url, auth, width: 64, height: 64, steps: 4 };
  const { status, body: data } = await call(url, '/sdapi/v1/txt2img', body, { headers });
  assert.equal(status, 200, JSON.stringify(data));
  const image = { format: 'png', data: data.images[0] as string };
  assert.ok(isPng(Buffer.from(image.data, 'base64')));
  assert.match(readPngText(Buffer.from(image.data, 'base64')).parameters!, /Sampler: DDIM, .*Model: sd1-ldm, Schedule type: Normal/);

  // Back to where it was, as a user switching models would.
  assert.equal((await call(url, '/sdapi/v1/options', { sd_model_checkpoint: current }, { headers })).status, 200);
}

/** Open WebUI's calls, as its images router makes them. */
async function replayOpenWebUi(url: string, apiAuth: string | undefined): Promise<void> {
  const headers = { authorization: apiAuth === undefined ? '' : `Basic ${Buffer.from(apiAuth).toString('base64')}` };
  assert.equal((await call(url, step(openWebUi, 'verify url').path, undefined, { headers })).status, 200);
  const models = (await call(url, step(openWebUi, 'models').path, undefined, { headers })).body.map((m: { title: string; model_name: string }) => ({ id: m.title, name: m.model_name }));
  assert.ok(models.length >= 2);

  // set_image_model: GET the options, and if the model differs, send the whole object back with it replaced.
  const setImageModel = async (model: string) => {
    const options = (await call(url, step(openWebUi, 'image model').path, undefined, { headers })).body;
    if (model === options.sd_model_checkpoint) return;
    const posted = await call(url, step(openWebUi, 'set image model').path, { ...options, sd_model_checkpoint: model }, { headers });
    assert.equal(posted.status, 200, JSON.stringify(posted.body));
  };
  const demo = models.find((m: { name: string }) => m.name === 'demo-sd1-tiny').id;
  const other = models.find((m: { name: string }) => m.name === 'sd1-ldm').id;
  // (A title gains " [hash]" once its file is hashed, as in A1111: compare the names.)
  const nameOf = (title: string) => title.replace(/ \[[0-9a-f]+\]$/, '');
  await setImageModel(other);
  assert.equal(nameOf((await call(url, '/sdapi/v1/options', undefined, { headers })).body.sd_model_checkpoint), nameOf(other));
  await setImageModel(demo);
  assert.equal(nameOf((await call(url, '/sdapi/v1/options', undefined, { headers })).body.sd_model_checkpoint), nameOf(demo));

  for (const name of ['generate', 'generate with steps, negative prompt, n and AUTOMATIC1111_PARAMS']) {
    const body = { ...step(openWebUi, name).body, width: 64, height: 64, ...(step(openWebUi, name).body.steps !== undefined && { steps: 4 }) };
    const res = await call(url, '/sdapi/v1/txt2img', body, { headers });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.images.length, body.batch_size);
    for (const image of res.body.images as string[]) {
      // get_image_data: no comma, so plain base64 of a PNG.
      assert.ok(!image.includes(','));
      assert.ok(isPng(Buffer.from(image, 'base64')));
    }
    assert.equal(typeof JSON.parse(res.body.info).seed, 'number');
  }
}

describe('SillyTavern replay', () => {
  test('without --api-auth (an empty auth setting still sends "Basic ")', async () => {
    await replaySillyTavern(servers.open.url, '');
  });
  test('with --api-auth', async () => {
    await replaySillyTavern(servers.auth.url, 'st:tavern');
    const denied = await call(servers.auth.url, '/sdapi/v1/options', undefined, { headers: { Authorization: `Basic ${Buffer.from('').toString('base64')}` } });
    assert.equal(denied.status, 401);
  });
  test('a closed request and the interrupt the proxy sends stop the job', async () => {
    const url = servers.open.url;
    const controller = new AbortController();
    const body = { ...step(sillyTavern, 'generate').body, width: 128, height: 128, steps: 150 };
    const pending = call(url, '/sdapi/v1/txt2img', body, { signal: controller.signal }).catch((e: Error) => e);
    for (let i = 0; i < 500 && (await call(url, '/sdapi/v1/progress?skip_current_image=true')).body.state.sampling_step < 1; i++) await new Promise((r) => setTimeout(r, 20));
    // request.socket 'close' → POST /interrupt, then abort.
    await call(url, '/sdapi/v1/interrupt', undefined, { method: 'POST', headers: { Authorization: 'Basic ' } });
    controller.abort();
    assert.equal(((await pending) as Error).name, 'AbortError');
    for (let i = 0; i < 500 && (await call(url, '/sdapi/v1/progress?skip_current_image=true')).body.state.job_count !== 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal((await call(url, '/sdapi/v1/progress')).body.state.job_count, 0);
  });
});

describe('Open WebUI replay', () => {
  test('without auth (an empty authorization header)', async () => {
    await replayOpenWebUi(servers.open.url, undefined);
  });
  test('with AUTOMATIC1111_API_AUTH', async () => {
    await replayOpenWebUi(servers.auth.url, 'owui:webui');
  });
});

test('the demo model is what the open server started with', async () => {
  const { body } = await call(servers.open.url, '/sdapi/v1/sd-models');
  assert.ok(body.some((m: { filename: string }) => m.filename === DEMO));
  const image = await pixels((await call(servers.open.url, '/sdapi/v1/txt2img', { prompt: 'x', steps: 2 })).body.images[0]);
  assert.deepEqual([image.width, image.height], [64, 64], 'the model\'s own size by default');
});
