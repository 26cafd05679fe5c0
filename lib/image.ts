// Image inputs and outputs for the pipelines. Pixels enter as float32 NCHW tensors in [0, 1]
// (diffusers' 'pt' convention) and leave the same way; files, encoded bytes, sharp instances and
// raw pixels go through sharp (libvips), so every format sharp reads is accepted.
import { stat, writeFile } from 'node:fs/promises';

import sharp, { type Sharp } from 'sharp';

import { ArgumentRangeError, ArgumentTypeError, StableDiffusionError } from './errors.js';
import { formatParameters, setPngText, type InfotextParameters } from './png-parameters.js';
import { Tensor, tensorArgument, type TensorLike } from './tensor.js';
import { describe, expectInteger, expectKnownKeys, expectObject, expectPath, optionNames } from './validate.js';

/** Raw interleaved 8-bit pixels, as sharp's `.raw()` gives them. */
export interface RawImage {
  /** width × height × channels bytes, row by row, the channels of a pixel together. */
  data: Uint8Array | Uint8ClampedArray;
  /** Pixels across. */
  width: number;
  /** Pixels down. */
  height: number;
  /** Gray, gray and alpha, RGB or RGBA. */
  channels: 1 | 2 | 3 | 4;
}

/**
 * An image for a pipeline: a file path, an encoded image in a Buffer (any format sharp reads),
 * a sharp instance, raw pixels, or a float tensor [3, H, W] / [B, 3, H, W] in [0, 1].
 */
export type ImageInput = string | Uint8Array | RawImage | TensorLike | {
  /** A sharp instance (anything with sharp's toBuffer). */
  toBuffer: unknown;
};

function isTensorLike(value: unknown): value is TensorLike {
  const v = value as { shape?: unknown; data?: unknown } | null;
  return typeof v === 'object' && v !== null && Array.isArray(v.shape) && v.data instanceof Float32Array;
}

function isRawImage(value: unknown): value is RawImage {
  const v = value as Partial<RawImage> | null;
  return typeof v === 'object' && v !== null && !(v instanceof Uint8Array) && (v.data instanceof Uint8Array || v.data instanceof Uint8ClampedArray);
}

function isSharp(value: unknown): value is Sharp {
  const v = value as { toBuffer?: unknown; clone?: unknown } | null;
  return typeof v === 'object' && v !== null && typeof v.toBuffer === 'function' && typeof v.clone === 'function';
}

// The biggest side sharp is asked to decode: far above any SD size, small enough that a hostile
// header cannot make libvips allocate gigabytes.
const MAX_SIDE = 16384;

/**
 * A sharp pipeline for any non-tensor input, oriented as its EXIF says (diffusers' load_image
 * applies exif_transpose too). Files are checked first so a missing one is named as such.
 */
async function open(input: unknown, name: string): Promise<{ image: Sharp; source: string }> {
  if (typeof input === 'string') {
    if (input.length === 0) throw new ArgumentRangeError(`Expected ${name} to be a path but received ""`);
    try {
      const s = await stat(input);
      if (!s.isFile()) throw new StableDiffusionError('ERR_FILE_READ', `Cannot read ${name} ${input}: not a file`, { path: input });
    } catch (error) {
      if (error instanceof StableDiffusionError) throw error;
      throw new StableDiffusionError('ERR_FILE_NOT_FOUND', `${name} ${input} does not exist`, { path: input, cause: error });
    }
    return { image: sharp(input, { limitInputPixels: MAX_SIDE * MAX_SIDE }).autoOrient(), source: input };
  }
  if (isSharp(input)) return { image: input.clone().autoOrient(), source: `${name} (a sharp instance)` };
  if (isRawImage(input)) {
    const width = expectInteger(input.width, `${name}.width`, 1, MAX_SIDE);
    const height = expectInteger(input.height, `${name}.height`, 1, MAX_SIDE);
    const channels = expectInteger(input.channels, `${name}.channels`, 1, 4) as RawImage['channels'];
    if (input.data.length !== width * height * channels) {
      throw new ArgumentRangeError(`Expected ${name}.data to hold ${width}×${height}×${channels} = ${width * height * channels} bytes but received ${input.data.length}`);
    }
    return { image: sharp(input.data, { raw: { width, height, channels } }), source: name };
  }
  if (input instanceof Uint8Array) {
    if (input.length === 0) throw new ArgumentTypeError(`Expected ${name} to be an encoded image but received 0 bytes`);
    return { image: sharp(input, { limitInputPixels: MAX_SIDE * MAX_SIDE }).autoOrient(), source: name };
  }
  throw new ArgumentTypeError(`Expected ${name} to be an image path, Buffer, sharp instance, raw pixels or tensor but received ${describe(input)}`);
}

