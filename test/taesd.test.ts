// TAESD (madebyollin's tiny autoencoder) against diffusers' AutoencoderTiny on random weights, in
// both layouts (diffusers' folder, madebyollin's taesd_encoder / taesd_decoder), f32 and f16;
// previews and the whole-VAE use in the pipelines; bad input.
// Goldens: tools/goldens/make_taesd_goldens.py → test/fixtures/goldens/taesd/.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { StableDiffusion, Tensor, type StepInfo, type WeightType } from '../lib/index.js';
import { goldensDir, maxAbsDiff, relativeError, tinyDir } from './helpers/goldens.js';

interface Entry { shape: number[]; offset: number }
interface Goldens {
  cases: Array<{ op: 'decode' | 'encode'; seed: number; input: Entry; output: Entry }>;
  txt2img: {
    fixture: string; scheduler: string; prompt: string; negativePrompt: string; width: number; height: number; steps: number;
    guidanceScale: number; seed: number; latents: Entry; image: Entry;
  };
  img2img: { strength: number; steps: number; image: Entry; latents: Entry };
}

const dir = join(goldensDir, 'taesd');
const goldens = JSON.parse(readFileSync(join(dir, 'goldens.json'), 'utf8')) as Goldens;
const bytes = readFileSync(join(dir, 'goldens.bin'));
const floats = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
const toUnit = (t: Tensor): Tensor => new Tensor(t.shape, t.data.map((v) => Math.min(1, Math.max(0, v / 2 + 0.5))));
const tensor = (e: Entry): Tensor => new Tensor(e.shape, floats.slice(e.offset, e.offset + e.shape.reduce((a, b) => a * b, 1)));

// f16: every kernel rounded to f16 (the activations stay f32 on the CPU's Winograd and unfolded paths).
const BOUNDS: Record<'f32' | 'f16', number> = { f32: 1e-4, f16: 3e-3 };
const LAYOUTS = {
  'diffusers folder': join(tinyDir, 'taesd-diffusers'),
  'diffusers file': join(tinyDir, 'taesd-diffusers', 'diffusion_pytorch_model.safetensors'),
  'taesd_decoder (+ its encoder beside it)': join(tinyDir, 'taesd', 'taesd_decoder.safetensors'),
  'taesd folder': join(tinyDir, 'taesd'),
};

