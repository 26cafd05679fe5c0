// Meaning tests for the demo model (models/demo-sd1-tiny.gguf, trained by tools/train-demo/ on
// procedural shapes and colours): does the picture show what the prompt asks? Simple statistics
// of the generated pixels, no other model: the background is the border's median colour, the
// shape is every pixel far from it, and its moments (area, centroid, fill of its bounding box,
// a hole at its centre) and mean colour are compared with the prompt. Each case draws SAMPLES
// images (one batch: as many independent noise draws) and states how many must pass; the counts
// reached by the shipped model are in tools/README.md. What the model does not do yet is a `todo`
// test: it runs and reports its count without failing the suite (issue 23).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';

import sharp from 'sharp';

import { inspectModelFile, StableDiffusion, type GenerationResult, type Tensor } from '../lib/index.js';
import { packageRoot } from '../lib/native.js';

// SDNODE_TEST_DEMO_MODEL: run the same checks on another file (a retrained model).
const DEMO = process.env.SDNODE_TEST_DEMO_MODEL || join(packageRoot, 'models', 'demo-sd1-tiny.gguf');
// These checks are for a trained model (tools/make-demo-model.ts marks it in its metadata); on
// the random-weight demo they are skipped, saying so.
const trained = String((await inspectModelFile(DEMO)).metadata['sdnode.converted_from'] ?? '').startsWith('tools/train-demo');
const skip = trained ? false : `${DEMO} is not a model trained by tools/train-demo (the random-weight demo is still shipped)`;
const SAMPLES = 10;
const SIZE = 64;
// Guidance 3: the tiny model's conditional and unconditional predictions differ far more than a
// real SD's do, and 7.5 pushes the colours past the named ones (blue comes out purple or cyan).
const GUIDANCE = 3;
const base = { steps: 12, scheduler: 'dpmpp_2m', guidanceScale: GUIDANCE, batchSize: SAMPLES } as const;

// The training palette (tools/train-demo/shapes.py, COLOURS).
type RGB = [number, number, number];
const PALETTE: Record<string, RGB> = {
  red: [220, 30, 30], orange: [245, 135, 20], yellow: [245, 215, 30], green: [30, 170, 50],
  cyan: [30, 200, 215], blue: [35, 65, 225], purple: [135, 45, 190], pink: [250, 110, 185],
  white: [255, 255, 255], black: [0, 0, 0],
};

interface Shape {
  /** Pixels of the shape (far from the background colour). */
  area: number;
  cx: number;
  cy: number;
  /** area / area of the bounding box: square ≈ 1, circle ≈ 0.79, ring, cross, triangle, star lower. */
  fill: number;
  /** The centroid's 2×2 pixels are background (a ring's hole). */
  hole: boolean;
  /** The palette colour nearest to the mean of the shape's core pixels. */
  colour: string;
  rgb: RGB;
  mask: Uint8Array;
}

const dist = (a: RGB, b: RGB): number => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
const nearest = (rgb: RGB): string => Object.entries(PALETTE).sort((a, b) => dist(rgb, a[1]) - dist(rgb, b[1]))[0]![0];
const median = (v: number[]): number => v.sort((a, b) => a - b)[v.length >> 1]!;

type Pixels = Pick<Tensor, 'shape' | 'data'>;

/** The i-th image of a [B, 3, H, W] batch in [0, 1] as 0–255 RGB per pixel. */
function rgbAt(images: Pixels, i: number): (x: number, y: number) => RGB {
  const [, , h, w] = images.shape as [number, number, number, number];
  const plane = h * w;
  const data = images.data.subarray(i * 3 * plane, (i + 1) * 3 * plane);
  return (x, y) => [data[y * w + x]! * 255, data[plane + y * w + x]! * 255, data[2 * plane + y * w + x]! * 255];
}

