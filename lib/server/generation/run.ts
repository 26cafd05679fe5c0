// Runs a generation plan on the loaded model, one image per seed as A1111 numbers them (image i
// of the job has seed + i, so any image can be made again alone from its seed), with progress
// and previews for GET /progress, and A1111's interrupt and skip: the image being made is
// finished from the latents it has reached.
import sharp from 'sharp';

import { AbortError } from '../../errors.js';
import { encodeImage, readImage, readMask, resizeImage } from '../../image.js';
import { networkHashes, type NetworkHashes } from '../../model-hash.js';
import { formatParameters, toInfotext } from '../../png-parameters.js';
import type { GenerationResult, StepInfo } from '../../pipelines/index.js';
import { blankFlagged } from '../../safety-checker.js';
import type { HiresParameters } from '../../types.js';
import type { StableDiffusion } from '../../stable-diffusion.js';
import type { Tensor } from '../../tensor.js';
import { scale, toUnitRange } from '../../tensor-ops.js';
import { invalidField } from '../http/errors.js';
import type { Checkpoint } from '../models/catalog.js';
import type { ModelManager } from '../models/manager.js';
import { UpscalerSet } from '../models/upscalers.js';
import { loraError } from '../networks/loras.js';
import type { JobContext } from '../queue/types.js';
import { pasteOriginal, prepareMask, type EncodedImage } from './images.js';
import type { GenerationPlan } from './plan.js';

/** What a generation made. */
export interface GenerationOutput {
  /** PNGs, each with its A1111 `parameters` chunk. */
  images: Buffer[];
  /** The infotext of each image. */
  infotexts: string[];
  /** Every seed of the job (seed + i), made or not. */
  allSeeds: number[];
  width: number;
  height: number;
  /** The checkpoint it ran on. */
  checkpoint: Checkpoint;
  clipSkip: number;
  /** Whether a 9-channel inpainting UNet saw the mask. */
  inpaintingConditioning: boolean;
  /** Stopped by interrupt (the images made until then are kept). */
  interrupted: boolean;
  /** The queue's number for the job and its place in the order jobs started (a BullMQ job id and the worker with --redis). */
  job: { id: number | string; started?: number; worker?: string };
  /** A1111's job_timestamp (YYYYMMDDhhmmss, local time). */
  timestamp: string;
  /** "Lora hashes" and "TI hashes" of the first image, for info's extra_generation_params. */
  networks: Record<string, string>;
  /** With the safety checker on: per image made, whether it was flagged (and sent black). */
  nsfwContentDetected?: boolean[];
  /** The hires fix's infotext fields ("Hires upscale", …), for info's extra_generation_params. */
  hires?: Record<string, string>;
}

/** A generation job as the queue carries it. */
export interface GenerationJob {
  plan: GenerationPlan;
  checkpoint: Checkpoint;
  /** Clip skip to use (the request's override, else the server's option). */
  clipSkip: number;
}

type Pipeline = (sd: StableDiffusion, options: Record<string, unknown>) => Promise<GenerationResult>;

const PIPELINES: Record<GenerationPlan['pipeline'], Pipeline> = {
  txt2img: (sd, o) => sd.txt2img(o as never),
  img2img: (sd, o) => sd.img2img(o as never),
  inpaint: (sd, o) => sd.inpaint(o as never),
};