/** Runs a sharp pipeline, turning libvips' complaints about the input into one clear error. */
async function decode<T>(source: string, name: string, input: unknown, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof StableDiffusionError || error instanceof RangeError || error instanceof TypeError) throw error;
    const reason = (error instanceof Error ? error.message : String(error)).split('\n')[0];
    if (typeof input === 'string') {
      throw new StableDiffusionError('ERR_FILE_READ', `Cannot read ${name} ${source}: ${reason}`, { path: input, cause: error });
    }
    throw new ArgumentTypeError(`Expected ${name} to be an image sharp can read but it failed: ${reason}`, { cause: error });
  }
}

/** 16-bit samples over a Buffer's bytes (copied if the Buffer is not 2-byte aligned). */
function uint16(data: Buffer, length: number): Uint16Array {
  if (data.byteOffset % 2 === 0) return new Uint16Array(data.buffer, data.byteOffset, length);
  return new Uint16Array(Uint8Array.from(data.subarray(0, length * 2)).buffer);
}

/** Interleaved HWC bytes → planar [1, C, H, W] float32 divided by `max`. */
function planar(data: ArrayLike<number>, width: number, height: number, channels: number, take: number[], max: number): Tensor {
  const plane = width * height;
  const out = new Float32Array(take.length * plane);
  for (let c = 0; c < take.length; c++) {
    const source = take[c]!;
    const base = c * plane;
    for (let i = 0; i < plane; i++) out[base + i] = data[i * channels + source]! / max;
  }
  return new Tensor([1, take.length, height, width], out);
}

/** An image → [B, 3, H, W] float32 in [0, 1] at its own size; alpha is dropped (PIL's convert('RGB')). */
export async function readImage(input: unknown, name: string): Promise<Tensor> {
  if (isTensorLike(input)) {
    const t = tensorArgument(input, name);
    const image = t.rank === 3 ? t.reshape([1, ...t.shape]) : t;
    if (image.rank !== 4 || image.shape[1] !== 3 || image.size === 0) {
      throw new ArgumentRangeError(`Expected ${name} as a tensor of shape [batch, 3, height, width] but received [${t.shape.join(', ')}]`);
    }
    return image;
  }
  const { image, source } = await open(input, name);
  return decode(source, name, input, async () => {
    const { data, info } = await image.toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    const take = info.channels >= 3 ? [0, 1, 2] : [0, 0, 0];
    return planar(data, info.width, info.height, info.channels, take, 255);
  });
}

/**
 * A mask → [B, 1, H, W] float32 in [0, 1]; white (1) marks what to repaint. An image with an
 * alpha channel that is not fully opaque is read from its alpha (opaque = repaint: a mask painted
 * on a transparent layer); others from their luminance, as PIL's convert('L') computes it.
 */
export async function readMask(input: unknown, name: string): Promise<Tensor> {
  if (isTensorLike(input)) {
    const t = tensorArgument(input, name);
    const mask = t.rank === 2 ? t.reshape([1, 1, ...t.shape]) : t.rank === 3 ? t.reshape([t.shape[0]!, 1, t.shape[1]!, t.shape[2]!]) : t;
    if (mask.rank !== 4 || mask.shape[1] !== 1 || mask.size === 0) {
      throw new ArgumentRangeError(`Expected ${name} as a tensor of shape [batch, 1, height, width] but received [${t.shape.join(', ')}]`);
    }
    return mask;
  }
  const { image, source } = await open(input, name);
  return decode(source, name, input, async () => {
    const { data, info } = await image.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    const { width, height, channels } = info;
    const hasAlpha = channels === 2 || channels === 4;
    if (hasAlpha) {
      let opaque = true;
      for (let i = channels - 1; i < data.length; i += channels) {
        if (data[i] !== 255) {
          opaque = false;
          break;
        }
      }
      if (!opaque) return planar(data, width, height, channels, [channels - 1], 255);
    }
    if (channels <= 2) return planar(data, width, height, channels, [0], 255);
    // PIL's RGB → L: ITU-R 601-2 luma in 16-bit fixed point, rounded.
    const plane = width * height;
    const out = new Float32Array(plane);
    for (let i = 0; i < plane; i++) {
      const p = i * channels;
      out[i] = ((data[p]! * 19595 + data[p + 1]! * 38470 + data[p + 2]! * 7471 + 0x8000) >>> 16) / 255;
    }
    return new Tensor([1, 1, height, width], out);
  });
}

