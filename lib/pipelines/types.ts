// The pipelines' options and results (lib/index.ts exports them), and what they need of a model.
import type { ImageInput } from '../image.js';
import type { Scheduler, SchedulerOverrides } from '../scheduler.js';
import type { Tensor, TensorLike } from '../tensor.js';
import type { EncodePromptOptions, PromptEmbeddings } from '../text-encoder.js';
import type { GenerationParameters, LoraSpec, MemoryUsage, Seed } from '../types.js';
import { optionNames } from '../validate.js';
import type { SafetyChecker } from '../safety-checker.js';
import type { TinyVae } from '../tiny-vae.js';
import type { UNet } from '../unet.js';
import type { Upscaler } from '../upscaler.js';
import type { Vae } from '../vae.js';

/** What a pipeline returns: decoded images (`tensor`) or only the latents (`latent`). */
export const OUTPUT_TYPES = ['tensor', 'latent'] as const;
/** One of OUTPUT_TYPES. */
export type OutputType = (typeof OUTPUT_TYPES)[number];

/** How `onStep` previews are made (see PreviewMethod). */
export const PREVIEW_METHODS = ['latent', 'vae', 'taesd'] as const;
/**
 * 'latent': a linear latent → RGB map at 1/8 size (free); 'vae': the VAE decoder at full size (a
 * decode each time); 'taesd': the tiny VAE loaded with `tinyVae` at full size (a small fraction of
 * a VAE decode).
 */
export type PreviewMethod = (typeof PREVIEW_METHODS)[number];

/** What `onStep` receives after each denoising step. */
export interface StepInfo {
  /** 1-based: 1 after the first step, `steps` after the last. */
  step: number;
  /** UNet evaluations in this run: the timesteps visited (PNDM takes one more than asked, Heun 2·n − 1; img2img fewer, by strength). */
  steps: number;
  /** The timestep just denoised. */
  timestep: number;
  /** Milliseconds since the generation started. */
  elapsedMs: number;
  /**
   * The latents after this step, [B, 4, h, w], scaled as the scheduler holds them (divide by
   * `vae.scalingFactor` before `vae.decode`): what a caller that stops the loop early can decode.
   */
  latents: Tensor;
  /** With `preview`: the current latents as RGB in [0, 1], [B, 3, h, w] (every `previewEvery` steps and at the last). */
  preview?: Tensor;
  /** With `hires`: 'first' during the first pass, 'hires' during the second (whose `step` counts from 1 again). */
  pass?: 'first' | 'hires';
}

/** Return `false` (or a promise of it) to stop the generation with an AbortError. */
export type StepCallback = (info: StepInfo) => boolean | void | Promise<boolean | void>;

/** Options every pipeline takes. */
export interface GenerationOptions {
  /** The prompt (A1111 attention syntax unless `promptWeighting` is false). */
  prompt: string;
  /** Default '' (diffusers' unconditional embedding). */
  negativePrompt?: string;
  /**
   * Multiples of 8. txt2img default: the model's image size (`sd.info.imageSize`); the image
   * pipelines default to the input image's size rounded down to a multiple of 8 and resize the
   * image when it differs.
   */
  width?: number;
  /** As width. */
  height?: number;
  /** Default 50. */
  steps?: number;
  /** Default 7.5; at most 1 runs no unconditional pass (as diffusers). */
  guidanceScale?: number;
  /**
   * A scheduler name (ours or A1111's; default 'pndm'), built with the model's prediction type,
   * or a Scheduler used as given (make it with `sd.createScheduler` to get the model's).
   */
  scheduler?: string | Scheduler;
  /** Overrides for a scheduler given by name (predictionType defaults to the model's). */
  schedulerOptions?: SchedulerOverrides;
  /** The torch CPU generator's seed (default: a random 32-bit one). */
  seed?: Seed;
  /** Images per prompt, default 1. */
  batchSize?: number;
  /** A1111's Clip skip: 1 (default) the last layer SD uses, 2 the one before, … */
  clipSkip?: number;
  /** A1111's attention syntax, default true; false takes the prompt literally, as diffusers does. */
  promptWeighting?: boolean;
  /**
   * LoRAs (and LyCORIS LoHa/LoKr) for this call only, added to `sd.loras` and to the prompt's
   * `<lora:NAME:W>` tags; the next call without them runs on exactly the base weights
   * (docs/guide/lora.md).
   */
  loras?: LoraSpec[];
  /** Called after each denoising step; returning false stops the generation with an AbortError. */
  onStep?: StepCallback;
  /** Previews passed to `onStep` (needs `onStep`). */
  preview?: PreviewMethod;
  /** Preview every N steps (default 1 for 'latent' and 'taesd', 5 for 'vae'); the last step always has one. */
  previewEvery?: number;
  /**
   * Use the tiny VAE loaded with `tinyVae` (TAESD) as the whole VAE of this call (default false):
   * it decodes the result and, in img2img, inpaint and depth2img, encodes the input image, as
   * diffusers' pipelines do with `vae=AutoencoderTiny` (whose encoding draws nothing from the
   * generator). Much faster, somewhat less faithful. Needs `tinyVae` at load (TypeError otherwise).
   */
  tinyVae?: boolean;
  /** Aborting it stops the generation with an AbortError; the model stays usable. */
  signal?: AbortSignal;
  /** 'tensor' (default): images [B, 3, H, W] in [0, 1]. 'latent': no VAE decode, `images` is null. */
  outputType?: OutputType;
  /**
   * Measure memory per stage into `result.memory` (default false): each stage's peak host RSS
   * and device buffers. It restarts the model's (and, on Linux, the process's) peak counters.
   */
  memoryReport?: boolean;
}

