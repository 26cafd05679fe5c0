// Generation parameters in AUTOMATIC1111's "infotext" format and the PNG text chunk that carries
// them. A1111 (and the tools that read its images: civitai, ComfyUI's loaders, image browsers)
// look for a `parameters` chunk holding
//
//   <prompt>
//   Negative prompt: <negative prompt>
//   Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model hash: …, Model: …
//
// where a value containing a comma, colon, quote or line break, or with white space at either end,
// is written as a JSON string.
import { inflateSync, crc32 } from 'node:zlib';

import { A1111_SCHEDULER_NAMES, canonicalSchedulerName, SCHEDULER_NAMES, type SchedulerName } from './scheduler.js';
import { parseLoraTags } from './lora.js';
import type { AppliedLora, GenerationParameters, HiresParameters } from './types.js';
import { describe } from './validate.js';
import { ArgumentRangeError, ArgumentTypeError } from './errors.js';

/**
 * Our scheduler names → the sampler names A1111 writes (and reads back): the inverse of
 * A1111_SCHEDULER_NAMES; ours without an A1111 counterpart (DDPM) are written in upper case,
 * which canonicalSchedulerName still reads.
 */
export const A1111_SAMPLER_NAMES: Readonly<Record<SchedulerName, string>> = Object.freeze(
  Object.fromEntries(
    SCHEDULER_NAMES.map((name) => [name, Object.entries(A1111_SCHEDULER_NAMES).find(([, ours]) => ours === name)?.[0] ?? name.toUpperCase()]),
  ) as Record<SchedulerName, string>,
);

/** What an image's infotext records. Fields left undefined are not written. */
export interface InfotextParameters {
  /** The prompt. */
  prompt: string;
  /** The negative prompt ("Negative prompt"). */
  negativePrompt?: string;
  /** Denoising steps ("Steps"). */
  steps?: number;
  /** Our scheduler name (or A1111's); written as A1111's sampler name. */
  sampler?: string;
  /** Classifier-free guidance ("CFG scale"). */
  guidanceScale?: number;
  /** The seed ("Seed"). */
  seed?: number | bigint;
  /** Image width ("Size": WxH). */
  width?: number;
  /** Image height. */
  height?: number;
  /** First 10 hex digits of the model file's sha256 (A1111's "AutoV2" hash). */
  modelHash?: string;
  /** The model file's name without extension, as A1111 writes it. */
  model?: string;
  /** img2img / inpaint / depth2img strength ("Denoising strength"). */
  strength?: number;
  /** A1111's "Clip skip". */
  clipSkip?: number;
  /** Set for images from a batch of more than one: the batch size and this image's 0-based position. */
  batchSize?: number;
  /** This image's 0-based position in its batch ("Batch pos"). */
  batchPosition?: number;
  /** Any other `Key: value` fields, written after the known ones and read back verbatim. */
  extra?: Record<string, string>;
}

// Quoted where the reader would otherwise cut or change the value: a comma, colon, quote or line
// break, or white space at either end (unquoted values are trimmed when read).
function quote(value: string): string {
  return /[,:"\n\r]/.test(value) || value !== value.trim() ? JSON.stringify(value) : value;
}

function formatNumber(value: number): string {
  return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)));
}

/** The infotext for one image, in A1111's layout. */
export function formatParameters(p: InfotextParameters): string {
  const fields: [string, string | undefined][] = [
    ['Steps', p.steps === undefined ? undefined : String(p.steps)],
    ['Sampler', p.sampler === undefined ? undefined : samplerLabel(p.sampler)],
    ['CFG scale', p.guidanceScale === undefined ? undefined : formatNumber(p.guidanceScale)],
    ['Seed', p.seed === undefined ? undefined : String(p.seed)],
    ['Size', p.width === undefined || p.height === undefined ? undefined : `${p.width}x${p.height}`],
    ['Model hash', p.modelHash],
    ['Model', p.model],
    ['Denoising strength', p.strength === undefined ? undefined : formatNumber(p.strength)],
    // A1111 omits clip skip 1, its default.
    ['Clip skip', p.clipSkip === undefined || p.clipSkip === 1 ? undefined : String(p.clipSkip)],
    ['Batch size', p.batchSize === undefined || p.batchSize === 1 ? undefined : String(p.batchSize)],
    ['Batch pos', p.batchSize === undefined || p.batchSize === 1 || p.batchPosition === undefined ? undefined : String(p.batchPosition)],
    ...Object.entries(p.extra ?? {}),
  ];
  const line = fields
    .filter((f): f is [string, string] => f[1] !== undefined && f[1] !== '')
    .map(([key, value]) => `${key}: ${quote(value)}`)
    .join(', ');
  const negative = p.negativePrompt ? `\nNegative prompt: ${p.negativePrompt}` : '';
  return `${p.prompt}${negative}${line ? `\n${line}` : ''}`;
}