function analyse(images: Pixels, i: number): Shape {
  const px = rgbAt(images, i);
  const border: RGB[] = [];
  for (let k = 0; k < SIZE; ++k) border.push(px(k, 0), px(k, SIZE - 1), px(0, k), px(SIZE - 1, k));
  const bg: RGB = [0, 1, 2].map((c) => median(border.map((p) => p[c]!))) as RGB;
  const mask = new Uint8Array(SIZE * SIZE);
  let area = 0, sx = 0, sy = 0, x0 = SIZE, x1 = -1, y0 = SIZE, y1 = -1;
  const core: RGB = [0, 0, 0];
  let coreCount = 0;
  for (let y = 0; y < SIZE; ++y) {
    for (let x = 0; x < SIZE; ++x) {
      const p = px(x, y);
      const d = dist(p, bg);
      if (d < 80) continue;
      mask[y * SIZE + x] = 1;
      ++area;
      sx += x + 0.5;
      sy += y + 0.5;
      x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      if (d >= 120) {
        for (let c = 0; c < 3; ++c) core[c] += p[c]!;
        ++coreCount;
      }
    }
  }
  if (area === 0) return { area, cx: NaN, cy: NaN, fill: 0, hole: false, colour: 'none', rgb: bg, mask };
  const cx = sx / area, cy = sy / area;
  const rgb = (coreCount ? core.map((v) => v / coreCount) : bg) as RGB;
  const hx = Math.round(cx) - 1, hy = Math.round(cy) - 1;
  const hole = [0, 1].every((dy) => [0, 1].every((dx) => !mask[(hy + dy) * SIZE + hx + dx]));
  return { area, cx, cy, fill: area / ((x1 - x0 + 1) * (y1 - y0 + 1)), hole, colour: coreCount ? nearest(rgb) : 'none', rgb, mask };
}

let sd: StableDiffusion;
before(async () => {
  if (!trained) return;
  sd = await StableDiffusion.load({ model: DEMO, backend: 'cpu', threads: 2 });
});
after(async () => {
  await sd?.dispose();
});

async function shapesOf(run: Promise<GenerationResult>): Promise<Shape[]> {
  const { images } = await run;
  assert.ok(images);
  return Array.from({ length: images.shape[0]! }, (_, i) => analyse(images, i));
}

function txt2img(prompt: string, seed: number, extra: Record<string, unknown> = {}): Promise<Shape[]> {
  return shapesOf(sd.txt2img({ ...base, prompt, seed, ...extra }));
}

/** Reports how many of the shapes pass (a diagnostic line) and requires `need` of them; the
 * assertion message lists what each one was. */
function expectAtLeast(t: TestContext, shapes: Shape[], need: number, pass: (s: Shape) => boolean, what: string): number {
  const passed = shapes.filter(pass).length;
  t.diagnostic(`${what}: ${passed}/${shapes.length} (need ${need})`);
  const seen = shapes.map((s) => `${s.colour} area ${s.area} at (${s.cx.toFixed(0)},${s.cy.toFixed(0)}) fill ${s.fill.toFixed(2)}${s.hole ? ' hole' : ''}`);
  assert.ok(passed >= need, `${what}: ${passed} of ${shapes.length} passed, need ${need}\n  ${seen.join('\n  ')}`);
  return passed;
}

/** An SVG drawn by sharp, as a raw RGB image. */
async function drawn(svgBody: string): Promise<{ data: Buffer; width: number; height: number; channels: 3 }> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${SIZE}" height="${SIZE}"><rect width="64" height="64" fill="white"/>${svgBody}</svg>`;
  const { data, info } = await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: 3 };
}