/** A1111's job_timestamp: YYYYMMDDhhmmss in local time. */
export function jobTimestamp(date: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}${two(date.getMonth() + 1)}${two(date.getDate())}${two(date.getHours())}${two(date.getMinutes())}${two(date.getSeconds())}`;
}

/** The loaded model must be able to run the plan's pipeline. */
function checkVariant(sd: StableDiffusion, plan: GenerationPlan): void {
  const variant = sd.info.variant;
  if (variant === 'depth') throw invalidField([], 'the loaded model is a depth model, which this API cannot drive (it needs a depth map)', 'model');
  if (variant === 'inpaint' && plan.pipeline !== 'inpaint') {
    throw invalidField(plan.pipeline === 'txt2img' ? [] : ['mask'], 'the loaded model is an inpainting model: use img2img with a mask', 'model');
  }
}

/** An input image at the generation size: stretched (resize_mode 0) or cropped to fill it (1). */
async function inputAt(encoded: EncodedImage, width: number, height: number, mode: 0 | 1, read: typeof readImage): Promise<Tensor> {
  if (mode === 1 && (encoded.width !== width || encoded.height !== height)) {
    const cropped = await sharp(encoded.data).autoOrient().resize(width, height, { fit: 'cover', kernel: 'lanczos3' }).png().toBuffer();
    return read(cropped, 'init image');
  }
  return resizeImage(await read(encoded.data, 'init image'), width, height);
}

/** Decodes latents the sampler holds (scaled) into an image [1, 3, H, W] in [0, 1]. */
async function decodeLatents(sd: StableDiffusion, latents: Tensor): Promise<Tensor> {
  return toUnitRange(await sd.vae.decode(scale(latents, 1 / sd.vae.scalingFactor)));
}

/** The plan's hires fix as txt2img takes it; a 422 for an upscaler this process has not loaded. */
function hiresOptions(plan: GenerationPlan, upscalers: UpscalerSet): Record<string, unknown> | undefined {
  const h = plan.hires;
  if (h === undefined) return undefined;
  return {
    ...(h.scale !== undefined && { scale: h.scale }), ...(h.width !== undefined && { width: h.width }), ...(h.height !== undefined && { height: h.height }),
    upscaler: upscalers.require(h.upscaler), steps: h.steps, denoisingStrength: h.denoisingStrength,
  };
}

/** Runs a generation job: the queue's runner for generation payloads. */
export async function runGeneration(models: ModelManager, job: GenerationJob, context: JobContext, upscalers = new UpscalerSet()): Promise<GenerationOutput> {
  const { plan } = job;
  const hires = hiresOptions(plan, upscalers);
  context.report({ job: plan.pipeline, jobCount: plan.batchSize * plan.nIter, jobNo: 0 });
  const { sd, checkpoint } = await models.use(job.checkpoint);
  checkVariant(sd, plan);
  const started = new Date();

  const first = plan.initImages[0];
  const width = plan.width ?? (first ? first.width - (first.width % 8) : sd.info.imageSize);
  const height = plan.height ?? (first ? first.height - (first.height % 8) : sd.info.imageSize);
  if (width < 8 || height < 8) throw invalidField(['init_images', 0], `init_images[0] is smaller than 8×8 pixels`, 'image');
  const inputs = await Promise.all(plan.initImages.map((im) => inputAt(im, width, height, plan.resizeMode, readImage)));
  const mask = plan.mask && (await prepareMask(await inputAt(plan.mask, width, height, plan.resizeMode, readMask), plan.invertMask, plan.maskBlurX, plan.maskBlurY));

  const images: Buffer[] = [];
  const infotexts: string[] = [];
  const count = plan.batchSize * plan.nIter;
  const allSeeds = Array.from({ length: count }, (_, i) => plan.seed + i);
  let interrupted = false;
  // The LoRAs' and embeddings' hashes of the last image made in full: an image cut short by
  // interrupt or skip has the same prompt, so the same networks.
  let hashes: NetworkHashes = {};
  let networks: Record<string, string> | undefined;
  const nsfw: boolean[] = [];
  let hiresParameters: HiresParameters | undefined;
  let hiresFields: Record<string, string> | undefined;
  for (let index = 0; index < count && !interrupted; index++) {
    context.report({ jobNo: index, samplingStep: 0, samplingSteps: 0 });
    let latest: StepInfo | undefined;
    let stoppedEarly = false;
    const onStep = (info: StepInfo): boolean => {
      latest = info;
      const preview = info.preview;
      context.report({
        samplingStep: info.step,
        samplingSteps: info.steps,
        preview: async () => (preview ? encodeImage(preview, 0) : null),
      });
      if (context.interrupted || context.takeSkip()) {
        stoppedEarly = true;
        return false;
      }
      return true;
    };
    const input = inputs.length > 0 ? inputs[index % plan.batchSize % inputs.length] : undefined;
    let image: Tensor;
    try {
      const result = await PIPELINES[plan.pipeline](sd, {
        prompt: plan.prompt,
        negativePrompt: plan.negativePrompt,
        width,
        height,
        steps: plan.steps,
        guidanceScale: plan.cfgScale,
        scheduler: plan.sampler.name,
        schedulerOptions: { ...plan.sampler.overrides, ...(plan.sampler.name === 'ddim' && plan.eta !== undefined && { eta: plan.eta }) },
        seed: allSeeds[index],
        batchSize: 1,
        clipSkip: job.clipSkip,
        onStep,
        // TAESD's full-size preview when the model was loaded with one, else the free 1/8-size map.
        preview: sd.tinyVae?.info.hasDecoder ? 'taesd' : 'latent',
        signal: context.signal,
        ...(input && { image: input, strength: plan.strength }),
        ...(mask && { mask }),
        ...(hires && { hires }),
      });
      image = result.images!;
      if (result.nsfwContentDetected) nsfw.push(result.nsfwContentDetected[0]!);
      hiresParameters = result.parameters.hires;
      hashes = await networkHashes(result.parameters);
    } catch (error) {
      if (!(error instanceof AbortError) || context.signal.aborted || !stoppedEarly) throw runError(error);
      // Interrupt or skip: the image so far, as A1111 returns it; none if no step was done yet.
      interrupted = context.interrupted;
      if (latest === undefined) continue;
      image = await decodeLatents(sd, latest.latents);
      if (sd.safetyChecker) {
        // The pipeline's own check did not run on an image cut short: the same check here.
        const [verdict] = await sd.safetyChecker.check(image);
        nsfw.push(verdict!.nsfw);
        image = blankFlagged(image, [verdict!.nsfw]);
      }
    }
    if (mask && input) image = pasteOriginal(image, input, mask);
    const parameters = {
      ...toInfotext(
        { pipeline: plan.pipeline, prompt: plan.prompt, negativePrompt: plan.negativePrompt, width, height, steps: plan.steps, guidanceScale: plan.cfgScale,
          scheduler: plan.sampler.name, seed: allSeeds[index]!, batchSize: 1, clipSkip: job.clipSkip, promptWeighting: true,
          ...(plan.strength !== undefined && { strength: plan.strength }),
          ...(plan.hires && hiresParameters && { strength: plan.hires.denoisingStrength, hires: hiresParameters }) },
        0,
        { model: checkpoint.modelName, ...(checkpoint.hash !== undefined && { modelHash: checkpoint.hash }), ...hashes },
      ),
    };
    // The schedule type first, then the networks' hashes.
    parameters.extra = { ...(plan.sampler.scheduleType !== undefined && { 'Schedule type': plan.sampler.scheduleType }), ...parameters.extra };
    networks ??= Object.fromEntries(Object.entries(parameters.extra).filter(([key]) => key === 'Lora hashes' || key === 'TI hashes'));
    hiresFields ??= hiresParameters && Object.fromEntries(Object.entries(parameters.extra).filter(([key]) => key.startsWith('Hires ')));
    const text = formatParameters(parameters);
    infotexts.push(text);
    if (plan.sendImages) images.push(await encodeImage(image, 0, { parameters: text }));
    context.report({ jobNo: index + 1 });
    if (context.interrupted) interrupted = true;
  }
  return {
    images, infotexts, allSeeds, width, height, checkpoint, clipSkip: job.clipSkip,
    inpaintingConditioning: plan.pipeline === 'inpaint' && sd.unet.inChannels === 9,
    interrupted,
    job: { id: context.id, started: context.started },
    timestamp: jobTimestamp(started),
    networks: networks ?? {},
    ...(sd.safetyChecker && { nsfwContentDetected: nsfw }),
    ...(hiresFields && { hires: hiresFields }),
  };
}

/**
 * Argument errors the pipelines find (sizes, strength × steps) and the LoRAs a prompt names (not
 * found, not a LoRA, for another model) are the client's: 422.
 */
function runError(error: unknown): unknown {
  if (error instanceof RangeError || error instanceof TypeError) return invalidField([], error.message);
  return loraError(error) ?? error;
}