/** What only the caller knows for `toInfotext`: the model's name and hash, the LoRAs' and embeddings' hashes. */
export interface InfotextContext {
  /** The model file's name without extension ("Model"). */
  model?: string;
  /** A1111's model hash ("Model hash"). */
  modelHash?: string;
  /** LoRA name → hash (`networkHashes`), written as "Lora hashes". */
  loraHashes?: Record<string, string>;
  /** Embedding name → hash (`networkHashes`), written as "TI hashes". */
  embeddingHashes?: Record<string, string>;
}

function hashList(hashes: Record<string, string> | undefined): string | undefined {
  if (hashes === undefined || Object.keys(hashes).length === 0) return undefined;
  return Object.entries(hashes).map(([name, hash]) => `${name}: ${hash}`).join(', ');
}

function weightText(value: number): string {
  return String(Number(value.toPrecision(6)));
}

/**
 * The prompt with a `<lora:NAME:W>` tag (or `<lora:NAME:TE:UNET>`) for every LoRA of `loras`
 * that no tag of the prompt names (those of `options.loras` and `sd.loras`), so that the
 * infotext reproduces the image, as A1111 writes it.
 */
export function promptWithLoraTags(prompt: string, loras: readonly AppliedLora[] | undefined): string {
  if (loras === undefined || loras.length === 0) return prompt;
  const tagged = new Set(parseLoraTags(prompt).loras.map((t) => t.name.toLowerCase()));
  const added = loras
    .filter((l) => !tagged.has(l.name.toLowerCase()))
    .map((l) =>
      l.textEncoderWeight === l.unetWeight
        ? `<lora:${l.name}:${weightText(l.unetWeight)}>`
        : `<lora:${l.name}:${weightText(l.textEncoderWeight)}:${weightText(l.unetWeight)}>`,
    );
  return added.length === 0 ? prompt : `${prompt}${prompt === '' ? '' : ' '}${added.join(' ')}`;
}

/**
 * The infotext fields of image `index` of a pipeline's result: `parameters` as the pipelines
 * return them, plus what only the caller knows (the model's name and hash, and the hashes of
 * LoRAs and embeddings from `networkHashes`). LoRAs not named by a prompt tag get one.
 */
export function toInfotext(
  parameters: GenerationParameters,
  index = 0,
  model: InfotextContext = {},
): InfotextParameters {
  const p = parameters;
  const loraHashes = hashList(model.loraHashes);
  const tiHashes = hashList(model.embeddingHashes);
  return {
    prompt: promptWithLoraTags(p.prompt, p.loras),
    negativePrompt: p.negativePrompt,
    steps: p.steps,
    sampler: p.scheduler,
    guidanceScale: p.guidanceScale,
    seed: p.seed,
    // A1111 writes the first pass's size; the hires fields say how it was enlarged.
    width: p.hires?.firstWidth ?? p.width,
    height: p.hires?.firstHeight ?? p.height,
    ...(model.modelHash !== undefined && { modelHash: model.modelHash }),
    ...(model.model !== undefined && { model: model.model }),
    ...(p.strength !== undefined && (p.pipeline !== 'txt2img' || p.hires !== undefined) && { strength: p.strength }),
    ...(p.clipSkip !== undefined && { clipSkip: p.clipSkip }),
    ...(p.batchSize > 1 && { batchSize: p.batchSize, batchPosition: index }),
    ...((p.hires !== undefined || loraHashes !== undefined || tiHashes !== undefined) && {
      extra: {
        ...(p.hires !== undefined && hiresFields(p.hires)),
        ...(loraHashes !== undefined && { 'Lora hashes': loraHashes }),
        ...(tiHashes !== undefined && { 'TI hashes': tiHashes }),
      },
    }),
  };
}