/**
 * A depth map → [B, 1, H, W] float32 in [0, 1], any scale (the pipeline normalises it). 16-bit
 * images keep their 65536 levels; colour images give luminance.
 */
export async function readDepthMap(input: unknown, name: string): Promise<Tensor> {
  if (isTensorLike(input)) return readMask(input, name);
  const { image, source } = await open(input, name);
  return decode(source, name, input, async () => {
    const meta = await image.metadata();
    const depth = meta.depth ?? 'uchar';
    const wide = depth !== 'uchar' && depth !== 'char';
    // sharp's output colourspace defaults to sRGB (8-bit, three channels); grey16 keeps 16 bits.
    const single = image.toColourspace(wide ? 'grey16' : 'b-w').extractChannel(0);
    const { data, info } = await single.raw({ depth: wide ? 'ushort' : 'uchar' }).toBuffer({ resolveWithObject: true });
    const values = wide ? uint16(data, info.width * info.height) : data;
    return planar(values, info.width, info.height, 1, [0], wide ? 65535 : 255);
  });
}

/**
 * Resizes [B, C, H, W] in [0, 1] (C = 1, 3 or 4) to width × height with sharp's Lanczos-3 (the
 * filter diffusers' PIL resize uses; or `kernel` 'nearest'), through 16-bit pixels so that 8-bit
 * rounding is not added.
 */
export async function resizeImage(image: Tensor, width: number, height: number, kernel: 'lanczos3' | 'nearest' = 'lanczos3'): Promise<Tensor> {
  expectInteger(width, 'width', 1, MAX_SIDE);
  expectInteger(height, 'height', 1, MAX_SIDE);
  if (image.rank !== 4 || image.size === 0) {
    throw new ArgumentRangeError(`Expected an image tensor [batch, channels, height, width] but received [${image.shape.join(', ')}]`);
  }
  const [batch, channels, h, w] = image.shape as [number, number, number, number];
  if (h === height && w === width) return image;
  if (channels < 1 || channels > 4) throw new ArgumentRangeError(`Expected 1 to 4 image channels to resize but received ${channels}`);
  const inPlane = h * w;
  const outPlane = width * height;
  const out = new Float32Array(batch * channels * outPlane);
  for (let b = 0; b < batch; b++) {
    const pixels = new Uint16Array(inPlane * channels);
    const base = b * channels * inPlane;
    for (let c = 0; c < channels; c++) {
      for (let i = 0; i < inPlane; i++) {
        const v = image.data[base + c * inPlane + i]!;
        pixels[i * channels + c] = Math.round((v < 0 ? 0 : v > 1 ? 1 : v) * 65535);
      }
    }
    const { data } = await sharp(pixels, { raw: { width: w, height: h, channels: channels as 1 | 2 | 3 | 4 } })
      // Alpha, if any, is data here, not to be premultiplied into the colours.
      .resize(width, height, { kernel, fit: 'fill' })
      // Without this sharp would convert to 8-bit sRGB on output.
      .toColourspace(channels >= 3 ? 'rgb16' : 'grey16')
      .raw({ depth: 'ushort' })
      .toBuffer({ resolveWithObject: true });
    const resized = uint16(data, outPlane * channels);
    const outBase = b * channels * outPlane;
    for (let c = 0; c < channels; c++) {
      for (let i = 0; i < outPlane; i++) out[outBase + c * outPlane + i] = resized[i * channels + c]! / 65535;
    }
  }
  return new Tensor([batch, channels, height, width], out);
}

// Output ---------------------------------------------------------------------------------------

/** The formats images are written in. */
export const IMAGE_FORMATS = ['png', 'jpeg', 'webp'] as const;
/** One of IMAGE_FORMATS. */
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

/** The format a file name asks for (.png, .jpg/.jpeg, .webp), or undefined. */
export function formatForPath(path: string): ImageFormat | undefined {
  const ext = /\.([^./\\]+)$/.exec(path)?.[1]?.toLowerCase();
  if (ext === 'png') return 'png';
  if (ext === 'jpg' || ext === 'jpeg') return 'jpeg';
  if (ext === 'webp') return 'webp';
  return undefined;
}

/**
 * One image of [B, 3, H, W] in [0, 1] as 8-bit RGB bytes, rounded as diffusers' numpy_to_pil
 * does: (x · 255).round() in float32, halves to even.
 */