describe('TAESD against diffusers AutoencoderTiny', () => {
  const loaded: StableDiffusion[] = [];
  after(async () => {
    for (const sd of loaded) await sd.dispose();
  });
  const load = async (tinyVae: string, weightType?: WeightType): Promise<StableDiffusion> => {
    const sd = await StableDiffusion.load({ model: join(tinyDir, 'sd1-diffusers'), tinyVae, backend: 'cpu', threads: 2, ...(weightType && { weightType }) });
    loaded.push(sd);
    return sd;
  };

  for (const [layout, path] of Object.entries(LAYOUTS)) {
    for (const weightType of ['f32', 'f16'] as const) {
      if (weightType === 'f16' && layout !== 'diffusers folder') continue;
      test(`${layout}, ${weightType}: decode and encode within ${BOUNDS[weightType]}`, async () => {
        const sd = await load(path, weightType);
        const tiny = sd.tinyVae!;
        assert.equal(tiny.info.hasEncoder, true);
        assert.equal(tiny.info.hasDecoder, true);
        assert.equal(tiny.info.layout, layout.startsWith('diffusers') ? 'diffusers' : 'taesd');
        assert.equal(tiny.info.downscaleFactor, 8);
        assert.equal(tiny.info.latentChannels, 4);
        for (const c of goldens.cases) {
          const input = tensor(c.input);
          const ours = c.op === 'decode' ? await tiny.decode(input) : await tiny.encode(input);
          const error = relativeError(ours, tensor(c.output));
          console.log(`# ${layout} ${weightType} ${c.op} [${c.input.shape.join(', ')}]: ${error.toExponential(2)}`);
          assert.ok(error <= BOUNDS[weightType], `${c.op}: error ${error} > ${BOUNDS[weightType]}`);
        }
      });
    }
  }

  test('a decoder file alone decodes, and encoding says it has no encoder', async () => {
    const scratch = mkdtempSync(join(tmpdir(), 'sdnode-taesd-'));
    try {
      const path = join(scratch, 'taesd_decoder.safetensors');
      copyFileSync(join(tinyDir, 'taesd', 'taesd_decoder.safetensors'), path);
      const sd = await load(path);
      assert.equal(sd.tinyVae!.info.hasEncoder, false);
      const c = goldens.cases.find((c) => c.op === 'decode')!;
      assert.ok(relativeError(await sd.tinyVae!.decode(tensor(c.input)), tensor(c.output)) <= 1e-4);
      const e = goldens.cases.find((c) => c.op === 'encode')!;
      await assert.rejects(sd.tinyVae!.encode(tensor(e.input)), { code: 'ERR_TINY_VAE_NO_ENCODER' });
      await assert.rejects(sd.img2img({ prompt: 'x', image: new Tensor([1, 3, 64, 64]), steps: 2, tinyVae: true }), TypeError);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });

  describe('pipelines', () => {
    let sd: StableDiffusion;
    const t = goldens.txt2img;
    const options = {
      prompt: t.prompt, negativePrompt: t.negativePrompt, width: t.width, height: t.height, steps: t.steps,
      guidanceScale: t.guidanceScale, seed: t.seed, scheduler: t.scheduler, promptWeighting: false,
    };
    before(async () => {
      sd = await load(LAYOUTS['diffusers folder'], 'f32');  // the tiny model's UNet as diffusers ran it
    });

    test("txt2img with tinyVae: true equals diffusers' StableDiffusionPipeline(vae=AutoencoderTiny)", async () => {
      const result = await sd.txt2img({ ...options, tinyVae: true });
      const latentError = relativeError(result.latents, tensor(t.latents));
      const imageError = maxAbsDiff(result.images!, tensor(t.image));
      console.log(`# txt2img taesd: latents ${latentError.toExponential(2)}, image max |Δ| ${imageError.toExponential(2)}`);
      assert.ok(latentError <= 1e-3, `latents: ${latentError}`);
      assert.ok(imageError <= 1 / 255, `image: ${imageError}`);
      // The decode alone, on diffusers' own latents.
      const decoded = await sd.tinyVae!.decode(tensor(t.latents));
      assert.ok(maxAbsDiff(toUnit(decoded), tensor(t.image)) <= 1e-5);
      // Without it the model's own VAE decodes the same latents: another image.
      const plain = await sd.txt2img({ ...options, outputType: 'tensor' });
      assert.ok(maxAbsDiff(plain.images!, tensor(t.image)) > 1e-2);
    });

    test("preview: 'taesd' gives a full-size preview every step, the last one the tiny VAE's image", async () => {
      const previews: Tensor[] = [];
      const result = await sd.txt2img({
        ...options, tinyVae: true, preview: 'taesd',
        onStep: (info: StepInfo) => { previews.push(info.preview!); },
      });
      assert.equal(previews.length, t.steps);
      for (const p of previews) assert.deepEqual([...p.shape], [1, 3, t.height, t.width]);
      assert.deepEqual(previews.at(-1)!.data, result.images!.data);
    });

    test("img2img with tinyVae: true equals diffusers' StableDiffusionImg2ImgPipeline(vae=AutoencoderTiny)", async () => {
      const i = goldens.img2img;
      const common = { ...options, steps: i.steps, image: tensor(i.image), strength: i.strength };
      const result = await sd.img2img({ ...common, tinyVae: true, outputType: 'latent' });
      const error = relativeError(result.latents, tensor(i.latents));
      console.log(`# img2img taesd: latents ${error.toExponential(2)}`);
      assert.ok(error <= 1e-3, `latents: ${error}`);
      // The model's own VAE samples its distribution with the generator: other latents.
      const full = await sd.img2img({ ...common, outputType: 'latent' });
      assert.ok(relativeError(full.latents, tensor(i.latents)) > 1e-2);
    });
  });
});

describe('TAESD bad input', () => {
  test('a file that is not TAESD: ERR_MODEL_FORMAT naming it', async () => {
    for (const path of [join(tinyDir, 'sd1-ldm.safetensors'), join(tinyDir, 'sd1-diffusers', 'vae')]) {
      await assert.rejects(
        StableDiffusion.load({ model: join(tinyDir, 'sd1-diffusers'), tinyVae: path, backend: 'cpu' }),
        (e: Error & { code?: string; path?: string }) => {
          assert.equal(e.code, 'ERR_MODEL_FORMAT');
          assert.ok(e.message.includes(path) || e.message.includes('sd1-diffusers'), e.message);
          assert.ok(e.path?.startsWith(path), e.path);
          return true;
        },
      );
    }
  });

  test('a damaged TAESD (a block without its last convolution): ERR_MODEL_FORMAT', async () => {
    const scratch = mkdtempSync(join(tmpdir(), 'sdnode-taesd-bad-'));
    try {
      // Rewrite the safetensors header without one tensor (its bytes stay, unreferenced).
      const source = readFileSync(join(tinyDir, 'taesd', 'taesd_decoder.safetensors'));
      const n = Number(source.readBigUInt64LE(0));
      const header = JSON.parse(source.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
      delete header['3.conv.4.weight'];
      const text = Buffer.from(JSON.stringify(header).padEnd(n, ' '));
      const out = Buffer.concat([source.subarray(0, 8), text, source.subarray(8 + n)]);
      const path = join(scratch, 'taesd_decoder.safetensors');
      writeFileSync(path, out);
      await assert.rejects(StableDiffusion.load({ model: join(tinyDir, 'sd1-diffusers'), tinyVae: path, backend: 'cpu' }), {
        code: 'ERR_MODEL_FORMAT', message: /3\.conv\.4|conv\.4/,
      });
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });

  test("preview 'taesd' or tinyVae: true without a tiny VAE: TypeError; a wrong tinyVae option: TypeError", async () => {
    const sd = await StableDiffusion.load({ model: join(tinyDir, 'sd1-diffusers'), backend: 'cpu', threads: 2 });
    try {
      assert.equal(sd.tinyVae, null);
      await assert.rejects(sd.txt2img({ prompt: 'x', steps: 1, width: 64, height: 64, preview: 'taesd', onStep: () => undefined }), {
        name: 'TypeError', message: /tinyVae/,
      });
      await assert.rejects(sd.txt2img({ prompt: 'x', steps: 1, width: 64, height: 64, tinyVae: true }), { name: 'TypeError', message: /tinyVae/ });
      await assert.rejects(sd.txt2img({ prompt: 'x', steps: 1, tinyVae: 'yes' as unknown as boolean }), TypeError);
    } finally {
      await sd.dispose();
    }
    await assert.rejects(StableDiffusion.load({ model: join(tinyDir, 'sd1-diffusers'), tinyVae: 42 as unknown as string }), TypeError);
  });
});

describe('TAESD in the CLI and the server', () => {
  test('--tiny-vae reaches the load options of sdnode generate and sdnode serve', async () => {
    const { parseGenerate } = await import('../lib/cli/generate/parse.js');
    const { parseServe } = await import('../lib/cli/serve.js');
    const path = join(tinyDir, 'taesd-diffusers');
    const model = join(tinyDir, 'sd1-diffusers');
    const request = await parseGenerate(['-p', 'x', '--model', model, '--tiny-vae', path, '-o', join(tmpdir(), 'x.png')], model);
    assert.equal(request.loadOptions.tinyVae, path);
    assert.equal(parseServe(['--model', model, '--tiny-vae', path]).options.load?.tinyVae, path);
    assert.throws(() => parseServe(['--model', model, '--tiny-vae', join(tinyDir, 'missing')]), /tiny-vae/);
  });

  test("a server loaded with a tiny VAE gives /progress's current_image at full size", async () => {
    const { call, pixels, startServer, waitForIdle, waitForStep } = await import('./helpers/server.js');
    const { url, close } = await startServer({ load: { tinyVae: join(tinyDir, 'taesd-diffusers') } });
    try {
      const job = call(url, '/sdapi/v1/txt2img', { prompt: 'a red square', steps: 150, width: 128, height: 128, sampler_name: 'DDIM', seed: 3 });
      await waitForStep(url);
      const { body: p } = await call(url, '/sdapi/v1/progress');
      const preview = await pixels(p.current_image);
      assert.deepEqual([preview.width, preview.height], [128, 128]);
      await call(url, '/sdapi/v1/interrupt', {});
      assert.equal((await job).status, 200);
      await waitForIdle(url);
    } finally {
      await close();
    }
  });
});
