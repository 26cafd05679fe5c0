// The web page of `sdnode serve` in a real browser: playwright-core driving Debian's chromium
// (`apt-get install chromium`; never a downloaded browser), headless, against a server with
// --api-auth. Fill the form, generate on the demo model, watch progress and a preview arrive,
// get the image in the gallery and download it with its parameters; inpaint with a mask drawn
// on the page; see the server's errors on the page; and a browser without credentials gets 401.
// Without chromium the suite skips, unless CI=true or SDNODE_REQUIRE_BROWSER=1.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import Fastify from 'fastify';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import sharp from 'sharp';

import { sdnodeServer } from '../lib/index.js';
import { readPngText } from '../lib/png-parameters.js';
import { loraFixturesDir } from './helpers/goldens.js';
import { DEMO, scratch, startServer } from './helpers/server.js';

const CHROMIUM = process.env.SDNODE_CHROMIUM ?? '/usr/bin/chromium';
const required = process.env.CI === 'true' || process.env.SDNODE_REQUIRE_BROWSER === '1';
const missing = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (apt-get install chromium)`;
if (missing && required) throw new Error(`The page suite needs a browser: ${missing}`);

const credentials = { username: 'painter', password: 'brush-2024' };

describe('the web page', { skip: missing }, () => {
  const tmp = scratch('server-page');
  let url = '';
  let close: () => Promise<void> = async () => {};
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  before(async () => {
    ({ url, close } = await startServer({ apiAuth: `${credentials.username}:${credentials.password}` }));
    // launch() gives the browser a fresh, temporary profile (user-data dir) of its own.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    });
    context = await browser.newContext({ httpCredentials: credentials, acceptDownloads: true, viewport: { width: 1180, height: 860 } });
    page = await context.newPage();
    await page.goto(url);
    await page.waitForSelector('body[data-ready="true"]');
  });
  after(async () => {
    await browser?.close();
    await close();
    tmp.dispose();
  });

  test('starts with the server\'s samplers, schedule types, models and the model\'s size', async () => {
    const samplers = await page.locator('#sampler option').allTextContents();
    assert.ok(samplers.includes('Euler a') && samplers.includes('DPM++ 2M Karras'));
    assert.equal(await page.locator('#sampler').inputValue(), 'Euler a');
    assert.ok((await page.locator('#scheduler option').allTextContents()).includes('Karras'));
    assert.deepEqual(await page.locator('#model option').allTextContents(), ['demo-sd1-tiny']);
    assert.equal(await page.locator('#width').inputValue(), '64');
    assert.equal(await page.locator('#lora-field').isHidden(), true, 'no --lora-dir: no LoRA picker');
  });

  test('with --lora-dir, picking a LoRA adds its tag to the prompt', async () => {
    const loraDir = join(tmp.dir, 'loras');
    mkdirSync(loraDir, { recursive: true });
    for (const f of ['sd1-kohya.safetensors', 'sd1-loha.safetensors']) copyFileSync(join(loraFixturesDir, f), join(loraDir, f));
    const withLoras = await startServer({ loraDir });
    const other = await browser.newContext();
    try {
      const p = await other.newPage();
      await p.goto(withLoras.url);
      await p.waitForSelector('body[data-ready="true"]');
      assert.equal(await p.locator('#lora-field').isVisible(), true);
      assert.deepEqual(await p.locator('#lora option').allTextContents(), ['2 LoRAs…', 'sd1-kohya', 'sd1-loha']);
      await p.fill('#prompt', 'a boat');
      await p.selectOption('#lora', 'sd1-loha');
      assert.equal(await p.locator('#prompt').inputValue(), 'a boat <lora:sd1-loha:1>');
      assert.equal(await p.locator('#lora').inputValue(), '');
    } finally {
      await other.close();
      await withLoras.close();
    }
  });

  /** Types each value into the field with that id. */
  async function fillIn(values: Record<string, string>): Promise<void> {
    for (const [id, value] of Object.entries(values)) await page.fill(`#${id}`, value);
  }

  test('fill the form, generate, see progress and the image, download it with its parameters', async () => {
    await fillIn({ prompt: 'a small red boat on a green lake', negative: 'fog', steps: '40', cfg: '6.5', width: '192', height: '128', seed: '1234' });
    await page.selectOption('#sampler', 'DPM++ 2M');
    await page.selectOption('#scheduler', 'Karras');
    await page.click('#generate');
    // While it runs: the buttons switch, the bar moves and a preview of the latents shows.
    await page.waitForSelector('#interrupt:not([disabled])');
    await page.waitForFunction(() => (document.getElementById('progress') as HTMLProgressElement).value > 0.02);
    await page.waitForSelector('#preview[src^="data:image/png;base64,"]');
    assert.match(await page.locator('#progress-text').textContent() ?? '', /image 1\/1, step \d+\/40|done/);

    const figure = page.locator('figure.result').first();
    await figure.waitFor();
    const infotext = await figure.locator('pre.infotext').textContent();
    assert.match(infotext!, /^a small red boat on a green lake\nNegative prompt: fog\nSteps: 40, Sampler: DPM\+\+ 2M Karras, CFG scale: 6\.5, Seed: 1234, Size: 192x128/);
    assert.equal(await page.locator('#generate').isDisabled(), false);
    assert.match(await page.locator('#progress-text').textContent() ?? '', /done: 1 image/);

    const [download] = await Promise.all([page.waitForEvent('download'), figure.locator('a.download').click()]);
    assert.equal(download.suggestedFilename(), 'sdnode-1234.png');
    const file = join(tmp.dir, 'download.png');
    await download.saveAs(file);
    const png = readFileSync(file);
    assert.equal(readPngText(png).parameters, infotext);
    const meta = await sharp(png).metadata();
    assert.deepEqual([meta.width, meta.height], [192, 128]);
    if (process.env.SDNODE_SCREENSHOT) await page.screenshot({ path: process.env.SDNODE_SCREENSHOT });
  });

  test('a batch fills the gallery, one image per seed', async () => {
    const before = await page.locator('figure.result').count();
    await fillIn({ steps: '3', width: '64', height: '64', seed: '500', batch: '2' });
    await page.click('#generate');
    await page.waitForFunction((n) => document.querySelectorAll('figure.result').length === n + 2, before);
    const captions = await page.locator('figure.result pre.infotext').allTextContents();
    assert.match(captions[0]!, /Seed: 501/);
    assert.match(captions[1]!, /Seed: 500/);
    await page.fill('#batch', '1');
  });

  test('inpaint: upload an image, draw a mask on it, repaint only there', async () => {
    const input = join(tmp.dir, 'input.png');
    await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 30, g: 90, b: 200 } } }).png().toFile(input);
    await page.click('#mode-inpaint');
    await page.setInputFiles('#init-file', input);
    await page.waitForSelector('#mask-canvas:not([hidden])');
    await page.waitForSelector('#mask-tools:not([hidden])');
    // A stroke across the middle of the picture.
    const box = (await page.locator('#mask-canvas').boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.5);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.7, box.y + box.height * 0.5, { steps: 8 });
    await page.mouse.up();
    await fillIn({ 'mask-blur': '0', strength: '1', steps: '4' });
    const count = await page.locator('figure.result').count();
    await page.click('#generate');
    await page.waitForFunction((n) => document.querySelectorAll('figure.result').length === n + 1, count);
    const figure = page.locator('figure.result').first();
    assert.match((await figure.locator('pre.infotext').textContent())!, /Denoising strength: 1/);
    const [download] = await Promise.all([page.waitForEvent('download'), figure.locator('a.download').click()]);
    const file = join(tmp.dir, 'inpainted.png');
    await download.saveAs(file);
    const { data } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const at = (x: number, y: number) => [...data.subarray((y * 64 + x) * 3, (y * 64 + x) * 3 + 3)];
    assert.deepEqual(at(2, 2), [30, 90, 200], 'outside the stroke: the original');
    assert.notDeepEqual(at(32, 32), [30, 90, 200], 'on the stroke: repainted');
    await page.click('#mode-txt2img');
  });

  test('the server\'s validation errors show on the page', async () => {
    await page.fill('#steps', '0');
    await page.click('#generate');
    await page.waitForSelector('#error:not([hidden])');
    assert.match((await page.locator('#error').textContent())!, /steps must be at least 1/);
    await page.fill('#steps', '3');
  });

  test('without credentials the page and its API calls are 401', async () => {
    const anonymous = await browser.newContext();
    for (const path of ['/', '/app.js', '/sdapi/v1/samplers']) {
      const response = await anonymous.request.get(url + path);
      assert.equal(response.status(), 401, path);
      assert.match(response.headers()['www-authenticate'] ?? '', /^Basic/);
    }
    await anonymous.close();
    // The page's own calls carry the browser's credentials; the same call without them is refused.
    const statuses = await page.evaluate(async () => [
      (await fetch('/sdapi/v1/samplers')).status,
      (await fetch('/sdapi/v1/samplers', { credentials: 'omit' })).status,
      (await fetch('/sdapi/v1/txt2img', { method: 'POST', credentials: 'omit', body: '{}' })).status,
    ]);
    assert.deepEqual(statuses, [200, 401, 401]);
  });

  test('mounted in another Fastify app under a prefix, the page works there', async () => {
    const app = Fastify();
    await app.register(sdnodeServer, { prefix: '/images', model: DEMO, load: { backend: 'cpu', threads: 1 } });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const other = await browser.newContext();
    try {
      const mounted = await other.newPage();
      const calls: string[] = [];
      mounted.on('request', (request) => {
        const requested = new URL(request.url());
        if (requested.protocol === 'http:') calls.push(requested.pathname);
      });
      await mounted.goto(`${app.listeningOrigin}/images`);
      await mounted.waitForSelector('body[data-ready="true"]');
      assert.equal(new URL(mounted.url()).pathname, '/images/');
      await mounted.fill('#prompt', 'a blue kite');
      await mounted.fill('#steps', '2');
      await mounted.click('#generate');
      await mounted.locator('figure.result').first().waitFor();
      assert.match((await mounted.locator('figure.result pre.infotext').first().textContent())!, /^a blue kite\nSteps: 2,/);
      assert.ok(calls.includes('/images/sdapi/v1/txt2img'), calls.join(' '));
      assert.deepEqual(calls.filter((path) => !path.startsWith('/images/')), ['/images'], 'every call but the first (redirected) stays under the prefix');
    } finally {
      await other.close();
      await app.close();
    }
  });
});