export function toRgbBytes(
  images: TensorLike,
  index = 0,
): {
  /** width × height × 3 bytes, row by row. */
  data: Buffer;
  /** Pixels across. */
  width: number;
  /** Pixels down. */
  height: number;
  /** Always 3 (RGB). */
  channels: 3;
} {
  const t = Tensor.of(images);
  if (t.rank !== 4 || t.shape[1] !== 3) throw new ArgumentRangeError(`Expected images of shape [batch, 3, height, width] but received [${t.shape.join(', ')}]`);
  const [batch, , height, width] = t.shape as [number, number, number, number];
  expectInteger(index, 'index', 0, batch - 1);
  const plane = width * height;
  const base = index * 3 * plane;
  const data = Buffer.alloc(plane * 3);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < plane; i++) {
      const v = Math.fround(t.data[base + c * plane + i]! * 255);
      const floor = Math.floor(v);
      const frac = v - floor;
      const r = frac > 0.5 || (frac === 0.5 && floor % 2 !== 0) ? floor + 1 : floor;
      data[i * 3 + c] = r < 0 ? 0 : r > 255 ? 255 : r;
    }
  }
  return { data, width, height, channels: 3 };
}

/** Options of `encodeImage` and `saveImage`. */
export interface EncodeImageOptions {
  /** Default 'png'. */
  format?: ImageFormat;
  /** JPEG / WebP quality 1–100 (default 90). */
  quality?: number;
  /**
   * A1111's parameters: a PNG `parameters` text chunk, or for JPEG/WebP the EXIF UserComment
   * (only when the text is ASCII, which is all libvips can store there). A string is written as given.
   */
  parameters?: InfotextParameters | string;
}

const ENCODE_IMAGE_OPTIONS = optionNames<EncodeImageOptions>({ format: true, quality: true, parameters: true });

/** One image of a [B, 3, H, W] tensor in [0, 1] → PNG, JPEG or WebP bytes. */
export async function encodeImage(images: TensorLike, index = 0, options: EncodeImageOptions = {}): Promise<Buffer> {
  const o = expectObject(options, 'options');
  expectKnownKeys(o, 'options', ENCODE_IMAGE_OPTIONS);
  const format = o.format === undefined ? 'png' : (o.format as ImageFormat);
  if (!IMAGE_FORMATS.includes(format)) throw new ArgumentRangeError(`Expected options.format to be one of ${IMAGE_FORMATS.join(', ')} but received ${describe(o.format)}`);
  const quality = o.quality === undefined ? 90 : expectInteger(o.quality, 'options.quality', 1, 100);
  const raw = toRgbBytes(images, index);
  const image = sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: 3 } });
  if (format === 'png') {
    const png = await image.png().toBuffer();
    if (options.parameters === undefined) return png;
    const text = typeof options.parameters === 'string' ? options.parameters : formatParameters(options.parameters);
    return setPngText(png, 'parameters', text);
  }
  const encoded = format === 'jpeg' ? image.jpeg({ quality }) : image.webp({ quality });
  if (options.parameters !== undefined) {
    const text = typeof options.parameters === 'string' ? options.parameters : formatParameters(options.parameters);
    // A1111 keeps JPEG/WebP parameters in EXIF UserComment. libvips writes it as ASCII and would
    // transliterate other characters, so such text is left out rather than stored altered.
    if (/^[\x00-\x7f]*$/.test(text)) encoded.withExif({ IFD2: { UserComment: text } });
  }
  return encoded.toBuffer();
}

/**
 * Writes one image of a [B, 3, H, W] tensor in [0, 1] to `path`, as PNG, JPEG or WebP by its
 * extension; PNGs carry `options.parameters` as A1111's `parameters` chunk.
 */
export async function saveImage(images: TensorLike, path: string, options: EncodeImageOptions & { index?: number } = {}): Promise<void> {
  const file = expectPath(path, 'path');
  const format = options.format ?? formatForPath(file);
  if (format === undefined) throw new ArgumentRangeError(`Expected path to end in .png, .jpg, .jpeg or .webp but received ${describe(file)}`);
  const { index = 0, ...rest } = options;
  const data = await encodeImage(images, index, { ...rest, format });
  try {
    await writeFile(file, data);
  } catch (error) {
    throw new StableDiffusionError('ERR_FILE_WRITE', `Cannot write ${file}: ${(error as Error).message}`, { path: file, cause: error });
  }
}
