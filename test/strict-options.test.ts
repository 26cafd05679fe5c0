// Unknown options are errors everywhere in the public API (issue 21): a misspelt option that is
// silently ignored runs with its default. Each options object is listed with a call that is
// valid without the extra key, then called with a misspelling and with a stranger.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  ArgumentRangeError, ArgumentTypeError, convertModel, createScheduler, encodeImage, inspectModel, randn, StableDiffusion, Tensor,
  Tokenizer, writeGgufFile,
} from '../lib/index.js';
import { packageRoot } from '../lib/native.js';

const tiny = join(packageRoot, 'test', 'fixtures', 'tiny');
const model = join(tiny, 'sd1-diffusers');
const scratch = mkdtempSync(join(tmpdir(), 'sdnode-strict-'));
let sd: StableDiffusion;
before(async () => {
  sd = await StableDiffusion.load({ model });
});
after(async () => {
  await sd.dispose();
  rmSync(scratch, { recursive: true, force: true });
});

type Options = Record<string, unknown>;
const image = new Tensor([1, 3, 64, 64]);
const mask = new Tensor([1, 1, 64, 64]);
const generation = { prompt: 'a cat', steps: 1, width: 64, height: 64 };

// [what, a call taking the options, valid options, a misspelling of one of them, the name meant]
const cases: [string, (o: Options) => Promise<unknown> | unknown, Options, string, string][] = [
  ['StableDiffusion.load', (o) => StableDiffusion.load(o as never), { model }, 'weight_type', 'weightType'],
  ['sd.txt2img', (o) => sd.txt2img(o as never), generation, 'guidance_scale', 'guidanceScale'],
  ['sd.img2img', (o) => sd.img2img(o as never), { ...generation, image, steps: 2 }, 'Strength', 'strength'],
  ['sd.inpaint', (o) => sd.inpaint(o as never), { ...generation, image, mask }, 'negative_prompt', 'negativePrompt'],
  ['sd.depth2img', (o) => sd.depth2img(o as never), { ...generation, image, depthMap: mask }, 'depth_map', 'depthMap'],
  ['sd.encodePrompt', (o) => sd.encodePrompt('a cat', o as never), {}, 'clip_skip', 'clipSkip'],
  ['sd.textEncoder.encode', (o) => sd.textEncoder.encode([49406, 49407], o as never), {}, 'clipskip', 'clipSkip'],
  ['sd.vae.decode', (o) => sd.vae.decode(new Tensor([1, 4, 8, 8]), o as never), {}, 'tile_size', 'tileSize'],
  ['sd.memoryUsage', (o) => sd.memoryUsage(o as never), {}, 'resetpeak', 'resetPeak'],
  ['sd.createScheduler', (o) => sd.createScheduler('euler', o as never), {}, 'timestep_spacing', 'timestepSpacing'],
  ['createScheduler', (o) => createScheduler('ddim', o as never), {}, 'etaa', 'eta'],
  ['tokenizer.tokenizePrompt', (o) => Tokenizer.clip().tokenizePrompt('a', o as never), {}, 'wieghting', 'weighting'],
  ['tokenizer.decode', (o) => Tokenizer.clip().decode([320], o as never), {}, 'skip_special_tokens', 'skipSpecialTokens'],
  ['randn', (o) => randn([2], 1, o as never), {}, 'kernal', 'kernel'],
  ['inspectModel', (o) => inspectModel(model, o as never), {}, 'prediction_type', 'predictionType'],
  ['convertModel', (o) => convertModel(model, join(scratch, 'x.gguf'), o as never), {}, 'weighttype', 'weightType'],
  ['writeGgufFile', (o) => writeGgufFile(join(scratch, 'y.gguf'), [], o as never), {}, 'meta_data', 'metadata'],
  ['encodeImage', (o) => encodeImage(new Tensor([1, 3, 8, 8]), 0, o as never), {}, 'Quality', 'quality'],
  ['a LoRA in options.loras', (o) => sd.txt2img({ ...generation, loras: [o] } as never), { path: join(scratch, 'missing.safetensors') }, 'wieght', 'weight'],
];

describe('every options object rejects unknown keys, naming the nearest valid one', () => {
  for (const [what, call, valid, misspelt, meant] of cases) {
    test(what, async () => {
      const check = (key: string, near: string | undefined) => (e: Error & { code?: string }) => {
        assert.ok(e instanceof TypeError, `${what}: ${e.name}: ${e.message}`);
        assert.ok(e instanceof ArgumentTypeError);
        assert.equal(e.code, 'ERR_INVALID_ARG_VALUE');
        assert.match(e.message, new RegExp(`^Unknown option '${key}'`));
        if (near === undefined) assert.doesNotMatch(e.message, /did you mean/);
        else assert.ok(e.message.endsWith(`(did you mean '${near}'?)`), e.message);
        return true;
      };
      await assert.rejects(async () => call({ ...valid, [misspelt]: 3 }), check(misspelt, meant));
      await assert.rejects(async () => call({ ...valid, somethingElseEntirely: true }), check('somethingElseEntirely', undefined));
      // The same key with an undefined value is let through, as an absent option (the call may
      // still fail for its own reasons: a depth2img on a base model, a LoRA file that is not there).
      try {
        await call({ ...valid, [misspelt]: undefined });
      } catch (error) {
        assert.doesNotMatch((error as Error).message, /Unknown option/);
      }
    });
  }
});

test('argument errors carry Node\'s codes: ERR_INVALID_ARG_TYPE and ERR_OUT_OF_RANGE', async () => {
  await assert.rejects(sd.txt2img({ ...generation, steps: 'ten' as never }), (e: Error & { code?: string }) => {
    assert.ok(e instanceof TypeError && e instanceof ArgumentTypeError);
    assert.equal(e.code, 'ERR_INVALID_ARG_TYPE');
    return true;
  });
  await assert.rejects(sd.txt2img({ ...generation, steps: 0 }), (e: Error & { code?: string }) => {
    assert.ok(e instanceof RangeError && e instanceof ArgumentRangeError);
    assert.equal(e.code, 'ERR_OUT_OF_RANGE');
    assert.equal(e.message, 'Expected integer steps between 1 and 1000 but received 0');
    return true;
  });
});

test('img2img and depth2img refuse latents, which only txt2img and inpaint take (as in diffusers)', async () => {
  const latents = new Tensor([1, 4, 8, 8]);
  for (const call of [() => sd.img2img({ ...generation, image, latents } as never), () => sd.depth2img({ ...generation, image, depthMap: mask, latents } as never)]) {
    await assert.rejects(call(), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: "Unknown option 'latents'" });
  }
  await assert.rejects(sd.inpaint({ ...generation, image, mask, latents: new Tensor([1, 4, 4, 4]) }), {
    name: 'RangeError', message: 'Expected options.latents of shape [1, 4, 8, 8] but received [1, 4, 4, 4]',
  });
});
