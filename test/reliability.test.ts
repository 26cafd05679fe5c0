// Found by probing the build with hostile arguments and files (issue 21), each kept as a
// regression test: a FIFO as a model, aborting a load, a model file truncated or overwritten
// while in use, out-of-range numbers in a model's own metadata and configs, non-finite tensors,
// a prompt longer than the UNet takes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';

import {
  AbortError, convertModel, inspectModelFile, readModelTensor, StableDiffusion, Tensor, writeGgufFile,
} from '../lib/index.js';
import { packageRoot } from '../lib/native.js';
import { runChildScript } from './helpers/child-script.js';

const tiny = join(packageRoot, 'test', 'fixtures', 'tiny');
const model = join(tiny, 'sd1-diffusers');
const dir = mkdtempSync(join(tmpdir(), 'sdnode-reliability-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('a FIFO given as a model', () => {
  test('load and inspectModel refuse it at once, and the process can still exit', () => {
    const fifo = join(dir, 'model.safetensors');
    const made = spawnSync('mkfifo', [fifo]);
    assert.equal(made.status, 0, `mkfifo failed: ${made.stderr}`);
    // In a child: before the fix, open() waited for a writer for ever and so did process exit.
    const index = pathToFileURL(join(packageRoot, 'lib', 'index.ts')).href;
    const script = `
      import { StableDiffusion, inspectModel } from ${JSON.stringify(index)};
      const codes = [];
      for (const call of [() => StableDiffusion.load({ model: ${JSON.stringify(fifo)} }), () => inspectModel(${JSON.stringify(fifo)})]) {
        try { await call(); codes.push('loaded'); } catch (e) { codes.push(e.code + ': ' + e.message); }
      }
      console.log(JSON.stringify(codes));`;
    const codes = runChildScript<string[]>(script, 60_000);
    assert.equal(codes.length, 2);
    for (const line of codes) assert.match(line, /^ERR_FILE_READ: Cannot read .*model\.safetensors: not a regular file$/);
  });
});

describe('a model file changed while in use', () => {
  const options = { prompt: 'a red cube', steps: 1, seed: 3, width: 64, height: 64 };

  test('with offload, a file written to in place or truncated is ERR_FILE_CHANGED, not other weights or SIGBUS', async () => {
    for (const change of ['overwrite', 'truncate'] as const) {
      const path = join(dir, `offload-${change}.gguf`);
      copyFileSync(join(tiny, 'sd1-ldm.gguf'), path);
      const sd = await StableDiffusion.load({ model: path, offload: true });
      const before = await sd.txt2img(options);
      if (change === 'overwrite') {
        // Same size, other bytes near the end (weights, not the header).
        const fd = openSync(path, 'r+');
        writeSync(fd, Buffer.alloc(4096, 0x7f), 0, 4096, readFileSync(path).length - 8192);
        closeSync(fd);
      } else {
        truncateSync(path, 4096);
      }
      for (let attempt = 0; attempt < 2; attempt++) {
        await assert.rejects(sd.txt2img(options), (e: Error & { code?: string; path?: string }) => {
          assert.equal(e.code, 'ERR_FILE_CHANGED', e.message);
          assert.equal(e.path, path);
          assert.match(e.message, change === 'overwrite' ? /changed on disk since it was loaded \(it was written to\); load the model again$/
            : /changed on disk since it was loaded \(its size went from \d+ to 4096 bytes\)/);
          return true;
        });
      }
      assert.ok(before.latents.data.every(Number.isFinite));
      await sd.dispose();
    }
  });

  test('without offload the weights were read at load: changing the file afterwards changes nothing', async () => {
    const path = join(dir, 'resident.gguf');
    copyFileSync(join(tiny, 'sd1-ldm.gguf'), path);
    const sd = await StableDiffusion.load({ model: path });
    const before = await sd.txt2img(options);
    truncateSync(path, 4096);
    const after = await sd.txt2img(options);
    assert.deepEqual(after.latents.data, before.latents.data);
    await sd.dispose();
  });

  test('a file truncated during a read is ERR_FILE_READ, and the process lives', () => {
    // A 256 MB tensor takes long enough to copy that a truncation from the main thread lands
    // inside the copy on the worker; before the guard, the SIGBUS killed the process.
    const index = pathToFileURL(join(packageRoot, 'lib', 'index.ts')).href;
    const path = join(dir, 'big.gguf');
    const script = `
      import { truncateSync } from 'node:fs';
      import { readModelTensor, Tensor, writeGgufFile } from ${JSON.stringify(index)};
      // The delay adapts: a truncation before the read starts is ERR_MODEL_FORMAT (the header
      // says more than the file holds), one after it ends changes nothing.
      const outcomes = [];
      let delay = 2;
      for (let attempt = 0; attempt < 10 && !outcomes.some((o) => o.startsWith('ERR_FILE_READ')); attempt++) {
        await writeGgufFile(${JSON.stringify(path)}, [{ name: 'big', tensor: new Tensor([64, 1024, 1024]) }], { type: 'f32' });
        const reading = readModelTensor(${JSON.stringify(path)}, 'big');
        setTimeout(() => truncateSync(${JSON.stringify(path)}, 4096), delay);
        try { await reading; outcomes.push('read'); delay = Math.max(0, delay / 2); } catch (e) {
          outcomes.push(e.code + ': ' + e.message);
          if (e.code === 'ERR_MODEL_FORMAT') delay = delay * 2 + 5;
        }
      }
      console.log(JSON.stringify(outcomes));`;
    const outcomes = runChildScript<string[]>(script, 240_000);
    for (const outcome of outcomes) {
      if (outcome === 'read' || outcome.startsWith('ERR_MODEL_FORMAT: ')) continue;
      assert.match(outcome, /^ERR_FILE_READ: Cannot read .*big\.gguf: the file was truncated while it was in use$/);
    }
    assert.ok(outcomes.some((o) => o.startsWith('ERR_FILE_READ')), `no truncation landed inside a read: ${outcomes.join(', ')}`);
  });
});

