// The fuzz targets' inputs (test/fuzz/: every seed of test/fuzz/corpus/ and every input a fuzzer
// found, kept in test/fuzz/regressions/) replayed through the public API, so that `npm test`
// catches a regression without clang: each input is read as the target reads it (model files
// through inspectModelFile + readModelTensor, embeddings through readEmbeddingFile, LoRAs through
// inspectLoras on the tiny model, diffusers configs through inspectModel on a copy of the tiny
// folder, prompts and text through the tokenizer) and must either work or fail with a coded
// error; a crash takes the test process down. The fuzzers themselves run with
// `npm run fuzz` (test/fuzz/README.md).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { crc32 } from 'node:zlib';

import {
  ArgumentRangeError,
  ArgumentTypeError,
  inspectModel,
  inspectModelFile,
  parsePromptAttention,
  readEmbeddingFile,
  readModelTensor,
  StableDiffusion,
  StableDiffusionError,
  Tokenizer,
} from '../lib/index.js';
import { tinyDir } from './helpers/goldens.js';

const fuzzDir = join(import.meta.dirname, 'fuzz');
const scratch = mkdtempSync(join(tmpdir(), 'sdnode-fuzz-'));
let sd: StableDiffusion;
const tokenizer = Tokenizer.clip();

before(async () => {
  sd = await StableDiffusion.load({ model: join(tinyDir, 'sd1-ldm.safetensors'), backend: 'cpu', threads: 2, weightType: 'f32' });
});
after(async () => {
  await sd?.dispose();
  rmSync(scratch, { recursive: true, force: true });
});

/** Every input of a target: its seeds, then what the fuzzers found. */
function inputs(target: string): { name: string; bytes: Buffer }[] {
  const found: { name: string; bytes: Buffer }[] = [];
  for (const kind of ['corpus', 'regressions']) {
    const dir = join(fuzzDir, kind, target);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).sort()) found.push({ name: `${kind}/${target}/${name}`, bytes: readFileSync(join(dir, name)) });
  }
  return found;
}

/**
 * Resolves when `work` works or fails with a coded error: a StableDiffusionError, or an argument
 * error with Node's code (an empty tensor asked of readModelTensor); anything else fails the test.
 */
async function worksOrCodedError(work: () => unknown): Promise<void> {
  try {
    await work();
  } catch (error) {
    const coded = error instanceof StableDiffusionError || error instanceof ArgumentRangeError || error instanceof ArgumentTypeError;
    assert.ok(coded, `expected a coded error, got ${String(error)}`);
    assert.match((error as { code: string }).code, /^ERR_[A-Z_]+$/);
  }
}

let files = 0;
function scratchFile(bytes: Buffer, extension: string): string {
  const path = join(scratch, `input-${files++}${extension}`);
  writeFileSync(path, bytes);
  return path;
}

/** A ZIP archive holding one stored entry, as torch.save stores archive/data.pkl. */
function storedZip(name: string, data: Buffer): Buffer {
  const nameBytes = Buffer.from(name);
  // Both headers: signature, then CRC, compressed and uncompressed size and name length from `at`.
  const header = (size: number, signature: number, at: number): Buffer => {
    const b = Buffer.alloc(size);
    b.writeUInt32LE(signature, 0);
    b.writeUInt32LE(crc32(data), at);
    b.writeUInt32LE(data.length, at + 4);
    b.writeUInt32LE(data.length, at + 8);
    b.writeUInt16LE(nameBytes.length, at + 12);
    return b;
  };
  const local = header(30, 0x04034b50, 14);
  const central = header(46, 0x02014b50, 16);
  const directoryAt = local.length + nameBytes.length + data.length;
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(central.length + nameBytes.length, 12);
  end.writeUInt32LE(directoryAt, 16);
  return Buffer.concat([local, nameBytes, data, central, nameBytes, end]);
}

/** Reads a model file as the container targets do: its index, then each tensor of up to 2^20 elements. */
async function readModelFile(path: string): Promise<void> {
  const info = await inspectModelFile(path);
  for (const t of info.tensors) {
    if (t.shape.reduce((a, b) => a * b, 1) <= 2 ** 20) await worksOrCodedError(() => readModelTensor(path, t.name));
  }
}

const CONFIG_FILES = ['model_index.json', 'unet/config.json', 'vae/config.json', 'text_encoder/config.json',
  'scheduler/scheduler_config.json', 'tokenizer/tokenizer_config.json'];

/** A copy of the tiny diffusers folder (its weights linked) with the input's configs (NUL-separated, as the target splits them). */
function diffusersFolder(bytes: Buffer): string {
  const folder = join(scratch, `diffusers-${files++}`);
  const source = join(tinyDir, 'sd1-diffusers');
  for (const component of ['unet', 'vae', 'text_encoder', 'scheduler', 'tokenizer']) {
    mkdirSync(join(folder, component), { recursive: true });
    for (const f of readdirSync(join(source, component))) {
      if (!f.endsWith('.json')) symlinkSync(join(source, component, f), join(folder, component, f));
    }
  }
  const parts = bytes.toString('latin1').split('\0');
  CONFIG_FILES.forEach((file, i) => {
    if (parts[i]) writeFileSync(join(folder, file), Buffer.from(parts[i]!, 'latin1'));
  });
  return folder;
}

const replays: Record<string, (bytes: Buffer) => Promise<void>> = {
  safetensors: (b) => worksOrCodedError(() => readModelFile(scratchFile(b, '.safetensors'))),
  gguf: (b) => worksOrCodedError(() => readModelFile(scratchFile(b, '.gguf'))),
  checkpoint: (b) => worksOrCodedError(() => readModelFile(scratchFile(b, '.ckpt'))),
  pickle: (b) => worksOrCodedError(() => readModelFile(scratchFile(storedZip('archive/data.pkl', b), '.ckpt'))),
  embedding: (b) => worksOrCodedError(() => readEmbeddingFile(scratchFile(b, b.subarray(0, 2).toString() === 'PK' ? '.pt' : '.safetensors'))),
  lora: (b) => worksOrCodedError(() => sd.inspectLoras([{ path: scratchFile(b, b.subarray(0, 2).toString() === 'PK' ? '.pt' : '.safetensors') }])),
  diffusers_config: (b) => worksOrCodedError(() => inspectModel(diffusersFolder(b))),
  prompt_parser: async (b) => {
    const prompt = b.toString('utf8');
    await worksOrCodedError(() => parsePromptAttention(prompt));
    await worksOrCodedError(() => tokenizer.tokenizePrompt(prompt));
    await worksOrCodedError(() => tokenizer.tokenizePrompt(prompt, { mode: 'truncate', padId: 0 }));
  },
  tokenizer: async (b) => {
    const text = b.toString('utf8');
    await worksOrCodedError(() => tokenizer.decode(tokenizer.encode(text)));
    if (text.startsWith('#version')) await worksOrCodedError(() => new Tokenizer(text));
  },
};

describe('fuzz inputs replayed through the API: each works or fails with a coded error', () => {
  test('every target has a replay here and seeds', () => {
    const targets = readdirSync(fuzzDir).filter((f) => f.endsWith('.cpp')).map((f) => f.slice(0, -4)).sort();
    assert.deepEqual(targets, Object.keys(replays).sort());
    for (const target of targets) assert.ok(inputs(target).length > 0, `no seeds for ${target}`);
  });
  for (const [target, replay] of Object.entries(replays)) {
    test(target, async () => {
      for (const input of inputs(target)) {
        await replay(input.bytes).catch((error: unknown) => {
          throw new Error(`${input.name}: ${String(error)}`, { cause: error });
        });
      }
    });
  }
});
