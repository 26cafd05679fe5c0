// Analytic FLOP counts for the three networks, from their architecture (sd.info), so that the
// benchmark can print achieved GFLOP/s. Convention (see bench/README.md, "Counting FLOPs"): what
// PyTorch's torch.utils.flop_counter.FlopCounterMode reports for diffusers' models, i.e.
// 2 FLOPs per multiply-accumulate of every convolution, linear layer and attention matmul
// (Q·Kᵀ and softmax·V), nothing for normalisations, activations, softmax, additions, resampling.
// `node --import tsx bench/flops.ts [size …]` prints the SD 1.5 counts.

export interface UNetShape {
  inChannels: number;
  outChannels: number;
  blockChannels: number[];
  crossAttention: boolean[];
  layersPerBlock: number;
  transformerDepth: number;
  contextDim: number;
  timeEmbedDim: number;
}

export interface VaeShape {
  blockChannels: number[];
  layersPerBlock: number;
  latentChannels: number;
}

export interface TextEncoderShape {
  hidden: number;
  intermediate: number;
  layersUsed: number;
  maxPositions: number;
}

/** SD 1.5's shapes (stable-diffusion-v1-5 configs), for when no model is loaded. */
export const SD15 = {
  unet: {
    inChannels: 4, outChannels: 4, blockChannels: [320, 640, 1280, 1280],
    crossAttention: [true, true, true, false], layersPerBlock: 2, transformerDepth: 1,
    contextDim: 768, timeEmbedDim: 1280,
  } satisfies UNetShape,
  vae: { blockChannels: [128, 256, 512, 512], layersPerBlock: 2, latentChannels: 4 } satisfies VaeShape,
  textEncoder: { hidden: 768, intermediate: 3072, layersUsed: 12, maxPositions: 77 } satisfies TextEncoderShape,
};

// Multiply-accumulates of the building blocks (per batch item).
const conv = (cin: number, cout: number, k: number, pixelsOut: number): number => cin * cout * k * k * pixelsOut;
const linear = (cin: number, cout: number, rows: number): number => cin * cout * rows;
/** Q·Kᵀ and P·V: 2 · queries · keys · width, whatever the head split. */
const attention = (queries: number, keys: number, width: number): number => 2 * queries * keys * width;

function resnet(cin: number, cout: number, pixels: number, timeEmbedDim: number): number {
  return (
    conv(cin, cout, 3, pixels) +
    conv(cout, cout, 3, pixels) +
    (cin !== cout ? conv(cin, cout, 1, pixels) : 0) +
    (timeEmbedDim > 0 ? linear(timeEmbedDim, cout, 1) : 0)
  );
}

/** Transformer2DModel: proj_in, depth × (self-attention, cross-attention, GEGLU feed-forward), proj_out. */
function transformer(ch: number, pixels: number, depth: number, contextDim: number, tokens: number): number {
  const selfAttn = 4 * linear(ch, ch, pixels) + attention(pixels, pixels, ch);
  const crossAttn = 2 * linear(ch, ch, pixels) + 2 * linear(contextDim, ch, tokens) + attention(pixels, tokens, ch);
  const feedForward = linear(ch, 8 * ch, pixels) + linear(4 * ch, ch, pixels);
  return 2 * linear(ch, ch, pixels) + depth * (selfAttn + crossAttn + feedForward);
}