describe('load with a signal', () => {
  test('an aborted signal, or one aborted during the load, rejects with an AbortError', async () => {
    const aborted = AbortSignal.abort(new Error('user gave up'));
    await assert.rejects(StableDiffusion.load({ model, signal: aborted }), (e: AbortError) => {
      assert.ok(e instanceof AbortError);
      assert.equal(e.code, 'ABORT_ERR');
      assert.equal((e.cause as Error).message, 'user gave up');
      return true;
    });
    const controller = new AbortController();
    const loading = StableDiffusion.load({ model, signal: controller.signal });
    controller.abort();
    await assert.rejects(loading, { name: 'AbortError', code: 'ABORT_ERR', message: 'The load was aborted' });
    await assert.rejects(StableDiffusion.load({ model, signal: 'stop' as never }), {
      name: 'TypeError', message: 'Expected options.signal to be an AbortSignal but received "stop"',
    });
    // A signal that never aborts changes nothing.
    const sd = await StableDiffusion.load({ model, signal: new AbortController().signal });
    assert.equal(sd.info.family, 'sd1');
    await sd.dispose();
  });
});

describe("numbers in a model's own metadata and configs", () => {
  let source: string;
  let tensors: { name: string; tensor: Tensor }[];
  let metadata: Record<string, string>;

  before(async () => {
    source = join(dir, 'sd1.f32.gguf');
    await convertModel(model, source, { weightType: 'f32' });
    const info = await inspectModelFile(source);
    metadata = info.metadata;
    tensors = await Promise.all(info.tensors.map(async (t) => ({ name: t.name, tensor: await readModelTensor(source, t.name) })));
  });

  async function withMetadata(changes: Record<string, string>): Promise<string> {
    const path = join(dir, `edited-${Object.keys(changes).join('-')}-${Object.values(changes).join('-').replace(/[^\w.-]/g, '_')}.gguf`);
    await writeGgufFile(path, tensors, { type: 'f32', metadata: { ...metadata, ...changes } });
    return path;
  }

  test('the file as written loads with its own scaling factor', async () => {
    const sd = await StableDiffusion.load({ model: await withMetadata({}) });
    assert.equal(sd.vae.scalingFactor, Number(metadata['sdnode.vae.scaling_factor']));
    await sd.dispose();
  });

  const cases: [string, string, RegExp][] = [
    ['sdnode.vae.scaling_factor', '1e999', /expected a number between 0\.0001 and 100/],
    ['sdnode.vae.scaling_factor', 'nan', /expected a number between/],
    ['sdnode.vae.scaling_factor', '-0.18', /expected a number between/],
    ['sdnode.vae.scaling_factor', '0.18215abc', /expected a number between/],
    ['sdnode.image_size', '12', /expected an integer between 64 and 16384/],
    ['sdnode.image_size', '99999999999999999999', /expected an integer between 64 and 16384/],
    ['sdnode.text_encoder.layers_used', '99', /expected an integer between 1 and \d+/],
    ['sdnode.text_encoder.heads', '0', /expected an integer between 1 and 4096/],
    ['sdnode.unet.heads', '8,x', /expected \d+ comma-separated integers between 1 and 4096/],
    ['sdnode.unet.heads', '8', /expected \d+ comma-separated integers/],
  ];
  for (const [key, value, message] of cases) {
    test(`${key} = "${value}" is ERR_MODEL_FORMAT naming the key`, async () => {
      const path = await withMetadata({ [key]: value });
      await assert.rejects(StableDiffusion.load({ model: path }), (e: Error & { code?: string; path?: string }) => {
        assert.equal(e.code, 'ERR_MODEL_FORMAT');
        assert.equal(e.path, path);
        assert.ok(e.message.includes(`metadata ${key} is "${value}"`), e.message);
        assert.match(e.message, message);
        return true;
      });
    });
  }

  test('a diffusers config with a number out of range is ERR_MODEL_FORMAT', async () => {
    for (const [file, key, value, message] of [
      ['vae/config.json', 'scaling_factor', '1e999', /: number out of range at byte \d+$/], // JSON's own limit
      ['vae/config.json', 'scaling_factor', '1e300', /has scaling_factor 1e\+300; expected a number between 0\.0001 and 100$/],
      ['vae/config.json', 'scaling_factor', '-1', /has scaling_factor -1; expected a number between/],
      ['vae/config.json', 'scaling_factor', '"big"', /has scaling_factor a string; expected a number between/],
      ['text_encoder/config.json', 'layer_norm_eps', '2', /has layer_norm_eps 2; expected a number between 1e-12 and 0\.1$/],
    ] as const) {
      const folder = join(dir, `diffusers-${key}-${value.replace(/\W/g, '_')}`);
      cpSync(model, folder, { recursive: true });
      const config = join(folder, file);
      const text = readFileSync(config, 'utf8');
      const edited = text.replace(new RegExp(`"${key}":\\s*[^,}\\n]+`), `"${key}": ${value}`);
      assert.notEqual(edited, text, `${file} has no ${key}`);
      writeFileSync(config, edited);
      await assert.rejects(StableDiffusion.load({ model: folder }), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'ERR_MODEL_FORMAT');
        assert.ok(e.message.includes(file), e.message);
        assert.match(e.message, message);
        return true;
      });
    }
  });
});

