// Model file containers: safetensors, GGUF and PyTorch checkpoints read into a tensor index, and
// tensors written to GGUF. Good files are built here byte by byte (safetensors, GGUF headers,
// ZIP archives and pickles) or by our GGUF writer; checkpoints made by torch itself are fixtures
// (tools/goldens/make_checkpoint_fixtures.py). Every bad file must be refused with an Error that
// carries `code` and `path`, and the process must live to read a good file afterwards.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { crc32 } from 'node:zlib';

import { inspectModelFile, readModelTensor, Tensor, writeGgufFile } from '../lib/index.js';
import type { GgufWriteType } from '../lib/index.js';
import { packageRoot } from '../lib/native.js';

// ggml logs why it rejects each bad GGUF file, and hundreds are rejected here on purpose.
// (Read when the addon loads, on the first call below.)
process.env.SDNODE_LOG ??= 'none';

const dir = mkdtempSync(join(tmpdir(), 'sdnode-model-files-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const fixtures = join(packageRoot, 'test', 'fixtures', 'model-files');

let fileCounter = 0;
function tempFile(bytes: Uint8Array, name = 'file'): string {
  const path = join(dir, `${fileCounter++}-${name}`);
  writeFileSync(path, bytes);
  return path;
}

/** Deterministic pseudo-random numbers (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randn(n: number, seed: number): Float32Array {
  const next = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = Math.sqrt(-2 * Math.log(next() + 1e-12)) * Math.cos(2 * Math.PI * next());
  }
  return out;
}

/** Asserts that `actual` holds exactly the float32 values of `expected` (bit for bit, -0 included). */
function assertSameFloats(actual: Float32Array, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    if (!Object.is(actual[i], Math.fround(expected[i]!))) {
      assert.fail(`${what}: element ${i} is ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

/** Expects `promise` to reject with an Error carrying `code` and `path` (and a message matching `message`). */
async function rejectsWith(promise: Promise<unknown>, code: string, path: string, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (e: Error & { code?: string; path?: string }) => {
    assert.ok(e instanceof Error, `not an Error: ${String(e)}`);
    assert.equal(e.code, code, `code of "${e.message}"`);
    assert.equal(e.path, path, `path of "${e.message}"`);
    if (message) assert.match(e.message, message);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------
// safetensors, by hand

interface StEntry {
  name: string;
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** A safetensors file; `edit` may change the header object before it is written. */
function safetensors(
  entries: StEntry[],
  metadata?: Record<string, unknown>,
  edit?: (header: Record<string, any>) => void,
): Uint8Array {
  const header: Record<string, any> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.length] };
    offset += e.bytes.length;
  }
  edit?.(header);
  return safetensorsRaw(JSON.stringify(header), entries.map((e) => e.bytes));
}

function safetensorsRaw(header: string | Buffer, chunks: Uint8Array[]): Uint8Array {
  let json = typeof header === 'string' ? Buffer.from(header, 'utf8') : header;
  // As the safetensors library does: pad the header with spaces to 8 bytes.
  const pad = (8 - (json.length % 8)) % 8;
  json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, ...chunks]);
}

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa ? NaN : sign * Infinity;
  return sign * (1024 + mantissa) * 2 ** (exponent - 25);
}

/** The nearest float16 value of `x`, ties to even (IEEE 754 rounding, overflow to ±Infinity). */
function roundToHalf(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  if (a >= 65520) return Math.sign(x) * Infinity;
  let e = Math.max(Math.floor(Math.log2(a)), -14);
  if (e > -14 && 2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (e - 10);
  const q = a / ulp;
  const floor = Math.floor(q);
  const r = q - floor > 0.5 || (q - floor === 0.5 && floor % 2 === 1) ? floor + 1 : floor;
  return Math.sign(x) * r * ulp;
}

/** `n` random float16 bit patterns (no NaNs), with ±0, ±Infinity, subnormals and the extremes among them. */
function halfPatterns(n: number, seed: number): Uint16Array {
  const next = rng(seed);
  const out = new Uint16Array(n);
  const special = [0x0000, 0x8000, 0x0001, 0x83ff, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x3c00, 0x3555];
  for (let i = 0; i < n; i++) {
    let bits: number;
    do bits = Math.floor(next() * 65536);
    while ((bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0);
    out[i] = i < special.length ? special[i]! : bits;
  }
  return out;
}

/** `n` random bfloat16 bit patterns (no NaNs). */
function bfloatPatterns(n: number, seed: number): Uint16Array {
  const next = rng(seed);
  const out = new Uint16Array(n);
  const special = [0x0000, 0x8000, 0x0001, 0x7f7f, 0xff7f, 0x7f80, 0xff80, 0x3f80];
  for (let i = 0; i < n; i++) {
    let bits: number;
    do bits = Math.floor(next() * 65536);
    while ((bits & 0x7f80) === 0x7f80 && (bits & 0x7f) !== 0);
    out[i] = i < special.length ? special[i]! : bits;
  }
  return out;
}

const bfloatToFloat = (bits: number) => new Float32Array(new Uint32Array([bits << 16]).buffer)[0]!;

// ---------------------------------------------------------------------------------------------
// GGUF headers by hand (for files our writer would never produce)

function ggufHeader(tensors: { name: string; ne: bigint[]; type: number; offset: bigint }[], kv: Uint8Array[] = []): Buffer {
  const parts: Buffer[] = [Buffer.from('GGUF')];
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    return b;
  };
  const u64 = (n: bigint) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, n));
    return b;
  };
  const str = (s: string) => Buffer.concat([u64(BigInt(Buffer.byteLength(s))), Buffer.from(s)]);
  parts.push(u32(3), u64(BigInt(tensors.length)), u64(BigInt(kv.length)), ...kv.map((b) => Buffer.from(b)));
  for (const t of tensors) {
    parts.push(str(t.name), u32(t.ne.length), ...t.ne.map(u64), u32(t.type), u64(t.offset));
  }
  const header = Buffer.concat(parts);
  return Buffer.concat([header, Buffer.alloc((32 - (header.length % 32)) % 32)]);
}

// ---------------------------------------------------------------------------------------------
// PyTorch checkpoints by hand: a stored ZIP and a pickle assembler

/** A ZIP archive of stored entries; `zip64` writes the ZIP64 records (as torch does for big files) even when not needed. */
function zipStored(files: [string, Uint8Array][], options: { method?: number; zip64?: boolean } = {}): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of files) {
    const nameBytes = Buffer.from(name);
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(options.method ?? 0, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(45, 4);
    central.writeUInt16LE(45, 6);
    central.writeUInt16LE(options.method ?? 0, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(options.zip64 ? 0xffffffff : data.length, 20);
    central.writeUInt32LE(options.zip64 ? 0xffffffff : data.length, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    central.writeUInt32LE(options.zip64 ? 0xffffffff : offset, 42);
    const extra = Buffer.alloc(options.zip64 ? 28 : 0);
    if (options.zip64) {
      extra.writeUInt16LE(1, 0); // ZIP64 extended information: sizes, then the local header offset
      extra.writeUInt16LE(24, 2);
      extra.writeBigUInt64LE(BigInt(data.length), 4);
      extra.writeBigUInt64LE(BigInt(data.length), 12);
      extra.writeBigUInt64LE(BigInt(offset), 20);
      central.writeUInt16LE(extra.length, 30);
    }
    locals.push(local, nameBytes, Buffer.from(data));
    centrals.push(central, nameBytes, extra);
    offset += 30 + nameBytes.length + data.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(options.zip64 ? 0xffff : files.length, 8);
  end.writeUInt16LE(options.zip64 ? 0xffff : files.length, 10);
  end.writeUInt32LE(options.zip64 ? 0xffffffff : directory.length, 12);
  end.writeUInt32LE(options.zip64 ? 0xffffffff : offset, 16);
  if (!options.zip64) return Buffer.concat([...locals, directory, end]);
  const record = Buffer.alloc(56);
  record.writeUInt32LE(0x06064b50, 0);
  record.writeBigUInt64LE(44n, 4);
  record.writeUInt16LE(45, 12);
  record.writeUInt16LE(45, 14);
  record.writeBigUInt64LE(BigInt(files.length), 24);
  record.writeBigUInt64LE(BigInt(files.length), 32);
  record.writeBigUInt64LE(BigInt(directory.length), 40);
  record.writeBigUInt64LE(BigInt(offset), 48);
  const locator = Buffer.alloc(20);
  locator.writeUInt32LE(0x07064b50, 0);
  locator.writeBigUInt64LE(BigInt(offset + directory.length), 8);
  locator.writeUInt32LE(1, 16);
  return Buffer.concat([...locals, directory, record, locator, end]);
}

/** Pickle opcodes and operands; numbers are single bytes. */
type PickleOp = number | Buffer | PickleOp[];
const op = {
  proto: [0x80, 2],
  mark: 0x28,
  stop: 0x2e,
  emptyDict: 0x7d,
  emptyTuple: 0x29,
  tuple: 0x74,
  setitem: 0x73,
  setitems: 0x75,
  reduce: 0x52,
  binpersid: 0x51,
  newFalse: 0x89,
  str: (s: string): PickleOp => {
    const b = Buffer.from(s);
    const n = Buffer.alloc(4);
    n.writeUInt32LE(b.length);
    return [0x58, n, b];
  },
  int: (v: number | bigint): PickleOp => {
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(BigInt(v));
    return [0x8a, 8, b]; // LONG1 with 8 bytes
  },
  global: (module: string, name: string): PickleOp => [0x63, Buffer.from(`${module}\n${name}\n`)],
  binput: (i: number): PickleOp => [0x71, i],
  binget: (i: number): PickleOp => [0x68, i],
};

function pickle(...ops: PickleOp[]): Buffer {
  const out: Buffer[] = [];
  const walk = (o: PickleOp): void => {
    if (typeof o === 'number') out.push(Buffer.from([o]));
    else if (Buffer.isBuffer(o)) out.push(o);
    else o.forEach(walk);
  };
  ops.forEach(walk);
  return Buffer.concat(out);
}

/** torch.save's pickle of one tensor: _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()). */
function tensorOps(storage: { type: string; key: string; numel: number | bigint }, offset: number | bigint, size: (number | bigint)[], stride: (number | bigint)[]): PickleOp {
  return [
    op.global('torch._utils', '_rebuild_tensor_v2'),
    op.mark,
    [op.mark, op.str('storage'), op.global('torch', storage.type), op.str(storage.key), op.str('cpu'), op.int(storage.numel), op.tuple],
    op.binpersid,
    op.int(offset),
    [op.mark, ...size.map(op.int), op.tuple],
    [op.mark, ...stride.map(op.int), op.tuple],
    op.newFalse,
    [op.global('collections', 'OrderedDict'), op.emptyTuple, op.reduce],
    op.tuple,
    op.reduce,
  ];
}

/** A checkpoint { state_dict: { name: tensor, … } } whose storages are `storages`. */
function checkpoint(entries: PickleOp[], storages: Record<string, Uint8Array>, zip: { zip64?: boolean } = {}): Buffer {
  const pkl = pickle(op.proto, op.emptyDict, op.str('state_dict'), op.emptyDict, op.mark, ...entries, op.setitems, op.setitem, op.stop);
  return zipStored([
    ['archive/data.pkl', pkl],
    ['archive/byteorder', Buffer.from('little')],
    ...Object.entries(storages).map(([key, bytes]): [string, Uint8Array] => [`archive/data/${key}`, bytes]),
  ], zip);
}

const sixFloats = Float32Array.from([1.5, -2, 0.25, 3, -0.125, 8]);

// ---------------------------------------------------------------------------------------------

describe('safetensors', () => {
  test('reads F32, F16 and BF16 tensors exactly, with metadata and outermost-first shapes', async () => {
    const f32 = randn(2 * 3 * 4, 1);
    const f16 = halfPatterns(5 * 7, 2);
    const bf16 = bfloatPatterns(64, 3);
    const path = tempFile(
      safetensors(
        [
          { name: 'a.weight', dtype: 'F32', shape: [2, 3, 4], bytes: bytesOf(f32) },
          { name: 'b.weight', dtype: 'F16', shape: [5, 7], bytes: bytesOf(f16) },
          { name: 'c.bias', dtype: 'BF16', shape: [64], bytes: bytesOf(bf16) },
          { name: 'scalar', dtype: 'F32', shape: [], bytes: bytesOf(Float32Array.of(-7.5)) },
          { name: 'ids', dtype: 'I64', shape: [1, 3], bytes: bytesOf(BigInt64Array.of(0n, 76n, -5n)) },
        ],
        { format: 'pt', note: 'caf\u00e9 \u{1f600}' },
      ),
      'all.safetensors',
    );
    const info = await inspectModelFile(path);
    assert.equal(info.format, 'safetensors');
    assert.equal(info.path, path);
    assert.deepEqual(info.metadata, { format: 'pt', note: 'caf\u00e9 \u{1f600}' });
    assert.deepEqual(info.tensors, [
      { name: 'a.weight', type: 'f32', shape: [2, 3, 4] },
      { name: 'b.weight', type: 'f16', shape: [5, 7] },
      { name: 'c.bias', type: 'bf16', shape: [64] },
      { name: 'scalar', type: 'f32', shape: [] },
      { name: 'ids', type: 'i64', shape: [1, 3] },
    ]);

    const a = await readModelTensor(path, 'a.weight');
    assert.ok(a instanceof Tensor);
    assert.deepEqual(a.shape, [2, 3, 4]);
    assertSameFloats(a.data, f32, 'F32');
    assertSameFloats((await readModelTensor(path, 'b.weight')).data, Array.from(f16, halfToFloat), 'F16');
    assertSameFloats((await readModelTensor(path, 'c.bias')).data, Array.from(bf16, bfloatToFloat), 'BF16');
    assertSameFloats((await readModelTensor(path, 'scalar')).data, [-7.5], 'scalar');
    assertSameFloats((await readModelTensor(path, 'ids')).data, [0, 76, -5], 'I64');
  });

  // An empty tensor has no data to point at: reading it must not hand memcpy a null pointer
  // (undefined even for zero bytes; UBSan stopped `npm run test:sanitize` here).
  test('an empty tensor is read, then refused as having no elements, in every dtype', async () => {
    const dtypes = ['F32', 'F16', 'BF16', 'I64'];
    const path = tempFile(safetensors(dtypes.map((dtype) => ({ name: dtype, dtype, shape: [0, 4], bytes: new Uint8Array(0) }))));
    for (const dtype of dtypes) {
      await assert.rejects(readModelTensor(path, dtype), { code: 'ERR_OUT_OF_RANGE', message: /has no elements \(shape \[0, 4\]\)/ }, dtype);
    }
  });

  test('decodes \\u escapes and surrogate pairs in the JSON header', async () => {
    const text =
      '{"__metadata__":{"k\\u00e9y":"\\ud83d\\ude00 \\"q\\" \\\\ \\/ \\n"},' +
      '"t\\u00e9nsor\\ud83d\\ude00":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    const path = tempFile(safetensorsRaw(text, [bytesOf(Float32Array.of(1, 2))]));
    const info = await inspectModelFile(path);
    assert.deepEqual(info.metadata, { 'k\u00e9y': '\u{1f600} "q" \\ / \n' });
    assert.equal(info.tensors[0]!.name, 't\u00e9nsor\u{1f600}');
    assertSameFloats((await readModelTensor(path, 't\u00e9nsor\u{1f600}')).data, [1, 2], 'values');
  });

  describe('refuses lying or malformed headers', () => {
    const good: StEntry[] = [
      { name: 'w', dtype: 'F32', shape: [2, 3], bytes: bytesOf(sixFloats) },
      { name: 'b', dtype: 'F16', shape: [2], bytes: bytesOf(Uint16Array.of(0x3c00, 0xc000)) },
    ];
    const cases: [string, Uint8Array, RegExp][] = [
      ['an offset beyond the data', safetensors(good, undefined, (h) => (h.b.data_offsets = [24, 40])), /"b" ends at byte 40/],
      ['a size that disagrees with the shape', safetensors(good, undefined, (h) => (h.w.shape = [2, 4])), /"w" has 24 bytes but its shape and dtype need 32/],
      ['begin after end', safetensors(good, undefined, (h) => (h.w.data_offsets = [8, 0])), /data_offsets/],
      ['overlapping tensors', safetensors(good, undefined, (h) => {
        h.b.data_offsets = [20, 24];
      }), /overlap/],
      ['absurd dimensions', safetensors(good, undefined, (h) => (h.w.shape = [1e12, 1e12])), /"w" has a shape whose size overflows/],
      ['a negative dimension', safetensors(good, undefined, (h) => (h.w.shape = [-2, -3])), /"w" has a shape entry that is not a non-negative integer/],
      ['a fractional offset', safetensors(good, undefined, (h) => (h.w.data_offsets = [0, 23.5])), /data_offsets/],
      ['an unsupported dtype', safetensors([{ name: 'fp8', dtype: 'F8_E4M3', shape: [4], bytes: new Uint8Array(4) }]), /tensor "fp8" has dtype F8_E4M3, which is not supported/],
      ['a missing dtype', safetensors(good, undefined, (h) => delete h.w.dtype), /"w" has no dtype/],
      ['a tensor entry that is not an object', safetensors(good, undefined, (h) => (h.w = [1, 2])), /entry "w" is an array/],
      ['a header cut short', safetensorsRaw('{', []), /malformed: expected a string key at byte 8/],
      ['malformed JSON', safetensorsRaw('{"w": {"dtype": "F32",}}', []), /malformed: expected a string key at byte \d+/],
      ['trailing data after the JSON', safetensorsRaw('{} {}', []), /unexpected data after the JSON value at byte 3/],
      ['a duplicate key', safetensorsRaw('{"a":{},"a":{}}', []), /duplicate key "a" at byte 8/],
      ['a lone surrogate', safetensorsRaw('{"\\ud800x":{}}', []), /unpaired high surrogate/],
      ['invalid UTF-8', safetensorsRaw(Buffer.from('{"\xff":1}', 'latin1'), []), /invalid UTF-8 at byte 2/],
      ['nesting beyond the depth limit', safetensorsRaw(`{"__metadata__":{"deep":${'['.repeat(100)}${']'.repeat(100)}}}`, []), /nesting deeper than 64/],
      ['a number out of range', safetensorsRaw('{"__metadata__":{"n":1e999}}', []), /number out of range/],
    ];
    for (const [what, bytes, message] of cases) {
      test(what, async () => {
        const path = tempFile(bytes, 'bad.safetensors');
        await rejectsWith(inspectModelFile(path), 'ERR_MODEL_FORMAT', path, message);
      });
    }

    test('a header length beyond the file, or above 100 MB', async () => {
      const file = Buffer.from(safetensors(good));
      file.writeBigUInt64LE(BigInt(file.length), 0);
      let path = tempFile(file);
      await rejectsWith(inspectModelFile(path), 'ERR_MODEL_FORMAT', path, /header length \d+ exceeds the file size/);
      file.writeBigUInt64LE(2n ** 63n, 0);
      path = tempFile(file);
      await rejectsWith(inspectModelFile(path), 'ERR_MODEL_FORMAT', path, /exceeds the file size/);
      // A 101 MB header (a sparse file): refused by its length before it is parsed.
      const start = Buffer.alloc(9);
      start.writeBigUInt64LE(101n * 1024n * 1024n, 0);
      start[8] = 0x7b;
      path = tempFile(start);
      truncateSync(path, 101 * 1024 * 1024 + 8);
      await rejectsWith(inspectModelFile(path), 'ERR_MODEL_FORMAT', path, /larger than 100 MB/);
      rmSync(path);
    });
  });
});

describe('GGUF', () => {
  const shape = [3, 2, 4, 64];
  const count = shape.reduce((a, b) => a * b, 1);
  const source = randn(count, 7);

  async function roundTrip(type: GgufWriteType, values = source, dims = shape): Promise<{ path: string; data: Float32Array }> {
    const path = join(dir, `${fileCounter++}-${type}.gguf`);
    const result = await writeGgufFile(path, [{ name: 'w', tensor: new Tensor(dims, values) }], { type });
    assert.deepEqual(result.keptF16, []);
    const info = await inspectModelFile(path);
    assert.deepEqual(info.tensors, [{ name: 'w', type, shape: dims }]);
    const tensor = await readModelTensor(path, 'w');
    assert.deepEqual(tensor.shape, dims);
    return { path, data: tensor.data };
  }

  test('f32 written and read back is exact; shapes come back outermost first', async () => {
    const { data } = await roundTrip('f32');
    assertSameFloats(data, source, 'f32');
  });

  test('f16 written and read back equals the f16-rounded source', async () => {
    const wide = Float32Array.from(source, (x, i) => (i % 5 === 0 ? x * 1e-5 : i % 7 === 0 ? x * 3e4 : x));
    const { data } = await roundTrip('f16', wide);
    assertSameFloats(data, Array.from(wide, roundToHalf), 'f16');
  });

  test('bf16 written and read back keeps 8 significant bits', async () => {
    const { data } = await roundTrip('bf16');
    for (let i = 0; i < count; i++) assert.ok(Math.abs(data[i]! - source[i]!) <= Math.abs(source[i]!) * 2 ** -8);
  });

  // Block formats quantize each run of 32 consecutive values (along the innermost dimension) with
  // a scale d (and for _1 types a minimum m) stored as f16. For a block with largest magnitude
  // amax, smallest value min and largest max, ggml's reference quantizers give:
  //   q8_0: d = amax/127, q = round(x/d) in [-127, 127]      → |err| ≤ d/2 + 127·|d − f16(d)|
  //   q4_0: d = ±amax/8 (sign of the extreme), q = trunc(x/d + 8.5) clamped to [0, 15]: the
  //         extreme maps to −8, the opposite end to +8 is clamped to +7 → |err| ≤ d + 8·|d − f16(d)|
  //   q5_0: the same with 16 levels each side                     → |err| ≤ d + 16·|d − f16(d)|
  //   q4_1: d = (max − min)/15, q = round((x − min)/d)            → |err| ≤ d/2 + 15·|d − f16(d)| + |min − f16(min)|
  //   q5_1: d = (max − min)/31                                     → |err| ≤ d/2 + 31·|d − f16(d)| + |min − f16(min)|
  // with |v − f16(v)| ≤ |v|·2⁻¹¹. The bounds below are these, plus a float32 rounding allowance.
  const bounds: Record<string, (amax: number, min: number, max: number) => number> = {
    q8_0: (amax) => amax / 127 / 2 + amax * 2 ** -11,
    q4_0: (amax) => amax / 8 + amax * 2 ** -11,
    q5_0: (amax) => amax / 16 + amax * 2 ** -11,
    q4_1: (_, min, max) => (max - min) / 30 + (max - min) * 2 ** -11 + Math.abs(min) * 2 ** -11,
    q5_1: (_, min, max) => (max - min) / 62 + (max - min) * 2 ** -11 + Math.abs(min) * 2 ** -11,
  };
  for (const type of ['q8_0', 'q4_0', 'q5_0', 'q4_1', 'q5_1'] as const) {
    test(`${type} dequantizes within the error its format allows, per 32-value block`, async () => {
      const { data } = await roundTrip(type);
      let worstRatio = 0;
      for (let block = 0; block < count / 32; block++) {
        const x = source.subarray(block * 32, block * 32 + 32);
        const y = data.subarray(block * 32, block * 32 + 32);
        const amax = Math.max(...Array.from(x, Math.abs));
        const bound = bounds[type]!(amax, Math.min(...x), Math.max(...x)) * (1 + 1e-5) + 1e-7;
        for (let i = 0; i < 32; i++) {
          const err = Math.abs(y[i]! - x[i]!);
          if (err > bound) assert.fail(`${type} block ${block} element ${i}: |${y[i]} - ${x[i]}| = ${err} > ${bound}`);
          worstRatio = Math.max(worstRatio, err / bound);
        }
      }
      // The data really was quantized (not stored exactly).
      assert.ok(worstRatio > 0.05, `${type}: errors suspiciously small (${worstRatio})`);
    });
  }

  test('quantization keeps tensors whose rows are not whole blocks in f16, and says which', async () => {
    const path = join(dir, 'mixed.gguf');
    const odd = randn(3 * 5, 9);
    const result = await writeGgufFile(
      path,
      [
        { name: 'blocks', tensor: new Tensor([2, 32], randn(64, 8)) },
        { name: 'odd', tensor: new Tensor([3, 5], odd) },
        { name: 'bias', tensor: new Tensor([5], odd.subarray(0, 5)), type: 'f32' },
      ],
      { type: 'q8_0', metadata: { 'sdnode.note': 'h\u00e9llo', 'general.architecture': 'sd1' } },
    );
    assert.deepEqual(result.keptF16, ['odd']);
    const info = await inspectModelFile(path);
    assert.equal(info.format, 'gguf');
    assert.deepEqual(
      info.tensors.map((t) => [t.name, t.type]),
      [['blocks', 'q8_0'], ['odd', 'f16'], ['bias', 'f32']],
    );
    assert.deepEqual(info.metadata, { 'sdnode.note': 'h\u00e9llo', 'general.architecture': 'sd1' });
    assertSameFloats((await readModelTensor(path, 'odd')).data, Array.from(odd, roundToHalf), 'odd');
    assertSameFloats((await readModelTensor(path, 'bias')).data, odd.subarray(0, 5), 'bias');
  });

  test('converts numeric and array key-values to text', async () => {
    const kv: Buffer[] = [];
    const key = (k: string, type: number, value: Buffer) => {
      const n = Buffer.alloc(8);
      n.writeBigUInt64LE(BigInt(k.length));
      const t = Buffer.alloc(4);
      t.writeUInt32LE(type);
      kv.push(Buffer.concat([n, Buffer.from(k), t, value]));
    };
    const u32 = Buffer.alloc(4);
    u32.writeUInt32LE(320);
    key('unet.channels', 4, u32);
    const f32 = Buffer.alloc(4);
    f32.writeFloatLE(0.18215);
    key('vae.scale', 6, f32);
    key('flag', 7, Buffer.from([1]));
    const arr = Buffer.alloc(4 + 8 + 12);
    arr.writeUInt32LE(5, 0); // int32 elements
    arr.writeBigUInt64LE(3n, 4);
    arr.writeInt32LE(1, 12);
    arr.writeInt32LE(-2, 16);
    arr.writeInt32LE(3, 20);
    key('list', 9, arr);
    const path = tempFile(ggufHeader([], kv));
    const info = await inspectModelFile(path);
    assert.deepEqual(info.metadata, { 'unet.channels': '320', 'vae.scale': '0.182150006', flag: 'true', list: '[1, -2, 3]' });
    assert.deepEqual(info.tensors, []);
  });

  describe('refuses bad files', () => {
    test('a wrong version, a lying tensor offset, absurd or negative dimensions, an unknown type', async () => {
      const data = Buffer.alloc(64);
      const cases: [string, Buffer, RegExp][] = [
        ['version', (() => {
          const b = Buffer.concat([ggufHeader([{ name: 'w', ne: [16n], type: 0, offset: 0n }]), data]);
          b.writeUInt32LE(99, 4);
          return b;
        })(), /malformed or truncated/],
        ['offset', Buffer.concat([ggufHeader([{ name: 'w', ne: [16n], type: 0, offset: 32n }]), data]), /malformed or truncated/],
        ['absurd', Buffer.concat([ggufHeader([{ name: 'w', ne: [1_000_000_000_000n, 1_000_000_000_000n], type: 0, offset: 0n }]), data]), /malformed or truncated/],
        ['huge but representable', Buffer.concat([ggufHeader([{ name: 'w', ne: [1_000_000_000n, 1_000_000_000n], type: 0, offset: 0n }]), data]), /tensor "w" lies beyond the end of the file/],
        ['negative', Buffer.concat([ggufHeader([{ name: 'w', ne: [-16n], type: 0, offset: 0n }]), data]), /malformed or truncated/],
        ['type', Buffer.concat([ggufHeader([{ name: 'w', ne: [16n], type: 999, offset: 0n }]), data]), /malformed or truncated/],
        ['removed type', Buffer.concat([ggufHeader([{ name: 'w', ne: [32n], type: 4, offset: 0n }]), data]), /malformed or truncated/],
        ['row not whole blocks', Buffer.concat([ggufHeader([{ name: 'w', ne: [16n], type: 8, offset: 0n }]), data]), /malformed or truncated/],
        ['5 dimensions', Buffer.concat([ggufHeader([{ name: 'w', ne: [1n, 1n, 1n, 1n, 2n], type: 0, offset: 0n }]), data]), /malformed or truncated/],
      ];
      for (const [what, bytes, message] of cases) {
        const path = tempFile(bytes, `${what}.gguf`);
        await rejectsWith(inspectModelFile(path), 'ERR_MODEL_FORMAT', path, message);
      }
      // And a good one made the same way reads.
      const ok = tempFile(Buffer.concat([ggufHeader([{ name: 'w', ne: [16n], type: 0, offset: 0n }]), bytesOf(Float32Array.from({ length: 16 }, (_, i) => i))]));
      assertSameFloats((await readModelTensor(ok, 'w')).data, Array.from({ length: 16 }, (_, i) => i), 'hand-made GGUF');
    });

    test('an integer tensor cannot be read as float', async () => {
      const path = tempFile(Buffer.concat([ggufHeader([{ name: 'i', ne: [4n], type: 26, offset: 0n }]), Buffer.alloc(32)]));
      assert.deepEqual((await inspectModelFile(path)).tensors, [{ name: 'i', type: 'i32', shape: [4] }]);
      assertSameFloats((await readModelTensor(path, 'i')).data, [0, 0, 0, 0], 'i32');
    });
  });
});

describe('PyTorch checkpoints', () => {
  const expected = JSON.parse(readFileSync(join(fixtures, 'checkpoints.json'), 'utf8')) as {
    files: Record<string, { metadata: Record<string, string>; skipped?: string[]; tensors: Record<string, { dtype: string; shape: number[]; values: number[] }> }>;
  };
  const typeNames: Record<string, string> = { float32: 'f32', float16: 'f16', bfloat16: 'bf16', int64: 'i64' };

  for (const [file, want] of Object.entries(expected.files)) {
    test(`${file}: tensors equal torch's values`, async () => {
      const path = join(fixtures, file);
      const info = await inspectModelFile(path);
      assert.equal(info.format, 'checkpoint');
      assert.deepEqual(info.metadata, want.metadata);
      assert.deepEqual(
        info.tensors,
        Object.entries(want.tensors).map(([name, t]) => ({ name, type: typeNames[t.dtype], shape: t.shape })),
      );
      for (const name of want.skipped ?? []) assert.ok(!info.tensors.some((t) => t.name === name), `${name} should be skipped`);
      for (const [name, t] of Object.entries(want.tensors)) {
        const tensor = await readModelTensor(path, name);
        assert.deepEqual(tensor.shape, t.shape);
        assertSameFloats(tensor.data, t.values, `${file} ${name}`);
      }
    });
  }

  // Contiguity is checked from the last dimension's stride to the first; with a zero dimension
  // the product of the others is never formed (it overflowed int64 here, which UBSan reported).
  test('an empty tensor whose other dimensions multiply past int64 is listed, and read as empty', async () => {
    const path = tempFile(checkpoint([op.str('w'), tensorOps({ type: 'FloatStorage', key: '0', numel: 6 }, 0, [0, 1e12, 1e12], [1, 1e12, 1])], {
      '0': bytesOf(sixFloats),
    }));
    assert.deepEqual((await inspectModelFile(path)).tensors, [{ name: 'w', type: 'f32', shape: [0, 1e12, 1e12] }]);
    await assert.rejects(readModelTensor(path, 'w'), { code: 'ERR_OUT_OF_RANGE', message: /has no elements \(shape \[0, 1000000000000, 1000000000000\]\)/ });
  });

  for (const zip64 of [false, true]) {
    test(`a hand-made checkpoint with a tensor at a storage offset reads${zip64 ? ' (ZIP64 records)' : ''}`, async () => {
      const path = tempFile(checkpoint([op.str('w'), tensorOps({ type: 'FloatStorage', key: '0', numel: 8 }, 2, [2, 3], [3, 1])], {
        '0': bytesOf(Float32Array.from([9, 9, ...sixFloats])),
      }, { zip64 }));
      assert.deepEqual((await inspectModelFile(path)).tensors, [{ name: 'w', type: 'f32', shape: [2, 3] }]);
      assertSameFloats((await readModelTensor(path, 'w')).data, sixFloats, 'w');
    });
  }

  describe('refuses pickles that call anything else, naming the global', () => {
    const cases: [string, string, RegExp][] = [
      ['os.system (torch.save of a __reduce__ payload)', join(fixtures, 'malicious_os_system.ckpt'), /global posix\.system/],
      ['builtins.eval inside the state dict', join(fixtures, 'malicious_eval.ckpt'), /global __builtin__\.eval/],
    ];
    for (const [what, path, message] of cases) {
      test(what, async () => rejectsWith(inspectModelFile(path), 'ERR_UNSAFE_PICKLE', path, message));
    }

    const crafted: [string, PickleOp[], RegExp][] = [
      ['subprocess.Popen through STACK_GLOBAL', [op.str('subprocess'), op.str('Popen'), 0x93, op.str('ls'), 0x85, op.reduce], /global subprocess\.Popen/],
      ['os.system through INST', [op.mark, op.str('ls'), 0x69, Buffer.from('os\nsystem\n')], /global os\.system/],
      ['torch.load, an allowed module but not an allowed name', [op.global('torch', 'load'), op.emptyTuple, op.reduce], /global torch\.load/],
      ['the copyreg extension registry', [0x82, 1], /extension registry/],
    ];
    for (const [what, ops, message] of crafted) {
      test(what, async () => {
        const path = tempFile(zipStored([['archive/data.pkl', pickle(op.proto, op.emptyDict, op.str('x'), ...ops, op.setitem, op.stop)]]));
        await rejectsWith(inspectModelFile(path), 'ERR_UNSAFE_PICKLE', path, message);
      });
    }
  });

  describe('refuses malformed checkpoints', () => {
    const storage = { '0': bytesOf(sixFloats) };
    const f32 = (numel: number | bigint) => ({ type: 'FloatStorage', key: '0', numel });
    const cases: [string, Buffer, RegExp][] = [
      ['a transposed (non-contiguous) tensor, saved by torch', readFileSync(join(fixtures, 'non_contiguous.ckpt')), /tensor "transposed" is not contiguous \(size \[3, 2\], stride \[1, 3\]\)/],
      ['a storage that claims more elements than its entry holds', checkpoint([op.str('w'), tensorOps(f32(100), 0, [10, 10], [10, 1])], storage), /storage "0" is shorter than its 100 elements/],
      ['a tensor beyond its storage', checkpoint([op.str('w'), tensorOps(f32(6), 4, [2, 3], [3, 1])], storage), /tensor "w" reaches beyond its storage/],
      ['absurd dimensions', checkpoint([op.str('w'), tensorOps(f32(6), 0, [1e12, 1e12], [1e12, 1])], storage), /tensor "w" has a size that overflows/],
      ['huge dimensions within int64', checkpoint([op.str('w'), tensorOps(f32(6), 0, [1e9, 1e9], [1e9, 1])], storage), /tensor "w" reaches beyond its storage/],
      ['a negative dimension', checkpoint([op.str('w'), tensorOps(f32(6), 0, [-2, -3], [3, 1])], storage), /negative size/],
      ['a missing storage entry', checkpoint([op.str('w'), tensorOps({ type: 'FloatStorage', key: '7', numel: 6 }, 0, [6], [1])], storage), /storage "7", which is missing/],
      ['a persistent id that is not a storage', checkpoint([op.str('w'), op.str('junk'), op.binpersid], storage), /persistent id that is not a torch storage/],
      ['an unknown opcode', checkpoint([op.str('w'), 0xff], storage), /opcode 0xff/],
      ['a stack underflow', checkpoint([op.setitem, op.setitem, op.setitem], storage), /pops an empty stack|mark it never set/],
      ['a memo read of nothing', checkpoint([op.str('w'), op.binget(200)], storage), /memo entry it never stored/],
      ['a dict that contains itself', zipStored([['archive/data.pkl', pickle(op.proto, op.emptyDict, op.binput(0), op.str('self'), op.binget(0), op.setitem, op.stop)]]), /same dict twice \(or itself\)/],
      ['a pickle without STOP', zipStored([['archive/data.pkl', pickle(op.proto, op.emptyDict)]]), /without a STOP/],
      ['a pickle that is not a dict', zipStored([['archive/data.pkl', pickle(op.proto, op.str('x'), op.stop)]]), /does not hold a dict/],
      ['a ZIP without data.pkl', zipStored([['archive/other', Buffer.from('x')]]), /no data\.pkl/],
      ['a compressed data.pkl', zipStored([['archive/data.pkl', pickle(op.proto, op.emptyDict, op.stop)]], { method: 8 }), /compressed/],
      ['big-endian storages', zipStored([['archive/data.pkl', pickle(op.proto, op.emptyDict, op.stop)], ['archive/byteorder', Buffer.from('big')]]), /big-endian/],
      ['a legacy (pre-1.6) torch pickle', pickle(op.proto, op.int(1), op.stop), /legacy/],
    ];
    for (const [what, bytes, message] of cases) {
      test(what, async () => {
        const path = tempFile(bytes, 'bad.ckpt');
        await rejectsWith(inspectModelFile(path), 'ERR_MODEL_FORMAT', path, message);
      });
    }
  });
});

