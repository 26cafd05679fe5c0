// Property-based tests (issue 21) with fast-check: the options of `load`, the four pipelines,
// `encodePrompt` and the scheduler factory, built from valid values mixed with wrong types,
// out-of-range and non-finite numbers, unknown keys, huge strings and nested junk. Every call must
// either work or fail the documented way (an argument error with Node's code, or a
// StableDiffusionError whose code is listed for that call); a crash fails the run, a hang fails
// its call at a deadline. Then A1111's infotext parser: any string, and a round trip.
//
// Valid sizes and steps are kept small (the tiny models at 64², one or two steps, both always
// given: the defaults are 512² and 50 steps) so that the runs that get through to the engine stay
// quick; the seed is fixed, so a run is reproducible.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';

import fc from 'fast-check';

import {
  ArgumentRangeError, ArgumentTypeError, createScheduler, SCHEDULER_NAMES, StableDiffusion, StableDiffusionError, Tensor,
  type ErrorCode,
} from '../lib/index.js';
import { formatParameters, parseParameters, type InfotextParameters } from '../lib/png-parameters.js';
import { packageRoot } from '../lib/native.js';

const SEED = 21;
const tiny = join(packageRoot, 'test', 'fixtures', 'tiny');
const scratch = mkdtempSync(join(tmpdir(), 'sdnode-properties-'));
const notAModel = join(scratch, 'not-a-model.safetensors');
writeFileSync(notAModel, 'this is not a safetensors file');

