// transformers' CLIPImageProcessor as the safety checker's feature extractor runs it on the
// pipeline's 8-bit images: the shortest edge to `size` with PIL's bicubic resampling, a centre
// crop of size², then (x / 255 − mean) / std with CLIP's mean and std. The resampling follows
// Pillow's published algorithm (separable passes, horizontal first, each rounded to 8 bits with
// 22-bit fixed-point weights), so the crop matches PIL's to the byte; sharp's cubic kernel would
// not.
import { Tensor } from './tensor.js';
import { toRgbBytes } from './image.js';

/** OpenAI CLIP's per-channel mean and standard deviation (RGB). */
const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD = [0.26862954, 0.26130258, 0.27577711];

// Pillow's fixed-point precision for 8-bit images: 32 bits less 8 for the value and 2 for headroom.
const PRECISION_BITS = 22;
const ONE = 2 ** PRECISION_BITS;

/** Keys's cubic with a = −0.5 (PIL's BICUBIC), support 2. */
function bicubic(x: number): number {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** Per output position: the first input index and the fixed-point weights of the inputs it reads. */
function coefficients(inSize: number, outSize: number): { first: number; weights: number[] }[] {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);  // downscaling widens the kernel (antialiasing)
  const support = 2 * filterScale;
  const result: { first: number; weights: number[] }[] = [];
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const first = Math.max(Math.trunc(center - support + 0.5), 0);
    const end = Math.min(Math.trunc(center + support + 0.5), inSize);
    const raw: number[] = [];
    let total = 0;
    for (let i = first; i < end; i++) {
      const w = bicubic((i - center + 0.5) / filterScale);
      raw.push(w);
      total += w;
    }
    const weights = raw.map((w) => {
      const normalized = total === 0 ? w : w / total;
      return normalized < 0 ? Math.trunc(-0.5 + normalized * ONE) : Math.trunc(0.5 + normalized * ONE);
    });
    result.push({ first, weights });
  }
  return result;
}

function clip8(sum: number): number {
  const v = Math.floor(sum / ONE);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Interleaved RGB bytes resized along one axis. `horizontal`: width inSize → outSize (height
 * `lines`); otherwise height inSize → outSize (width `lines`).
 */
function resample(src: Uint8Array, lines: number, inSize: number, outSize: number, horizontal: boolean): Uint8Array {
  const coeffs = coefficients(inSize, outSize);
  const out = new Uint8Array(lines * outSize * 3);
  for (let line = 0; line < lines; line++) {
    for (let o = 0; o < outSize; o++) {
      const { first, weights } = coeffs[o]!;
      for (let c = 0; c < 3; c++) {
        let sum = ONE / 2;  // rounds the final shift to nearest
        for (let k = 0; k < weights.length; k++) {
          const i = first + k;
          const at = horizontal ? (line * inSize + i) * 3 + c : (i * lines + line) * 3 + c;
          sum += src[at]! * weights[k]!;
        }
        out[(horizontal ? line * outSize + o : o * lines + line) * 3 + c] = clip8(sum);
      }
    }
  }
  return out;
}

/** PIL's Image.resize((width, height), BICUBIC) on interleaved RGB bytes. */
export function resizeBicubicLikePil(rgb: Uint8Array, width: number, height: number, toWidth: number, toHeight: number): Uint8Array {
  let data = rgb;
  if (toWidth !== width) data = resample(data, height, width, toWidth, true);
  if (toHeight !== height) data = resample(data, toWidth, height, toHeight, false);
  return data;
}

/**
 * One image's RGB bytes as CLIPImageProcessor resizes and crops them (shortest edge to `size`,
 * the long edge to ⌊size · long / short⌋, then the centre size × size).
 */
export function clipResizeAndCrop(rgb: Uint8Array, width: number, height: number, size: number): Uint8Array {
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newLong = Math.trunc((size * long) / short);
  const [toWidth, toHeight] = width <= height ? [size, newLong] : [newLong, size];
  const resized = resizeBicubicLikePil(rgb, width, height, toWidth, toHeight);
  const top = Math.floor((toHeight - size) / 2);
  const left = Math.floor((toWidth - size) / 2);
  const out = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    const from = ((top + y) * toWidth + left) * 3;
    out.set(resized.subarray(from, from + size * 3), y * size * 3);
  }
  return out;
}

/** Cropped RGB bytes (size × size) → one image's pixel values [3, size, size] in `out` at `offset`, in float32 as numpy computes them. */
function normalizeInto(rgb: Uint8Array, size: number, out: Float32Array, offset: number): void {
  const plane = size * size;
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(CLIP_MEAN[c]!);
    const std = Math.fround(CLIP_STD[c]!);
    for (let i = 0; i < plane; i++) {
      const v = Math.fround(rgb[i * 3 + c]! * (1 / 255));
      out[offset + c * plane + i] = Math.fround(Math.fround(v - mean) / std);
    }
  }
}

/**
 * Images [B, 3, H, W] in [0, 1] → the safety checker's input [B, 3, size, size]: each image
 * rounded to 8 bits as diffusers' numpy_to_pil rounds it, then CLIPImageProcessor's steps.
 */
export function clipPixelValues(images: Tensor, size: number): Tensor {
  const batch = images.shape[0]!;
  const out = new Float32Array(batch * 3 * size * size);
  for (let b = 0; b < batch; b++) {
    const { data, width, height } = toRgbBytes(images, b);
    normalizeInto(clipResizeAndCrop(data, width, height, size), size, out, b * 3 * size * size);
  }
  return new Tensor([batch, 3, size, size], out);
}

/** Cropped RGB bytes (size × size) → pixel values [1, 3, size, size] (for tests and tools). */
export function clipNormalize(rgb: Uint8Array, size: number): Tensor {
  const out = new Float32Array(3 * size * size);
  normalizeInto(rgb, size, out, 0);
  return new Tensor([1, 3, size, size], out);
}