/** A1111's infotext fields of the hires fix. */
function hiresFields(h: HiresParameters): Record<string, string> {
  return {
    ...(h.scale !== undefined ? { 'Hires upscale': String(h.scale) } : { 'Hires resize': `${h.resizeWidth ?? 0}x${h.resizeHeight ?? 0}` }),
    'Hires steps': String(h.steps),
    'Hires upscaler': h.upscaler,
  };
}

/** A1111's sampler name for one of ours; names it does not know are written as given. */
export function samplerLabel(name: string): string {
  const canonical = canonicalSchedulerName(name);
  return canonical === undefined ? name : A1111_SAMPLER_NAMES[canonical];
}

// One `Key: value` field: a key of word characters, spaces, dashes and slashes, then a JSON
// string or anything up to the next comma.
const FIELD = /\s*(\w[\w \-/+]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)/gy;

function parseFields(line: string): Record<string, string> | undefined {
  const fields: Record<string, string> = {};
  FIELD.lastIndex = 0;
  let count = 0;
  while (FIELD.lastIndex < line.length) {
    const match = FIELD.exec(line);
    if (match === null) return undefined;
    let value = match[2]!.trim();
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        // A value that only looks quoted stays as written.
      }
    }
    fields[match[1]!] = value;
    count++;
  }
  return count > 0 ? fields : undefined;
}

/** Parsed infotext: the known fields typed, the rest in `extra`. */
export interface ParsedParameters extends InfotextParameters {
  /** The negative prompt ('' when the infotext has none). */
  negativePrompt: string;
  /** Every `Key: value` field as written (quotes removed). */
  fields: Record<string, string>;
}

function toInteger(value: string | undefined, key: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value)) throw new ArgumentRangeError(`Expected an integer for "${key}" in the image's parameters but found ${describe(value)}`);
  return Number(value);
}

function toNumber(value: string | undefined, key: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) {
    throw new ArgumentRangeError(`Expected a number for "${key}" in the image's parameters but found ${describe(value)}`);
  }
  return n;
}

const KNOWN = new Set(['Steps', 'Sampler', 'Schedule type', 'CFG scale', 'Seed', 'Size', 'Model hash', 'Model', 'Denoising strength', 'Clip skip', 'Batch size', 'Batch pos']);

/**
 * Reads A1111's infotext: the prompt (every line up to "Negative prompt:" or the fields line),
 * the negative prompt, and the last line's fields. Sampler names come back as ours where we have
 * the sampler (A1111 1.9+ writes the Karras schedule as a separate "Schedule type"), else as written.
 */
export function parseParameters(text: string): ParsedParameters {
  if (typeof text !== 'string') throw new ArgumentTypeError(`Expected the parameters to be a string but received ${describe(text)}`);
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  let fields: Record<string, string> = {};
  // A1111 takes the last line as fields only when it has at least three of them: a prompt line
  // such as "masterpiece, style: oil" is not a fields line.
  if (lines.length > 0) {
    const last = parseFields(lines[lines.length - 1]!);
    if (last !== undefined && Object.keys(last).length >= 3) {
      fields = last;
      lines.pop();
    }
  }
  const prompt: string[] = [];
  const negative: string[] = [];
  let inNegative = false;
  for (const line of lines) {
    if (!inNegative && line.startsWith('Negative prompt:')) {
      inNegative = true;
      negative.push(line.slice('Negative prompt:'.length).trimStart());
    } else {
      (inNegative ? negative : prompt).push(line);
    }
  }
  const result: ParsedParameters = { prompt: prompt.join('\n').trim(), negativePrompt: negative.join('\n').trim(), fields };
  const steps = toInteger(fields.Steps, 'Steps');
  if (steps !== undefined) result.steps = steps;
  if (fields.Sampler !== undefined) {
    let sampler = fields.Sampler;
    const schedule = fields['Schedule type'];
    if (schedule !== undefined && schedule.toLowerCase() === 'karras' && !/karras$/i.test(sampler)) sampler = `${sampler} Karras`;
    result.sampler = canonicalSchedulerName(sampler) ?? sampler;
  }
  const cfg = toNumber(fields['CFG scale'], 'CFG scale');
  if (cfg !== undefined) result.guidanceScale = cfg;
  if (fields.Seed !== undefined) {
    if (!/^\d+$/.test(fields.Seed)) throw new ArgumentRangeError(`Expected a non-negative integer for "Seed" in the image's parameters but found ${describe(fields.Seed)}`);
    const seed = BigInt(fields.Seed);
    result.seed = seed <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(seed) : seed;
  }
  if (fields.Size !== undefined) {
    const size = /^(\d+)x(\d+)$/.exec(fields.Size);
    if (size === null) throw new ArgumentRangeError(`Expected "Size" as WIDTHxHEIGHT in the image's parameters but found ${describe(fields.Size)}`);
    result.width = Number(size[1]);
    result.height = Number(size[2]);
  }
  if (fields['Model hash'] !== undefined) result.modelHash = fields['Model hash'];
  if (fields.Model !== undefined) result.model = fields.Model;
  const strength = toNumber(fields['Denoising strength'], 'Denoising strength');
  if (strength !== undefined) result.strength = strength;
  const clipSkip = toInteger(fields['Clip skip'], 'Clip skip');
  if (clipSkip !== undefined) result.clipSkip = clipSkip;
  const batchSize = toInteger(fields['Batch size'], 'Batch size');
  if (batchSize !== undefined) result.batchSize = batchSize;
  const batchPosition = toInteger(fields['Batch pos'], 'Batch pos');
  if (batchPosition !== undefined) result.batchPosition = batchPosition;
  const extra = Object.fromEntries(Object.entries(fields).filter(([key]) => !KNOWN.has(key)));
  if (Object.keys(extra).length > 0) result.extra = extra;
  return result;
}