// ---- the verdict on one call ----------------------------------------------------------------

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** Runs `call`, sync throw or rejection alike, and fails if it takes longer than `deadlineMs`. */
async function settle(call: () => unknown, deadlineMs = 60_000): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined;
  const hangs = new Error(`no answer within ${deadlineMs} ms: the call hangs`);
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(hangs), deadlineMs);
  });
  try {
    return { ok: true, value: await Promise.race([(async () => call())(), deadline]) };
  } catch (error) {
    if (error === hangs) throw error;
    return { ok: false, error };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The error is one this call may give: an argument error (TypeError/RangeError with Node's code),
 * or a StableDiffusionError with one of `codes`. Anything else (a bare TypeError from deep in the
 * code, an Error without a code) is a defect.
 */
function assertDocumentedError(error: unknown, codes: readonly ErrorCode[], what: string): void {
  // lib's checks throw ArgumentTypeError/ArgumentRangeError; the addon's own (a last line behind
  // them) throws TypeError/RangeError with the same codes.
  const code = (error as { code?: unknown } | null)?.code;
  if (error instanceof TypeError && (code === 'ERR_INVALID_ARG_TYPE' || code === 'ERR_INVALID_ARG_VALUE')) return;
  if (error instanceof RangeError && code === 'ERR_OUT_OF_RANGE') return;
  const shown = error instanceof Error ? `${error.name} (${(error as { code?: string }).code}): ${error.message}\n${error.stack}` : String(error);
  assert.ok(error instanceof StableDiffusionError, `${what} threw something undocumented: ${shown}`);
  assert.ok(codes.includes(error.code), `${what} failed with ${error.code}, not one of ${codes.join(', ')}: ${error.message}`);
}

/** Counts what the runs did, for the diagnostic line. */
class Tally {
  readonly counts = new Map<string, number>();
  note(outcome: Outcome): void {
    if (process.env.SDNODE_TEST_VERBOSE && !outcome.ok) console.log(String(outcome.error));
    const key = outcome.ok ? 'worked' : outcome.error instanceof Error ? ((outcome.error as { code?: string }).code ?? outcome.error.name) : 'thrown value';
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }
  report(t: TestContext, runs: number): void {
    t.diagnostic(`${runs} runs: ${[...this.counts].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  }
}

// ---- arbitraries ------------------------------------------------------------------------------

const huge = 'a photo of a cat, '.repeat(12_000); // 216,000 characters
const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, NaN, Infinity, -Infinity, -0, -1, 0, 1.5, 2 ** 31, 2 ** 53, Number.MAX_VALUE, Number.MIN_VALUE, '', huge, '\0'),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  fc.bigInt(),
  fc.string(),
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.constant(Symbol('junk')),
  fc.constant(() => 1),
  fc.constant(new Tensor([1, 4, 8, 8], new Float32Array(256).fill(NaN))),
  fc.constant({ shape: [1, 4, 8, 8], data: [1, 2, 3] }),
  fc.constant(new Date(0)),
  fc.constant(Object.create(null) as object),
  fc.anything({ maxDepth: 3, withBigInt: true, withDate: true, withTypedArray: true, withSparseArray: true, withNullPrototype: true }),
);

/** Mostly `valid`, sometimes junk. */
const mostly = <T>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> =>
  fc.oneof({ weight: 25, arbitrary: valid as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: junk });

/** Usually `common`, now and then `rare` (values that are valid types but fail the documented way, or cost more). */
const usually = (common: fc.Arbitrary<unknown>, rare: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> =>
  fc.oneof({ weight: 6, arbitrary: common }, { weight: 1, arbitrary: rare });

const ABSENT = Symbol('absent');

/**
 * An options record: each optional key present about a third of the time, valid or junk;
 * sometimes an unknown key; now and then no object at all. Few keys are junk in one run, so
 * that a good share of runs reach the engine.
 */
function optionsOf(keys: Record<string, fc.Arbitrary<unknown>>, required: string[] = []): fc.Arbitrary<unknown> {
  const record = fc
    .record(Object.fromEntries(Object.entries(keys).map(([k, a]) => [
      k,
      required.includes(k) ? mostly(a) : fc.oneof({ weight: 2, arbitrary: fc.constant(ABSENT) }, { weight: 1, arbitrary: mostly(a) }),
    ])))
    .map((o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== ABSENT)));
  const stranger = fc.tuple(fc.constantFrom('guidance_scale', 'Steps', 'width ', 'constructor', '__proto__x', 'x'.repeat(500)), junk);
  const withStranger = fc.tuple(record, fc.oneof({ weight: 12, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: stranger }))
    .map(([o, extra]) => (extra === null ? o : { ...o, [extra[0]]: extra[1] }));
  return fc.oneof({ weight: 30, arbitrary: withStranger }, { weight: 1, arbitrary: junk });
}

const aborted = AbortSignal.abort();
const prompt = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('a cat', 'a (red:1.3) cube [on a table]', 'BREAK a BREAK b', '((((((x))))))', 'word '.repeat(200)) },
  { weight: 6, arbitrary: fc.string({ maxLength: 60 }) },
  { weight: 5, arbitrary: fc.string({ unit: 'grapheme', maxLength: 30 }) },
  { weight: 1, arbitrary: fc.constant('<lora:nothing-here:1>') },
);
const size = usually(fc.constant(64), fc.constantFrom(32, 40, 72));
const generationKeys = {
  prompt,
  negativePrompt: prompt,
  width: size,
  height: size,
  steps: fc.integer({ min: 1, max: 2 }),
  guidanceScale: fc.double({ min: 0, max: 100, noNaN: true }),
  scheduler: fc.oneof(fc.constantFrom(...SCHEDULER_NAMES, 'Euler a', 'DPM++ 2M Karras', 'PLMS'), fc.constantFrom(...SCHEDULER_NAMES).map((n) => createScheduler(n))),
  schedulerOptions: fc.record(
    {
      timestepSpacing: fc.constantFrom('leading', 'trailing', 'linspace'),
      useKarrasSigmas: fc.boolean(),
      predictionType: fc.constantFrom('epsilon', 'v_prediction'),
      stepsOffset: fc.integer({ min: 0, max: 1 }),
      eta: fc.double({ min: 0, max: 1, noNaN: true }),
    },
    { requiredKeys: [] },
  ),
  seed: fc.oneof(fc.nat(), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
  batchSize: fc.integer({ min: 1, max: 2 }),
  clipSkip: fc.integer({ min: 1, max: 3 }),
  promptWeighting: fc.boolean(),
  loras: usually(fc.constantFrom([], [{ path: join(tiny, '..', 'lora', 'sd1-kohya.safetensors'), weight: 0.5 }]), fc.constant([{ name: 'missing' }])),
  onStep: usually(fc.constantFrom(() => undefined, () => true), fc.constantFrom(() => false, ({ step }: { step: number }) => step < 2)),
  preview: usually(fc.constant('latent'), fc.constantFrom('vae', 'taesd')),
  previewEvery: fc.integer({ min: 1, max: 3 }),
  tinyVae: fc.boolean(),
  signal: usually(fc.constant(new AbortController().signal), fc.constant(aborted)),
  outputType: fc.constantFrom('tensor', 'latent'),
  memoryReport: fc.boolean(),
};
const image = usually(
  fc.constantFrom(new Tensor([1, 3, 64, 64], new Float32Array(3 * 64 * 64).fill(0.25)), { data: new Uint8Array(64 * 64 * 3).fill(128), width: 64, height: 64, channels: 3 }),
  fc.constant(join(scratch, 'missing.png')),
);
const mask = fc.constantFrom(new Tensor([1, 1, 64, 64], new Float32Array(64 * 64).fill(1)), new Tensor([1, 1, 64, 64]));
const latents = fc.constantFrom(new Tensor([1, 4, 8, 8], new Float32Array(256).fill(0.5)), new Tensor([2, 4, 8, 8]));
const strength = usually(fc.constantFrom(0.5, 0.75, 1), fc.double({ min: 0, max: 1, noNaN: true }));
/** A tensor of values rising from 0 to 1 (a depth map must not be flat). */
const ramp = (shape: number[]): Tensor => {
  const size = shape.reduce((a, b) => a * b, 1);
  return new Tensor(shape, Float32Array.from({ length: size }, (_, i) => i / (size - 1)));
};
// The inpaint and depth fixtures have no tiny VAE loaded, and their text encoders do not fit the SD1 LoRA.
const otherModelKeys = {
  tinyVae: fc.constant(false),
  loras: usually(fc.constant([]), fc.constant([{ path: join(tiny, '..', 'lora', 'sd1-kohya.safetensors'), weight: 0.5 }])),
};

// Codes the pipelines may give for valid-typed input: a cancel, a LoRA file or image that is not
// there, a LoRA for another model (the SD1 LoRA on the inpaint and depth fixtures, whose text
// encoders differ). Anything else from a generation is a defect.
const PIPELINE_CODES: ErrorCode[] = ['ABORT_ERR', 'ERR_LORA_NOT_FOUND', 'ERR_LORA_INCOMPATIBLE', 'ERR_FILE_NOT_FOUND'];

/** Runs the property and says how many runs it made and how they ended. */
async function check(t: TestContext, runs: number, arbitrary: fc.Arbitrary<unknown>, call: (input: never) => unknown, codes: ErrorCode[], what: string) {
  const tally = new Tally();
  await fc.assert(
    fc.asyncProperty(arbitrary, async (input) => {
      const outcome = await settle(() => call(input as never));
      tally.note(outcome);
      if (!outcome.ok) assertDocumentedError(outcome.error, codes, what);
    }),
    { seed: SEED, numRuns: runs, endOnFailure: true, includeErrorInReport: true },
  );
  tally.report(t, runs);
}

// ---- the API's options --------------------------------------------------------------------------

describe('any options either work or fail as documented', () => {
  let sd1: StableDiffusion;
  let inpainting: StableDiffusion;
  let depth: StableDiffusion;
  before(async () => {
    sd1 = await StableDiffusion.load({ model: join(tiny, 'sd1-diffusers'), tinyVae: join(tiny, 'taesd-diffusers'), threads: 1 });
    inpainting = await StableDiffusion.load({ model: join(tiny, 'sd1-inpaint-ldm.ckpt'), threads: 1 });
    depth = await StableDiffusion.load({ model: join(tiny, 'sd2-depth-ldm.safetensors'), threads: 1 });
  });
  after(async () => {
    await Promise.all([sd1?.dispose(), inpainting?.dispose(), depth?.dispose()]);
  });

  // After every property the model still answers (a failed call leaves it usable).
  const stillWorks = async (sd: StableDiffusion, pipeline: 'txt2img' | 'img2img' | 'inpaint' | 'depth2img') => {
    const base = { prompt: 'a cat', steps: 2, width: 64, height: 64, seed: 1, outputType: 'latent' as const };
    const pixels = new Tensor([1, 3, 64, 64], new Float32Array(3 * 64 * 64).fill(0.5));
    const plane = new Tensor([1, 1, 64, 64], new Float32Array(64 * 64).fill(1));
    const result = await (pipeline === 'txt2img' ? sd.txt2img(base)
      : pipeline === 'img2img' ? sd.img2img({ ...base, image: pixels })
        : pipeline === 'inpaint' ? sd.inpaint({ ...base, image: pixels, mask: plane })
          : sd.depth2img({ ...base, image: pixels, depthMap: ramp([1, 64, 64]) }));
    assert.deepEqual(result.latents.shape, [1, 4, 8, 8]);
    assert.ok(result.latents.data.every(Number.isFinite));
  };

  test('StableDiffusion.load', async (t) => {
    const model = usually(
      fc.constantFrom(join(tiny, 'sd1-diffusers'), join(tiny, 'sd1-ldm.gguf'), join(tiny, 'sd1-ldm.safetensors'), join(tiny, 'sd2-v-ldm.safetensors')),
      fc.constantFrom(join(scratch, 'missing.safetensors'), notAModel, scratch, join(tiny, 'taesd')),
    );
    const keys = {
      model,
      backend: usually(fc.constantFrom('cpu', 'auto'), fc.constantFrom('vulkan', 'cuda')),
      devices: fc.record({ textEncoder: usually(fc.constantFrom('cpu', 'CPU'), fc.constant('nonexistent-device')), vae: fc.constantFrom('cpu', 'auto') }, { requiredKeys: [] }),
      weightType: fc.constantFrom('f32', 'f16', 'q8_0', 'q4_0', 'bf16'),
      vae: usually(fc.constant(join(tiny, 'sd1-diffusers', 'vae')), fc.constant(join(scratch, 'missing-vae.safetensors'))),
      tinyVae: usually(fc.constantFrom(join(tiny, 'taesd'), join(tiny, 'taesd-diffusers')), fc.constant(notAModel)),
      threads: fc.integer({ min: 1, max: 2 }),
      predictionType: fc.constantFrom('epsilon', 'v_prediction'),
      flashAttention: fc.boolean(),
      vaeTiling: fc.boolean(),
      vaeTileSize: fc.constantFrom(64, 96, 256),
      offload: fc.boolean(),
      signal: usually(fc.constant(new AbortController().signal), fc.constant(aborted)),
      loraDirs: usually(fc.constantFrom([], [join(tiny, '..', 'lora')]), fc.constant([join(scratch, 'no-such-folder')])),
      embeddingDirs: usually(fc.constant([]), fc.constant([join(scratch, 'no-such-folder')])),
    };
    const codes: ErrorCode[] = ['ERR_FILE_NOT_FOUND', 'ERR_FILE_READ', 'ERR_MODEL_FORMAT', 'ERR_BACKEND_UNAVAILABLE', 'ABORT_ERR'];
    await check(t, 60, optionsOf(keys, ['model']), async (options: unknown) => {
      const sd = await StableDiffusion.load(options as never);
      try {
        assert.ok(sd.info.family === 'sd1' || sd.info.family === 'sd2');
      } finally {
        await sd.dispose();
      }
    }, codes, 'load');
  });

  test('sd.txt2img', async (t) => {
    const options = optionsOf({ ...generationKeys, latents }, ['prompt', 'width', 'height', 'steps']);
    await check(t, 50, options, (o) => sd1.txt2img(o), PIPELINE_CODES, 'txt2img');
    await stillWorks(sd1, 'txt2img');
  });

  test('sd.img2img', async (t) => {
    const options = optionsOf({ ...generationKeys, image, strength }, ['prompt', 'image', 'steps']);
    await check(t, 30, options, (o) => sd1.img2img(o), PIPELINE_CODES, 'img2img');
    await stillWorks(sd1, 'img2img');
  });

  test('sd.inpaint', async (t) => {
    const options = optionsOf({ ...generationKeys, ...otherModelKeys, image, mask, strength, latents }, ['prompt', 'image', 'mask', 'steps']);
    await check(t, 30, options, (o) => inpainting.inpaint(o), PIPELINE_CODES, 'inpaint');
    await stillWorks(inpainting, 'inpaint');
  });

  test('sd.depth2img', async (t) => {
    const depthMap = usually(fc.constantFrom(ramp([1, 64, 64]), ramp([1, 1, 64, 64])), fc.constantFrom(ramp([1, 8, 8]), new Tensor([1, 64, 64])));
    const options = optionsOf({ ...generationKeys, ...otherModelKeys, image, depthMap, strength }, ['prompt', 'image', 'depthMap', 'steps']);
    await check(t, 30, options, (o) => depth.depth2img(o), PIPELINE_CODES, 'depth2img');
    await stillWorks(depth, 'depth2img');
  });

  test('sd.encodePrompt', async (t) => {
    const options = optionsOf({
      negativePrompt: prompt,
      clipSkip: fc.integer({ min: 1, max: 3 }),
      promptWeighting: fc.boolean(),
      longPrompts: fc.constantFrom('chunks', 'truncate'),
    });
    await check(t, 300, fc.tuple(mostly(prompt), options), ([text, o]: [unknown, unknown]) => sd1.encodePrompt(text as string, o as never), ['ERR_LORA_NOT_FOUND'], 'encodePrompt');
  });

  test('createScheduler and sd.createScheduler, then setTimesteps and step', async (t) => {
    const name = mostly(fc.constantFrom(...SCHEDULER_NAMES, 'Euler a', 'DPM++ 2M Karras', 'k_lms', 'EULER'));
    const overrides = optionsOf({
      timestepSpacing: fc.constantFrom('leading', 'trailing', 'linspace'),
      useKarrasSigmas: fc.boolean(),
      predictionType: fc.constantFrom('epsilon', 'v_prediction', 'sample'),
      stepsOffset: fc.integer({ min: 0, max: 1 }),
      eta: fc.double({ min: 0, max: 1, noNaN: true }),
    });
    const steps = mostly(fc.integer({ min: 1, max: 1000 }));
    const sample = new Tensor([1, 4, 8, 8], new Float32Array(256).fill(0.1));
    const noise = new Tensor([1, 4, 8, 8], new Float32Array(256).fill(-0.2));
    await check(t, 400, fc.tuple(name, overrides, steps, fc.boolean()), ([n, o, s, onModel]: [unknown, unknown, unknown, boolean]) => {
      const scheduler = onModel ? sd1.createScheduler(n as string, o as never) : createScheduler(n as string, o as never);
      scheduler.setTimesteps(s as number);
      const first = scheduler.timesteps[0]!;
      const { prevSample } = scheduler.step(sample, first, scheduler.scaleModelInput(sample, first), noise);
      assert.deepEqual(prevSample.shape, sample.shape);
    }, [], 'the scheduler factory');
  });
});

// ---- A1111's infotext ----------------------------------------------------------------------------

describe('PNG parameter text (parseParameters)', () => {
  test('any string is read or refused with a RangeError, never anything else', (t) => {
    // Strings with A1111's pieces in them reach the field parser far more often than random text.
    const piece = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.string({ unit: 'grapheme-composite', maxLength: 10 }),
      fc.constantFrom('\n', '\r\n', '\r', ', ', ': ', '"', '\\"', 'Negative prompt:', 'Steps: ', 'Sampler: ', 'Seed: ', 'Size: ', 'CFG scale: ',
        'Schedule type: Karras', 'Denoising strength: ', 'Clip skip: ', 'Batch size: ', 'Batch pos: ', 'x', '512x512', '-1', '1e999', 'NaN',
        '18446744073709551616', '"a, b"', '"\\u0000"', '"\\ud800"'),
    );
    const field = fc.tuple(fc.oneof(fc.constantFrom(...KNOWN_FIELDS), fc.string({ maxLength: 8 })), fc.array(piece, { maxLength: 3 }))
      .map(([key, value]) => `${key}: ${value.join('')}`);
    const fieldsLine = fc.array(field, { minLength: 1, maxLength: 8 }).map((f) => f.join(', '));
    const text = fc.oneof(
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.array(piece, { maxLength: 40 }).map((p) => p.join('')),
      fc.tuple(fc.array(piece, { maxLength: 10 }), fieldsLine).map(([p, f]) => `${p.join('')}\n${f}`),
    );
    const runs = 3000;
    let refused = 0;
    fc.assert(
      fc.property(text, (s) => {
        try {
          const parsed = parseParameters(s);
          assert.equal(typeof parsed.prompt, 'string');
          assert.equal(typeof parsed.negativePrompt, 'string');
        } catch (error) {
          assert.ok(error instanceof ArgumentRangeError, `parseParameters(${JSON.stringify(s)}) threw ${String(error)}`);
          refused++;
        }
      }),
      { seed: SEED, numRuns: runs },
    );
    t.diagnostic(`${runs} strings, ${refused} refused with a RangeError`);
    for (const value of [undefined, null, 3, {}, Buffer.from('x')]) assert.throws(() => parseParameters(value as never), ArgumentTypeError);
  });

  test('formatParameters then parseParameters gives back what was written', (t) => {
    // The domain A1111's layout can carry: prompts without a line that starts "Negative prompt:",
    // without carriage returns (the reader takes \r as a line break, as A1111 does) and without
    // white space at either end (it is trimmed), and the five fields A1111 always writes, so that
    // the last line is the fields line. Field values may be anything.
    const line = fc.string({ unit: 'grapheme', maxLength: 30 }).filter((s) => !s.includes('\r') && !s.includes('\n') && !s.startsWith('Negative prompt:'));
    const text = fc.array(line, { maxLength: 3 }).map((lines) => lines.join('\n').trim()).filter((s) => !/^Negative prompt:/m.test(s));
    const value = fc.oneof(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }), fc.constantFrom(' x ', 'a\r\nb', '"quoted"', 'a, b: c'));
    const key = fc.stringMatching(/^[A-Za-z][A-Za-z0-9 \-/+]{0,14}[A-Za-z0-9]$/).filter((k) => !KNOWN_FIELDS.has(k));
    const parameters = fc.record(
      {
        prompt: text,
        negativePrompt: text,
        steps: fc.integer({ min: 1, max: 1000 }),
        sampler: fc.constantFrom(...SCHEDULER_NAMES),
        guidanceScale: fc.double({ min: 0, max: 100, noNaN: true }),
        seed: fc.oneof(fc.nat(), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
        width: fc.integer({ min: 8, max: 8192 }),
        height: fc.integer({ min: 8, max: 8192 }),
        modelHash: fc.stringMatching(/^[0-9a-f]{10}$/),
        model: value,
        strength: fc.double({ min: 0, max: 1, noNaN: true }),
        clipSkip: fc.integer({ min: 1, max: 12 }),
        batch: fc.integer({ min: 1, max: 8 }).chain((size) => fc.tuple(fc.constant(size), fc.integer({ min: 0, max: size - 1 }))),
        extra: fc.dictionary(key, value, { maxKeys: 3 }),
      },
      { requiredKeys: ['prompt', 'steps', 'sampler', 'guidanceScale', 'seed', 'width', 'height'] },
    );
    const runs = 2000;
    fc.assert(
      fc.property(parameters, ({ batch, ...p }) => {
        const written: InfotextParameters = { ...p, ...(batch !== undefined && { batchSize: batch[0], batchPosition: batch[1] }) };
        const { fields, ...read } = parseParameters(formatParameters(written));
        assert.equal(typeof fields, 'object');
        // What A1111's format keeps: numbers to 6 significant digits, a seed past 2^53 as a bigint,
        // clip skip 1 and batch size 1 left out (A1111's defaults), our DDPM under its own name.
        const significant = (x: number) => Number(x.toPrecision(6));
        const expected: Record<string, unknown> = { ...written, negativePrompt: written.negativePrompt ?? '', guidanceScale: significant(p.guidanceScale) };
        if (p.strength !== undefined) expected.strength = significant(p.strength);
        if (p.clipSkip === 1) delete expected.clipSkip;
        if (written.batchSize === 1) {
          delete expected.batchSize;
          delete expected.batchPosition;
        }
        if (typeof p.seed === 'bigint' && p.seed <= BigInt(Number.MAX_SAFE_INTEGER)) expected.seed = Number(p.seed);
        if (p.extra !== undefined) {
          if (Object.keys(p.extra).length === 0) delete expected.extra;
          else expected.extra = { ...p.extra }; // fast-check's dictionaries may have no prototype
        }
        assert.deepEqual(read, expected);
      }),
      { seed: SEED, numRuns: runs },
    );
    t.diagnostic(`${runs} round trips`);
  });
});

const KNOWN_FIELDS = new Set(['Steps', 'Sampler', 'Schedule type', 'CFG scale', 'Seed', 'Size', 'Model hash', 'Model', 'Denoising strength', 'Clip skip', 'Batch size', 'Batch pos']);

after(() => rmSync(scratch, { recursive: true, force: true }));