describe('non-finite tensors and over-long prompts', () => {
  let sd: StableDiffusion;
  before(async () => {
    sd = await StableDiffusion.load({ model });
  });
  after(() => sd.dispose());

  function withValue(shape: number[], index: number, value: number): Tensor {
    const t = new Tensor(shape);
    t.data.fill(0.25);
    t.data[index] = value;
    return t;
  }

  test('NaN or ±Infinity in a tensor argument is a RangeError naming the argument and element', async () => {
    const context = new Tensor([1, 77, sd.unet.contextDim]);
    const sample = new Tensor([1, 4, 8, 8]);
    const finite = /^Expected (.+) to hold finite numbers but element (\d+) is (NaN|-?Infinity)$/;
    const cases: [string, () => Promise<unknown>, string, number][] = [
      ['unet.predict sample', () => sd.unet.predict(withValue([1, 4, 8, 8], 5, NaN), 10, context), 'sample', 5],
      ['unet.predict context', () => sd.unet.predict(sample, 10, withValue([1, 77, sd.unet.contextDim], 7, Infinity)), 'context', 7],
      ['vae.decode', () => sd.vae.decode(withValue([1, 4, 8, 8], 0, -Infinity)), 'latents', 0],
      ['vae.encode', () => sd.vae.encode(withValue([1, 3, 64, 64], 100, NaN)), 'image', 100],
      ['txt2img latents', () => sd.txt2img({ prompt: 'a', steps: 1, width: 64, height: 64, latents: withValue([1, 4, 8, 8], 3, NaN) }), 'options.latents', 3],
      ['img2img image', () => sd.img2img({ prompt: 'a', steps: 2, image: withValue([1, 3, 64, 64], 9, Infinity) }), 'options.image', 9],
    ];
    for (const [what, call, name, index] of cases) {
      await assert.rejects(call(), (e: Error) => {
        assert.ok(e instanceof RangeError, `${what}: ${e.name} ${e.message}`);
        const m = finite.exec(e.message);
        assert.ok(m, `${what}: ${e.message}`);
        assert.equal(m[1], name, what);
        assert.equal(Number(m[2]), index, what);
        return true;
      });
    }
    // The model is untouched: a finite call still works.
    const out = await sd.unet.predict(sample, 10, context);
    assert.ok(out.data.every(Number.isFinite));
  });

  test('a prompt past 64 chunks is a RangeError before the encoder runs', async () => {
    const long = 'cat '.repeat(75 * 64 + 1);
    await assert.rejects(sd.encodePrompt(long), {
      name: 'RangeError', message: 'Expected prompt to be at most 4800 tokens (64 chunks of 75) but it makes 65 chunks',
    });
    await assert.rejects(sd.txt2img({ prompt: 'a', negativePrompt: long, steps: 1, width: 64, height: 64 }), {
      name: 'RangeError', message: /^Expected negativePrompt to be at most 4800 tokens/,
    });
    // 64 chunks exactly is the limit, not past it.
    const { cond } = await sd.encodePrompt('cat '.repeat(75 * 64));
    assert.equal(cond.shape[1], 77 * 64);
  });
});