// PNG chunks -------------------------------------------------------------------------------

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && SIGNATURE.every((b, i) => bytes[i] === b);
}

interface Chunk {
  type: string;
  /** Offset of the chunk's length field. */
  start: number;
  data: Uint8Array;
}

function* chunks(png: Uint8Array): Generator<Chunk> {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  let offset = 8;
  while (offset + 12 <= png.length) {
    const length = view.getUint32(offset);
    const type = String.fromCharCode(...png.subarray(offset + 4, offset + 8));
    if (offset + 12 + length > png.length) throw new ArgumentRangeError(`The PNG's ${type} chunk runs past the end of the file`);
    yield { type, start: offset, data: png.subarray(offset + 8, offset + 8 + length) };
    offset += 12 + length;
    if (type === 'IEND') return;
  }
}

function isLatin1(text: string): boolean {
  return /^[\u0000-\u00ff]*$/.test(text);
}

/**
 * `png` with a text chunk `keyword` = `text` added before IEND (any chunk with that keyword
 * removed first): tEXt when the text is Latin-1, else uncompressed iTXt in UTF-8, as PIL's
 * PngInfo.add_text writes it for A1111.
 */
export function setPngText(png: Uint8Array, keyword: string, text: string): Buffer {
  if (!isPng(png)) throw new ArgumentTypeError('Expected PNG data (the PNG signature is missing)');
  if (!/^[\u0020-\u007e\u00a1-\u00ff]{1,79}$/.test(keyword) || keyword !== keyword.trim()) {
    throw new ArgumentRangeError(`Expected a PNG text keyword of 1 to 79 Latin-1 characters but received ${describe(keyword)}`);
  }
  const latin1 = isLatin1(text);
  const body = latin1
    ? Buffer.concat([Buffer.from(keyword, 'latin1'), Buffer.of(0), Buffer.from(text, 'latin1')])
    : Buffer.concat([Buffer.from(keyword, 'latin1'), Buffer.of(0, 0, 0, 0, 0), Buffer.from(text, 'utf8')]);
  const type = Buffer.from(latin1 ? 'tEXt' : 'iTXt', 'latin1');
  const chunk = Buffer.alloc(12 + body.length);
  chunk.writeUInt32BE(body.length, 0);
  type.copy(chunk, 4);
  body.copy(chunk, 8);
  chunk.writeUInt32BE(crc32(Buffer.concat([type, body])) >>> 0, 8 + body.length);
  const parts: Uint8Array[] = [png.subarray(0, 8)];
  let inserted = false;
  for (const c of chunks(png)) {
    const whole = png.subarray(c.start, c.start + 12 + c.data.length);
    if ((c.type === 'tEXt' || c.type === 'iTXt' || c.type === 'zTXt') && textChunk(c)?.keyword === keyword) continue;
    if (c.type === 'IEND') {
      parts.push(chunk);
      inserted = true;
    }
    parts.push(whole);
  }
  if (!inserted) throw new ArgumentRangeError('The PNG has no IEND chunk');
  return Buffer.concat(parts);
}

