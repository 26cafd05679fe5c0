// `sdnode serve` with LoRAs and textual-inversion embeddings (issues 17 and 18 together), on the
// tiny SD1 model and the LoRA fixtures: --lora-dir / --embedding-dir reach every model the server
// loads (a switch through /options included); /loras and /embeddings in A1111's shapes, and
// their refreshes; <lora:NAME:W> in a request's prompt applies to that job only, its hashes in
// the infotext; LoRA errors are 422s naming our error code, and the server keeps serving.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { embeddingHash, loraHash, readEmbeddingFile } from '../lib/index.js';
import { readPngText } from '../lib/png-parameters.js';
import { loraFixturesDir, tinyDir } from './helpers/goldens.js';
import { call, pixels, scratch, startServer } from './helpers/server.js';

const tmp = scratch('server-lora');
const loraDir = join(tmp.dir, 'loras');
const embeddingDir = join(tmp.dir, 'embeddings');
const modelsDir = join(tmp.dir, 'models');
for (const dir of [loraDir, embeddingDir, modelsDir]) mkdirSync(dir, { recursive: true });
for (const f of ['sd1-kohya.safetensors', 'sd1-loha.safetensors', 'sd2-kohya.safetensors']) copyFileSync(join(loraFixturesDir, f), join(loraDir, f));
for (const f of ['tinystyle.pt', 'cattoy.safetensors', 'wide.pt']) copyFileSync(join(loraFixturesDir, f), join(embeddingDir, f));
symlinkSync(join(tinyDir, 'sd1-ldm.safetensors'), join(modelsDir, 'sd1-ldm.safetensors'));
symlinkSync(join(tinyDir, 'sd1-ldm.gguf'), join(modelsDir, 'sd1-ldm.gguf'));