describe('the demo model draws what the prompt says', { timeout: 120_000, skip }, () => {
  test('the named colour', async (t) => {
    for (const [colour, seed] of [['red', 1], ['green', 2], ['blue', 3], ['yellow', 4]] as const) {
      const shapes = await txt2img(`a ${colour} circle on a white background`, seed);
      expectAtLeast(t, shapes, 9, (s) => s.colour === colour, `"${colour} circle"`);
    }
  });

  test('the named position', async (t) => {
    const cases = [
      ['in the top left', (s: Shape) => s.cx < 28 && s.cy < 28],
      ['in the bottom right', (s: Shape) => s.cx > 36 && s.cy > 36],
      ['on the left', (s: Shape) => s.cx < 28 && s.cy > 22 && s.cy < 42],
      ['at the top', (s: Shape) => s.cy < 28 && s.cx > 22 && s.cx < 42],
    ] as const;
    for (const [where, pass] of cases) {
      const shapes = await txt2img(`a small blue square ${where} on a white background`, 5);
      expectAtLeast(t, shapes, 7, pass, `"${where}"`);
    }
  });

  test('the named size and shape (mask moments)', async (t) => {
    const small = await txt2img('a small green circle on a white background', 6);
    const large = await txt2img('a large green circle on a white background', 6);
    const mean = (s: Shape[]): number => s.reduce((a, b) => a + b.area, 0) / s.length;
    assert.ok(mean(large) > 2 * mean(small), `large ${mean(large)} vs small ${mean(small)} pixels`);
    expectAtLeast(t, large, 9, (s) => s.fill > 0.68 && s.fill < 0.88 && !s.hole, 'large circle: fill ≈ 0.79');
    const squares = await txt2img('a large red square on a white background', 7);
    // The VAE rounds the corners a little: 6 of 10 squares reach a fill of 0.88 (a circle's is 0.79).
    expectAtLeast(t, squares, 5, (s) => s.fill >= 0.88, 'square: fill ≥ 0.88');
    const rings = await txt2img('a large purple ring on a white background', 8);
    expectAtLeast(t, rings, 8, (s) => s.hole && s.fill < 0.75, 'ring: a hole at the centre');
    const crosses = await txt2img('a large blue cross on a white background', 9);
    expectAtLeast(t, crosses, 8, (s) => !s.hole && s.fill < 0.68, 'cross: centre filled, fill < 0.68');
  });
});