/**
 * How the hires fix enlarges the first pass: A1111's latent upscale modes, which resize the
 * latents as torch.nn.functional.interpolate does ('latent' is bilinear, A1111's "Latent"), or in
 * pixels ('lanczos', 'nearest': the first pass is decoded, resized and encoded again).
 */
export const HIRES_UPSCALERS = [
  'latent', 'latent-antialiased', 'latent-bicubic', 'latent-bicubic-antialiased', 'latent-nearest', 'latent-nearest-exact', 'lanczos', 'nearest',
] as const;
/** One of HIRES_UPSCALERS. */
export type HiresUpscalerName = (typeof HIRES_UPSCALERS)[number];

/**
 * A1111's hires fix (docs/guide/upscale.md): txt2img at `width` × `height`, the result enlarged,
 * then an img2img pass at the larger size with the same prompt and seed.
 */
export interface HiresOptions {
  /** The final size as a multiple of the first pass's, 1 to 8 (default 2; A1111's hr_scale). Not used when `width` or `height` is given. */
  scale?: number;
  /**
   * The final width, a multiple of 8 (A1111's hr_resize_x). With `width` alone the height keeps
   * the first pass's aspect ratio; with both, the image is enlarged to cover them and the latents
   * are cropped to the centre, as A1111 does.
   */
  width?: number;
  /** The final height, a multiple of 8 (A1111's hr_resize_y); see `width`. */
  height?: number;
  /**
   * A latent mode or pixel resize (default 'latent'), or a loaded Real-ESRGAN `Upscaler` (the first
   * pass is decoded, upscaled by the network, resized to the exact size with Lanczos and encoded).
   */
  upscaler?: HiresUpscalerName | Upscaler;
  /** Steps of the second pass before `denoisingStrength` takes its share (default: `steps`; A1111's hr_second_pass_steps). */
  steps?: number;
  /**
   * How much the second pass changes the enlarged image, 0–1 (default 0.7, A1111's): it runs
   * ⌊steps · denoisingStrength⌋ steps from that noise level, as img2img's `strength` (diffusers' rule).
   */
  denoisingStrength?: number;
}

/** Options of `sd.txt2img`. */
export interface Txt2ImgOptions extends GenerationOptions {
  /** Initial latents [batchSize, 4, height/8, width/8] instead of random ones (multiplied by initNoiseSigma, as diffusers does). */
  latents?: TensorLike;
  /** A1111's hires fix: a second, img2img-style pass at a larger size (`width` and `height` are then the first pass's). */
  hires?: HiresOptions;
}

/** Options of `sd.img2img`. */
export interface Img2ImgOptions extends GenerationOptions {
  /** The starting image: a path, an encoded image Buffer, a sharp instance, raw pixels or a tensor [B, 3, H, W] in [0, 1] (lib/image.ts). */
  image: ImageInput;
  /** How much to change the image, 0–1 (default 0.8): the share of the steps that run, from noise level `strength`. */
  strength?: number;
}

/** Options of `sd.inpaint`. */
export interface InpaintOptions extends GenerationOptions {
  /** The starting image: a path, an encoded image Buffer, a sharp instance, raw pixels or a tensor [B, 3, H, W] in [0, 1]. */
  image: ImageInput;
  /** White (≥ 0.5) = repaint, black = keep; the image's size. From alpha when not opaque, else luminance. */
  mask: ImageInput;
  /** Default 1: the masked area starts from pure noise. Below 1 it starts from the noised image. */
  strength?: number;
  /**
   * The noise [batchSize, 4, height/8, width/8] instead of random noise, as diffusers' inpaint
   * pipeline takes `latents`: the start is these times initNoiseSigma whatever the strength, and a
   * 4-channel model's kept area is noised with them.
   */
  latents?: TensorLike;
}