/** A safetensors file with one tensor and metadata (listing reads only the header). */
function writeNamedLora(path: string, metadata: Record<string, string>): void {
  let header = JSON.stringify({ __metadata__: metadata, 'lora_unet_x.alpha': { dtype: 'F32', shape: [], data_offsets: [0, 4] } });
  header += ' '.repeat((8 - (header.length % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(header)));
  writeFileSync(path, Buffer.concat([length, Buffer.from(header), Buffer.alloc(4)]));
}
writeNamedLora(join(loraDir, 'renamed.safetensors'), { ss_output_name: 'InkStyle', ss_tag_frequency: '{"ink": {"cat": 3}}' });

let url = '';
let close: () => Promise<void> = async () => {};
before(async () => {
  ({ url, close } = await startServer({ model: join(modelsDir, 'sd1-ldm.safetensors'), modelsDir, loraDir, embeddingDir }));
});
after(async () => {
  await close();
  tmp.dispose();
});

const small = { prompt: 'a red square', steps: 3, width: 32, height: 32, sampler_name: 'DDIM', cfg_scale: 5, seed: 7 };

function parametersOf(base64: string): string {
  return readPngText(Buffer.from(base64, 'base64')).parameters ?? '';
}

async function txt2img(fields: Record<string, unknown>): Promise<{ pixels: Buffer; infotext: string; info: Record<string, any> }> {
  const { status, body } = await call(url, '/sdapi/v1/txt2img', { ...small, ...fields });
  assert.equal(status, 200, JSON.stringify(body));
  return { pixels: (await pixels(body.images[0])).data, infotext: parametersOf(body.images[0]), info: JSON.parse(body.info) };
}

describe('lists', () => {
  test('GET /sdapi/v1/loras lists --lora-dir as A1111 does: name, alias, path, metadata', async () => {
    const { status, body } = await call(url, '/sdapi/v1/loras');
    assert.equal(status, 200);
    assert.deepEqual(body.map((l: { name: string }) => l.name), ['renamed', 'sd1-kohya', 'sd1-loha', 'sd2-kohya']);
    const kohya = body.find((l: { name: string }) => l.name === 'sd1-kohya');
    assert.deepEqual(kohya, { name: 'sd1-kohya', alias: 'sd1-kohya', path: join(loraDir, 'sd1-kohya.safetensors'), metadata: { ss_network_alpha: '2.0', ss_network_dim: '4' } });
    const renamed = body.find((l: { name: string }) => l.name === 'renamed');
    assert.equal(renamed.alias, 'InkStyle');
    assert.deepEqual(renamed.metadata.ss_tag_frequency, { ink: { cat: 3 } });
  });

  test('POST /sdapi/v1/refresh-loras lists files added since', async () => {
    copyFileSync(join(loraFixturesDir, 'sd1-lokr.safetensors'), join(loraDir, 'sd1-lokr.safetensors'));
    assert.equal((await call(url, '/sdapi/v1/loras')).body.some((l: { name: string }) => l.name === 'sd1-lokr'), false);
    const refresh = await call(url, '/sdapi/v1/refresh-loras', '');
    assert.equal(refresh.status, 200);
    assert.equal(refresh.body, null);
    assert.equal((await call(url, '/sdapi/v1/loras')).body.some((l: { name: string }) => l.name === 'sd1-lokr'), true);
  });

  test('GET /sdapi/v1/embeddings answers the loaded model\'s embeddings in A1111\'s shape, the unusable ones skipped', async () => {
    const width = (await readEmbeddingFile(join(embeddingDir, 'tinystyle.pt'))).shape[1];
    const wide = (await readEmbeddingFile(join(embeddingDir, 'wide.pt'))).shape;
    const { status, body } = await call(url, '/sdapi/v1/embeddings');
    assert.equal(status, 200);
    assert.deepEqual(body, {
      loaded: {
        cattoy: { step: null, sd_checkpoint: null, sd_checkpoint_name: null, shape: width, vectors: 1 },
        tinystyle: { step: 500, sd_checkpoint: '0123456789', sd_checkpoint_name: 'tiny', shape: width, vectors: 2 },
      },
      skipped: { wide: { step: null, sd_checkpoint: null, sd_checkpoint_name: null, shape: wide[1], vectors: wide[0] } },
    });
  });

  test('POST /sdapi/v1/refresh-embeddings makes the loaded model read --embedding-dir again', async () => {
    copyFileSync(join(loraFixturesDir, 'tinystyle2.safetensors'), join(embeddingDir, 'tinystyle2.safetensors'));
    assert.equal('tinystyle2' in (await call(url, '/sdapi/v1/embeddings')).body.loaded, false);
    const refresh = await call(url, '/sdapi/v1/refresh-embeddings', '');
    assert.equal(refresh.status, 200);
    assert.equal(refresh.body, null);
    assert.equal('tinystyle2' in (await call(url, '/sdapi/v1/embeddings')).body.loaded, true);
  });
});

describe('LoRAs and embeddings in a request', () => {
  test('<lora:NAME:W> applies to its job only; its infotext and info carry the tag and "Lora hashes"', async () => {
    const base = await txt2img({});
    const withLora = await txt2img({ prompt: 'a red square <lora:sd1-kohya:0.8>' });
    assert.notDeepEqual(withLora.pixels, base.pixels, 'the LoRA changes the image');
    const hash = await loraHash(join(loraDir, 'sd1-kohya.safetensors'));
    assert.match(withLora.infotext, /^a red square <lora:sd1-kohya:0\.8>\n/);
    assert.match(withLora.infotext, new RegExp(`, Lora hashes: "sd1-kohya: ${hash}"`));
    assert.equal(withLora.info.extra_generation_params['Lora hashes'], `sd1-kohya: ${hash}`);
    assert.equal(withLora.info.prompt, 'a red square <lora:sd1-kohya:0.8>');
    // The weight matters, and the next job without the tag is the base image exactly.
    assert.notDeepEqual((await txt2img({ prompt: 'a red square <lora:sd1-kohya:0.4>' })).pixels, withLora.pixels);
    const again = await txt2img({});
    assert.deepEqual(again.pixels, base.pixels);
    assert.doesNotMatch(again.infotext, /Lora hashes/);
    assert.deepEqual(again.info.extra_generation_params, {});
  });

  test('an embedding named in the prompt is used and its hash written as "TI hashes"', async () => {
    const plain = await txt2img({ prompt: 'a painting' });
    const styled = await txt2img({ prompt: 'a painting in tinystyle' });
    assert.notDeepEqual(styled.pixels, plain.pixels);
    const hash = await embeddingHash(join(embeddingDir, 'tinystyle.pt'));
    assert.match(styled.infotext, new RegExp(`, TI hashes: "tinystyle: ${hash}"`));
    assert.equal(styled.info.extra_generation_params['TI hashes'], `tinystyle: ${hash}`);
  });

  test('an unknown LoRA, a LoRA for SD 2.x and a weight that is not a number are 422s; the server keeps serving', async () => {
    const unknown = await call(url, '/sdapi/v1/txt2img', { ...small, prompt: 'a cat <lora:nope:1>' });
    assert.equal(unknown.status, 422);
    assert.deepEqual(unknown.body.detail[0].loc, ['body', 'prompt']);
    assert.equal(unknown.body.detail[0].type, 'ERR_LORA_NOT_FOUND');
    assert.match(unknown.body.detail[0].msg, /nope/);

    const sd2 = await call(url, '/sdapi/v1/txt2img', { ...small, prompt: 'a cat <lora:sd2-kohya:1>' });
    assert.equal(sd2.status, 422, JSON.stringify(sd2.body));
    assert.equal(sd2.body.detail[0].type, 'ERR_LORA_INCOMPATIBLE');
    assert.match(sd2.body.detail[0].msg, /sd2-kohya/);

    const weight = await call(url, '/sdapi/v1/txt2img', { ...small, prompt: 'a cat <lora:sd1-kohya:lots>' });
    assert.equal(weight.status, 422);
    assert.deepEqual(weight.body.detail[0].loc, ['body', 'prompt']);
    assert.match(weight.body.detail[0].msg, /lots/);

    await txt2img({});
  });
});

describe('model switches', () => {
  test('a model switched to through /sdapi/v1/options gets the LoRA and embedding folders too', async () => {
    assert.equal((await call(url, '/sdapi/v1/options', { sd_model_checkpoint: 'sd1-ldm.gguf' })).status, 200);
    assert.match((await call(url, '/sdapi/v1/options')).body.sd_model_checkpoint, /^sd1-ldm\.gguf/);
    assert.deepEqual(Object.keys((await call(url, '/sdapi/v1/embeddings')).body.loaded).sort(), ['cattoy', 'tinystyle', 'tinystyle2']);
    // The name resolves in the new model's loraDirs (without them it would be ERR_LORA_NOT_FOUND).
    const tagged = await txt2img({ prompt: 'a red square <lora:sd1-kohya:0.8>' });
    assert.match(tagged.infotext, /Model: sd1-ldm, Lora hashes: "sd1-kohya: [0-9a-f]{12}"/);
    assert.notDeepEqual(tagged.pixels, (await txt2img({})).pixels);
  });
});