describe('guidance, negative prompts, img2img and inpainting act as they should', { timeout: 120_000, skip }, () => {
  test(`guidance ${GUIDANCE} follows the prompt better than guidance 1`, async (t) => {
    // Colour and position together, over four prompts.
    const prompts = [
      ['red', 'in the top left', (s: Shape) => s.cx < 28 && s.cy < 28],
      ['green', 'in the bottom right', (s: Shape) => s.cx > 36 && s.cy > 36],
      ['blue', 'in the top right', (s: Shape) => s.cx > 36 && s.cy < 28],
      ['yellow', 'in the bottom left', (s: Shape) => s.cx < 28 && s.cy > 36],
    ] as const;
    let at1 = 0, atGuidance = 0;
    for (const [i, [colour, where, place]] of prompts.entries()) {
      const prompt = `a small ${colour} star ${where} on a black background`;
      const pass = (s: Shape): boolean => s.colour === colour && place(s);
      at1 += (await txt2img(prompt, 20 + i, { guidanceScale: 1 })).filter(pass).length;
      atGuidance += (await txt2img(prompt, 20 + i)).filter(pass).length;
    }
    t.diagnostic(`colour and position: guidance ${GUIDANCE} ${atGuidance}/40, guidance 1 ${at1}/40`);
    assert.ok(atGuidance >= 34, `guidance ${GUIDANCE}: ${atGuidance} of 40 follow colour and position`);
    assert.ok(atGuidance >= at1 + 3, `guidance ${GUIDANCE}: ${atGuidance} of 40, guidance 1: ${at1} of 40`);
  });

  test('a negative prompt "red" moves the colour away from red', async (t) => {
    const redness = (s: Shape): number => s.rgb[0] - Math.max(s.rgb[1], s.rgb[2]);
    const prompt = 'a large circle on a white background';
    const plain = await txt2img(prompt, 30);
    const negative = await txt2img(prompt, 30, { negativePrompt: 'red' });
    const reds = (s: Shape[]): number => s.filter((x) => x.colour === 'red').length;
    const mean = (s: Shape[]): number => s.reduce((a, b) => a + redness(b), 0) / s.length;
    t.diagnostic(`red: ${reds(plain)}/${SAMPLES} without, ${reds(negative)}/${SAMPLES} with; mean redness ${mean(plain).toFixed(0)} → ${mean(negative).toFixed(0)}`);
    assert.ok(reds(negative) === 0, `${reds(negative)} red circles with the negative prompt`);
    assert.ok(mean(negative) < mean(plain) - 30, `redness ${mean(negative).toFixed(0)} with, ${mean(plain).toFixed(0)} without`);
  });

  // The input of the img2img tests: a large blue square in the centre on white, drawn by sharp.
  const square = async () => {
    const image = await drawn('<rect x="18" y="18" width="28" height="28" fill="rgb(35,65,225)"/>');
    return { image, input: analyse({ shape: [1, 3, SIZE, SIZE], data: planar(image.data) }, 0) };
  };
  const newPrompt = 'a small red circle in the top left on a white background';

  // Open (issue 23): the shipped model redraws the prompt's red circle even at strength 0.3 (0 of
  // 10 keep the square): at a quarter of the noise its prediction still follows the prompt more
  // than the picture.
  test('img2img keeps the input at strength 0.3', { todo: 'the shipped model keeps 0 of 10 (issue 23)' }, async (t) => {
    const { image, input } = await square();
    const low = await shapesOf(sd.img2img({ ...base, prompt: newPrompt, image, strength: 0.3, seed: 40 }));
    expectAtLeast(t, low, 9, (s) => iou(s.mask, input.mask) > 0.7 && s.colour === 'blue', 'strength 0.3 keeps the blue square');
  });

  test('img2img follows the new prompt at strength 0.9', async (t) => {
    const { image, input } = await square();
    const high = await shapesOf(sd.img2img({ ...base, prompt: newPrompt, image, strength: 0.9, seed: 41 }));
    expectAtLeast(t, high, 8, (s) => s.colour === 'red' && s.cx < 32 && s.cy < 32 && iou(s.mask, input.mask) < 0.5,
      'strength 0.9 draws the red circle in the top left');
  });

  test('inpainting repaints the mask and leaves the rest', async (t) => {
    // A red circle on the left; the mask is the right half; the prompt asks for a blue square there.
    const image = await drawn('<circle cx="16" cy="32" r="10" fill="rgb(220,30,30)"/>');
    const maskPixels = Buffer.alloc(SIZE * SIZE);
    for (let y = 0; y < SIZE; ++y) for (let x = 32; x < SIZE; ++x) maskPixels[y * SIZE + x] = 255;
    const mask = { data: maskPixels, width: SIZE, height: SIZE, channels: 1 as const };
    const { images } = await sd.inpaint({ ...base, prompt: 'a large blue square on the right on a white background', image, mask, seed: 50 });
    assert.ok(images);
    const original = planar(image.data);
    let blueInMask = 0;
    for (let i = 0; i < SAMPLES; ++i) {
      let keptDiff = 0, kept = 0, changed = 0, blue = 0;
      const out = rgbAt(images, i);
      for (let y = 0; y < SIZE; ++y) {
        for (let x = 0; x < SIZE; ++x) {
          const p = out(x, y);
          const o: RGB = [original[y * SIZE + x]!, original[SIZE * SIZE + y * SIZE + x]!, original[2 * SIZE * SIZE + y * SIZE + x]!].map((v) => v * 255) as RGB;
          const d = (Math.abs(p[0] - o[0]) + Math.abs(p[1] - o[1]) + Math.abs(p[2] - o[2])) / 3;
          if (x < 28) { keptDiff += d; ++kept; }                  // away from the mask's edge
          else if (x >= 36) { changed += d > 40 ? 1 : 0; blue += nearest(p) === 'blue' ? 1 : 0; }
        }
      }
      // Unmasked: within what the VAE's round trip changes (this VAE's held-out error is 7 of
      // 255 on average, and the shipped model's images move by 11–14 here).
      assert.ok(keptDiff / kept < 16, `image ${i}: the unmasked half moved by ${(keptDiff / kept).toFixed(1)} on average`);
      if (changed > 100 && blue > 100) ++blueInMask;
    }
    t.diagnostic(`blue shape in the masked half: ${blueInMask}/${SAMPLES}`);
    assert.ok(blueInMask >= 8, `${blueInMask} of ${SAMPLES} images have a blue shape in the masked half`);
  });
});

/** Interleaved 0–255 RGB → planar [3, H, W] in [0, 1]. */
function planar(rgb: Uint8Array): Float32Array {
  const n = rgb.length / 3;
  const out = new Float32Array(rgb.length);
  for (let i = 0; i < n; ++i) for (let c = 0; c < 3; ++c) out[c * n + i] = rgb[i * 3 + c]! / 255;
  return out;
}

function iou(a: Uint8Array, b: Uint8Array): number {
  let both = 0, either = 0;
  for (let i = 0; i < a.length; ++i) {
    both += a[i]! & b[i]!;
    either += a[i]! | b[i]!;
  }
  return either ? both / either : 0;
}