/** UNet2DConditionModel forward, MACs per batch item, for a latent of `latent` × `latent`. */
export function unetMacs(u: UNetShape, latent: number, tokens = 77): number {
  const levels = u.blockChannels.length;
  const temb = u.timeEmbedDim;
  const px = (level: number): number => (latent >> level) ** 2;
  let macs = linear(u.blockChannels[0]!, temb, 1) + linear(temb, temb, 1); // time embedding
  macs += conv(u.inChannels, u.blockChannels[0]!, 3, px(0));
  const skips: number[] = [u.blockChannels[0]!];
  let ch = u.blockChannels[0]!;
  for (let level = 0; level < levels; level++) {
    const out = u.blockChannels[level]!;
    for (let j = 0; j < u.layersPerBlock; j++) {
      macs += resnet(ch, out, px(level), temb);
      if (u.crossAttention[level]) macs += transformer(out, px(level), u.transformerDepth, u.contextDim, tokens);
      ch = out;
      skips.push(ch);
    }
    if (level < levels - 1) {
      macs += conv(ch, ch, 3, px(level + 1)); // stride-2 downsample
      skips.push(ch);
    }
  }
  const bottom = levels - 1;
  macs += 2 * resnet(ch, ch, px(bottom), temb) + transformer(ch, px(bottom), u.transformerDepth, u.contextDim, tokens);
  for (let level = bottom; level >= 0; level--) {
    const out = u.blockChannels[level]!;
    for (let j = 0; j <= u.layersPerBlock; j++) {
      macs += resnet(ch + skips.pop()!, out, px(level), temb);
      if (u.crossAttention[level]) macs += transformer(out, px(level), u.transformerDepth, u.contextDim, tokens);
      ch = out;
    }
    if (level > 0) macs += conv(ch, ch, 3, px(level - 1)); // nearest ×2, then a 3×3 convolution
  }
  return macs + conv(ch, u.outChannels, 3, px(0));
}

/** AutoencoderKL decode (post_quant_conv + decoder), MACs per image, latent `latent` × `latent`. */
export function vaeDecodeMacs(v: VaeShape, latent: number): number {
  const chans = [...v.blockChannels].reverse();
  let side = latent;
  let ch = chans[0]!;
  let macs = conv(v.latentChannels, v.latentChannels, 1, side ** 2) + conv(v.latentChannels, ch, 3, side ** 2);
  // Mid block: resnet, single-head self-attention over every pixel, resnet.
  macs += 2 * resnet(ch, ch, side ** 2, 0) + 4 * linear(ch, ch, side ** 2) + attention(side ** 2, side ** 2, ch);
  chans.forEach((out, i) => {
    for (let j = 0; j <= v.layersPerBlock; j++) {
      macs += resnet(ch, out, side ** 2, 0);
      ch = out;
    }
    if (i < chans.length - 1) {
      side *= 2;
      macs += conv(ch, ch, 3, side ** 2);
    }
  });
  return macs + conv(ch, 3, 3, side ** 2);
}

/** CLIP text transformer, MACs for one sequence of `tokens`. */
export function textEncoderMacs(t: TextEncoderShape, tokens = t.maxPositions): number {
  const layer =
    4 * linear(t.hidden, t.hidden, tokens) + attention(tokens, tokens, t.hidden) + 2 * linear(t.hidden, t.intermediate, tokens);
  return t.layersUsed * layer;
}

/** FLOPs (2 per MAC) of the benchmark's figures: one guided UNet step (batch 2), one VAE decode, one 77-token encode. */
export function benchFlops(
  shapes: { unet: UNetShape; vae: VaeShape; textEncoder: TextEncoderShape },
  size: number,
): { unetStep: number; vaeDecode: number; textEncode: number } {
  const latent = size / 8;
  return {
    unetStep: 2 * 2 * unetMacs(shapes.unet, latent),
    vaeDecode: 2 * vaeDecodeMacs(shapes.vae, latent),
    textEncode: 2 * textEncoderMacs(shapes.textEncoder),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const sizes = process.argv.length > 2 ? process.argv.slice(2).map(Number) : [256, 512];
  for (const size of sizes) {
    const latent = size / 8;
    const tflop = (macs: number): string => ((2 * macs) / 1e12).toFixed(3);
    console.log(
      `${size}²: UNet ${tflop(unetMacs(SD15.unet, latent))} TFLOP per image (batch 1), ` +
        `VAE decode ${tflop(vaeDecodeMacs(SD15.vae, latent))} TFLOP, text encode ${tflop(textEncoderMacs(SD15.textEncoder))} TFLOP`,
    );
  }
}