function textChunk(c: Chunk): { keyword: string; text: string } | undefined {
  const nul = c.data.indexOf(0);
  if (nul <= 0) return undefined;
  const keyword = Buffer.from(c.data.subarray(0, nul)).toString('latin1');
  const rest = c.data.subarray(nul + 1);
  if (c.type === 'tEXt') return { keyword, text: Buffer.from(rest).toString('latin1') };
  if (c.type === 'zTXt') return { keyword, text: inflateSync(rest.subarray(1)).toString('latin1') };
  // iTXt: compression flag, method, language tag\0, translated keyword\0, text.
  const compressed = rest[0] === 1;
  const language = rest.indexOf(0, 2);
  const translated = language < 0 ? -1 : rest.indexOf(0, language + 1);
  if (translated < 0) return undefined;
  const data = rest.subarray(translated + 1);
  return { keyword, text: (compressed ? inflateSync(data) : Buffer.from(data)).toString('utf8') };
}

/** Every tEXt, zTXt and iTXt chunk of a PNG, keyword → text (the first of each keyword). */
export function readPngText(png: Uint8Array): Record<string, string> {
  if (!isPng(png)) throw new ArgumentTypeError('Expected PNG data (the PNG signature is missing)');
  const out: Record<string, string> = {};
  for (const c of chunks(png)) {
    if (c.type !== 'tEXt' && c.type !== 'zTXt' && c.type !== 'iTXt') continue;
    let t: { keyword: string; text: string } | undefined;
    try {
      t = textChunk(c);
    } catch {
      continue; // a corrupt compressed chunk hides only itself
    }
    if (t !== undefined && !(t.keyword in out)) out[t.keyword] = t.text;
  }
  return out;
}

// EXIF (JPEG, WebP) -------------------------------------------------------------------------

/**
 * The EXIF UserComment of an EXIF block (as sharp's `metadata().exif` gives it, with or without
 * the "Exif\0\0" header), where A1111 keeps the parameters of its JPEG and WebP images.
 */
export function readExifUserComment(exif: Uint8Array): string | undefined {
  let base = 0;
  if (exif.length >= 6 && Buffer.from(exif.subarray(0, 6)).toString('latin1') === 'Exif\0\0') base = 6;
  if (exif.length < base + 8) return undefined;
  const view = new DataView(exif.buffer, exif.byteOffset + base, exif.byteLength - base);
  const order = view.getUint16(0);
  if (order !== 0x4949 && order !== 0x4d4d) return undefined;
  const little = order === 0x4949;
  const u16 = (at: number) => view.getUint16(at, little);
  const u32 = (at: number) => view.getUint32(at, little);
  // One IFD's entry for `tag`: [type, count, value offset] or undefined.
  const find = (ifd: number, tag: number): [number, number, number] | undefined => {
    if (ifd + 2 > view.byteLength) return undefined;
    const n = u16(ifd);
    for (let i = 0; i < n; i++) {
      const entry = ifd + 2 + i * 12;
      if (entry + 12 > view.byteLength) return undefined;
      if (u16(entry) === tag) return [u16(entry + 2), u32(entry + 4), entry + 8];
    }
    return undefined;
  };
  const pointer = find(u32(4), 0x8769);
  if (pointer === undefined) return undefined;
  const comment = find(u32(pointer[2]), 0x9286);
  if (comment === undefined || comment[1] < 8) return undefined;
  const start = u32(comment[2]); // 8 bytes or more: never inline
  if (start + comment[1] > view.byteLength) return undefined;
  const bytes = Buffer.from(exif.buffer, exif.byteOffset + base + start, comment[1]);
  const prefix = bytes.subarray(0, 8).toString('latin1');
  const body = bytes.subarray(8);
  if (prefix.startsWith('UNICODE')) {
    // piexif (A1111) writes UTF-16 big-endian; others follow the TIFF byte order.
    let bigEndian = !little;
    if (body.length >= 2) bigEndian = body[0] === 0 || (body[1] !== 0 && !little);
    const even = Buffer.from(body.subarray(0, body.length - (body.length % 2)));
    if (bigEndian) even.swap16();
    return even.toString('utf16le').replace(/\0+$/, '');
  }
  return body.toString(prefix.startsWith('ASCII') ? 'latin1' : 'utf8').replace(/\0+$/, '');
}