describe('any file', () => {
  test('a missing file, a folder, an empty file, an unknown format', async () => {
    const missing = join(dir, 'missing.safetensors');
    await rejectsWith(inspectModelFile(missing), 'ERR_FILE_NOT_FOUND', missing, /No such file/);
    await rejectsWith(readModelTensor(missing, 'w'), 'ERR_FILE_NOT_FOUND', missing);
    const folder = join(dir, 'a-folder');
    mkdirSync(folder);
    await rejectsWith(inspectModelFile(folder), 'ERR_FILE_READ', folder, /not a regular file/);
    const empty = tempFile(new Uint8Array(0));
    await rejectsWith(inspectModelFile(empty), 'ERR_MODEL_FORMAT', empty, /empty/);
    const text = tempFile(Buffer.from('just some text, no model here'));
    await rejectsWith(inspectModelFile(text), 'ERR_MODEL_FORMAT', text, /not a safetensors, GGUF or PyTorch checkpoint/);
    const magic = tempFile(Buffer.from('GGUX\x03\x00\x00\x00 and more'));
    await rejectsWith(inspectModelFile(magic), 'ERR_MODEL_FORMAT', magic);
  });

  test('a tensor that is not in the file', async () => {
    const path = tempFile(safetensors([{ name: 'w', dtype: 'F32', shape: [6], bytes: bytesOf(sixFloats) }]));
    await rejectsWith(readModelTensor(path, 'nope'), 'ERR_TENSOR_NOT_FOUND', path, /No tensor "nope"/);
  });

  test('arguments are checked before any file is touched', async () => {
    await assert.rejects(inspectModelFile(42 as never), TypeError);
    await assert.rejects(inspectModelFile('model\0.safetensors'), TypeError);
    await assert.rejects(readModelTensor('model.safetensors', 5 as never), TypeError);
    const path = join(dir, 'never.gguf');
    const t = new Tensor([32], new Float32Array(32));
    await assert.rejects(writeGgufFile(path, [{ name: 'w', tensor: t, type: 'q3_k' as never }]), RangeError);
    await assert.rejects(writeGgufFile(path, [{ name: 'w', tensor: {} as never }]), TypeError);
    await assert.rejects(writeGgufFile(path, {} as never), TypeError);
    await assert.rejects(writeGgufFile(path, [], { metadata: { n: 1 as never } }), TypeError);
    // Checked natively (before anything is written): name length, duplicates, reserved keys.
    await assert.rejects(writeGgufFile(path, [{ name: 'x'.repeat(128), tensor: t }]), /1 to 127 bytes/);
    await assert.rejects(writeGgufFile(path, [{ name: 'w', tensor: t }, { name: 'w', tensor: t }]), RangeError);
    await assert.rejects(writeGgufFile(path, [], { metadata: { 'general.alignment': '64' } }), RangeError);
    await assert.rejects(writeGgufFile(path, [{ name: 'w', tensor: new Tensor([1, 1, 1, 1, 2]) }]), /1 to 4 dimensions/);
    await assert.rejects(inspectModelFile(path), { code: 'ERR_FILE_NOT_FOUND' });
    await rejectsWith(writeGgufFile(join(dir, 'no-such-folder', 'x.gguf'), [{ name: 'w', tensor: t }]), 'ERR_FILE_WRITE', join(dir, 'no-such-folder', 'x.gguf'));
  });

  describe('no truncation or corruption of a good file crashes the process', () => {
    const goodFiles = async (): Promise<[string, Buffer][]> => {
      const gguf = join(dir, 'fuzz-source.gguf');
      await writeGgufFile(gguf, [
        { name: 'q', tensor: new Tensor([2, 64], randn(128, 11)), type: 'q4_1' },
        // Last, and a whole number of 32-byte alignment units: a GGUF file may omit the padding
        // after its last tensor, so truncating that would still leave a readable file.
        { name: 'h', tensor: new Tensor([4, 4], randn(16, 12)) },
      ], { metadata: { a: 'b' } });
      return [
        ['safetensors', Buffer.from(safetensors([
          { name: 'w', dtype: 'F32', shape: [2, 3], bytes: bytesOf(sixFloats) },
          { name: 'h', dtype: 'BF16', shape: [4], bytes: bytesOf(bfloatPatterns(4, 1)) },
        ], { a: 'b' }))],
        ['gguf', readFileSync(gguf)],
        ['checkpoint', readFileSync(join(fixtures, 'state_dict.ckpt'))],
      ];
    };

    // Either the file still reads (a flipped byte inside tensor data changes nothing structural)
    // or it is refused with a code and the path.
    async function readsOrRefuses(path: string): Promise<'read' | 'refused'> {
      try {
        const info = await inspectModelFile(path);
        for (const t of info.tensors) {
          try {
            await readModelTensor(path, t.name);
          } catch (e) {
            const error = e as Error & { code?: string; path?: string };
            if (error instanceof RangeError && /no elements/.test(error.message)) continue;
            assert.equal(error.path, path, error.message);
            assert.match(error.code ?? '', /^ERR_/, error.message);
          }
        }
        return 'read';
      } catch (e) {
        const error = e as Error & { code?: string; path?: string };
        assert.ok(error instanceof Error);
        assert.match(error.code ?? '', /^ERR_(MODEL_FORMAT|UNSAFE_PICKLE)$/, error.message);
        assert.equal(error.path, path);
        return 'refused';
      }
    }

    test('truncated at every length', async () => {
      for (const [format, bytes] of await goodFiles()) {
        const path = join(dir, `truncated.${format}`);
        for (let n = 0; n < bytes.length; n += n < 128 || n > bytes.length - 128 ? 1 : 13) {
          writeFileSync(path, bytes.subarray(0, n));
          const outcome = await readsOrRefuses(path);
          assert.equal(outcome, 'refused', `${format} truncated to ${n} of ${bytes.length} bytes was read`);
        }
      }
    });

    test('with random bytes overwritten', async () => {
      const next = rng(1234);
      for (const [format, bytes] of await goodFiles()) {
        const path = join(dir, `corrupt.${format}`);
        const outcomes = { read: 0, refused: 0 };
        for (let round = 0; round < 300; round++) {
          const copy = Buffer.from(bytes);
          const flips = 1 + Math.floor(next() * 4);
          // Headers are where the structure is: aim most corruption at the first 512 bytes.
          for (let f = 0; f < flips; f++) {
            const limit = next() < 0.8 ? Math.min(512, copy.length) : copy.length;
            copy[Math.floor(next() * limit)] = Math.floor(next() * 256);
          }
          writeFileSync(path, copy);
          outcomes[await readsOrRefuses(path)]++;
        }
        assert.ok(outcomes.refused > 0, `${format}: no corruption was noticed`);
      }
    });
  });

  test('after all of the above, good files of every format still read', async () => {
    const st = tempFile(safetensors([{ name: 'w', dtype: 'F32', shape: [2, 3], bytes: bytesOf(sixFloats) }]));
    assertSameFloats((await readModelTensor(st, 'w')).data, sixFloats, 'safetensors');
    const gguf = join(dir, 'final.gguf');
    await writeGgufFile(gguf, [{ name: 'w', tensor: new Tensor([2, 3], sixFloats), type: 'f32' }]);
    assertSameFloats((await readModelTensor(gguf, 'w')).data, sixFloats, 'gguf');
    const ckpt = join(fixtures, 'state_dict.ckpt');
    assert.equal((await readModelTensor(ckpt, 'model.conv.weight')).size, 4 * 3 * 3 * 3);
  });
});