/** Options of `sd.depth2img`. */
export interface Depth2ImgOptions extends GenerationOptions {
  /** The starting image: a path, an encoded image Buffer, a sharp instance, raw pixels or a tensor [B, 3, H, W] in [0, 1]. */
  image: ImageInput;
  /**
   * Depth (larger = nearer, as MiDaS gives it), any size and scale: a tensor [H, W], [B, H, W] or
   * [B, 1, H, W], or a grayscale image (16-bit PNGs keep their precision). Resized bicubically
   * to the latents and mapped to [-1, 1] per image, as diffusers does. Optional: without it the
   * depth estimator (`sd.estimateDepth`) computes it from `image`, as diffusers' pipeline does;
   * given, it wins over the estimator. No map and no estimator: ERR_NO_DEPTH_ESTIMATOR.
   */
  depthMap?: ImageInput;
  /** Default 0.8, as img2img. */
  strength?: number;
}

/** Memory at the end of each stage, with that stage's peaks (`memoryReport: true`). */
export interface StageMemory {
  /** Text encoding, and the VAE encoding of the input image in img2img, inpaint and depth2img. */
  encode: MemoryUsage;
  /** The denoising loop. */
  sample: MemoryUsage;
  /** The VAE decode (absent with outputType 'latent'). */
  decode?: MemoryUsage;
}

/** What a pipeline returns. */
export interface GenerationResult {
  /** [B, 3, H, W] in [0, 1] (diffusers' output_type 'pt'), or null with outputType 'latent'. */
  images: Tensor | null;
  /** The final latents [B, 4, H/8, W/8], before 1/scalingFactor (diffusers' output_type 'latent'). */
  latents: Tensor;
  /** The seed of the generator each image's noise came from (one generator for the batch, as diffusers). */
  seeds: Seed[];
  /** What the generation was made with. */
  parameters: GenerationParameters;
  /** With `memoryReport: true`. */
  memory?: StageMemory;
  /**
   * With the safety checker on (the `safetyChecker` load option) and decoded images: per image,
   * whether the checker flagged it (diffusers' `nsfw_content_detected`). A flagged image is black
   * in `images`; `latents` are left as they were.
   */
  nsfwContentDetected?: boolean[];
}

/** What `sd.txt2img` returns (the same as every pipeline). */
export type Txt2ImgResult = GenerationResult;

/** What the pipelines need of a loaded model. */
export interface PipelineModel {
  /** The default image size and what the UNet predicts. */
  readonly info: {
    /** The default width and height. */
    imageSize: number;
    /** What the UNet predicts. */
    predictionType: 'epsilon' | 'v_prediction';
  };
  /** The denoising network. */
  readonly unet: UNet;
  /** The autoencoder (to and from latents). */
  readonly vae: Vae;
  /** TAESD, when the model was loaded with `tinyVae`. */
  readonly tinyVae?: TinyVae | null;
  /** diffusers' safety checker, when it is on: decoded images are checked and flagged ones blanked. */
  readonly safetyChecker?: SafetyChecker | null;
  /** Depth from the depth estimator ([B, S, S]), where the model has one (`StableDiffusion.estimateDepth`). */
  estimateDepth?(image: ImageInput): Promise<Tensor>;
  /** The text conditioning for a prompt and its negative prompt. */
  encodePrompt(prompt: string, options?: EncodePromptOptions): Promise<PromptEmbeddings>;
  /** Memory now and its peaks (for `memoryReport`). */
  memoryUsage?(options?: { resetPeak?: boolean }): MemoryUsage;
}

// Every option name of each pipeline, for the unknown-option check (validate.ts optionNames).
const GENERATION_KEYS: { [K in keyof Required<GenerationOptions>]: true } = {
  prompt: true, negativePrompt: true, width: true, height: true, steps: true, guidanceScale: true, scheduler: true,
  schedulerOptions: true, seed: true, batchSize: true, clipSkip: true, promptWeighting: true, loras: true, onStep: true,
  preview: true, previewEvery: true, tinyVae: true, signal: true, outputType: true, memoryReport: true,
};
/** @internal */
export const TXT2IMG_OPTIONS = optionNames<Txt2ImgOptions>({ ...GENERATION_KEYS, latents: true, hires: true });
/** @internal */
export const HIRES_OPTIONS = optionNames<HiresOptions>({ scale: true, width: true, height: true, upscaler: true, steps: true, denoisingStrength: true });
/** @internal */
export const IMG2IMG_OPTIONS = optionNames<Img2ImgOptions>({ ...GENERATION_KEYS, image: true, strength: true });
/** @internal */
export const INPAINT_OPTIONS = optionNames<InpaintOptions>({ ...GENERATION_KEYS, image: true, mask: true, strength: true, latents: true });
/** @internal */
export const DEPTH2IMG_OPTIONS = optionNames<Depth2ImgOptions>({ ...GENERATION_KEYS, image: true, depthMap: true, strength: true });
