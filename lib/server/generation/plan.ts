// An A1111 request (schema-checked) → a generation plan: what to run, with defaults filled in,
// seeds chosen and input images decoded enough to know they are images of the right size.
// Everything a client can get wrong is found here, before the job waits in the queue.
import { fieldName, invalidField } from '../http/errors.js';
import { truthy } from '../schemas/fields.js';
import type { Img2ImgRequest, Txt2ImgRequest } from '../schemas/generate.js';
import { decodeImage, type EncodedImage } from './images.js';
import { resolveSampler, type ResolvedSampler } from './samplers.js';

/** A generation to run: one per request, one image per seed. */
export interface GenerationPlan {
  /** img2img with a mask runs the inpaint pipeline. */
  pipeline: 'txt2img' | 'img2img' | 'inpaint';
  /** override_settings.sd_model_checkpoint, as given (the catalog resolves it). */
  checkpoint: string | undefined;
  prompt: string;
  negativePrompt: string;
  /** Asked-for size, rounded down to a multiple of 8; undefined: the model's (txt2img) or the image's size. */
  width: number | undefined;
  height: number | undefined;
  steps: number;
  cfgScale: number;
  sampler: ResolvedSampler;
  /** A1111's name of the sampler asked for (info's sampler_name). */
  samplerName: string;
  /** DDIM's eta. */
  eta: number | undefined;
  /** The first seed; image i of the whole job has seed + i, as A1111 numbers them. */
  seed: number;
  batchSize: number;
  nIter: number;
  /** override_settings.CLIP_stop_at_last_layers; undefined: the server's option. */
  clipSkip: number | undefined;
  /** img2img and inpaint. */
  strength: number | undefined;
  initImages: EncodedImage[];
  mask: EncodedImage | undefined;
  maskBlurX: number;
  maskBlurY: number;
  invertMask: boolean;
  /** 0: stretch to the size, 1: crop to fill it. */
  resizeMode: 0 | 1;
  sendImages: boolean;
  /** txt2img with enable_hr: A1111's hires fix. */
  hires: HiresPlan | undefined;
}

/** The hires fix asked for (enable_hr and the hr_* fields). */
export interface HiresPlan {
  /** hr_scale, when no hr_resize_x / hr_resize_y is given. */
  scale: number | undefined;
  /** hr_resize_x / hr_resize_y rounded down to a multiple of 8; undefined when 0. */
  width: number | undefined;
  height: number | undefined;
  /** hr_upscaler as A1111 names it ('Latent', 'Latent (bicubic)', 'Lanczos', an ESRGAN model, …). */
  upscaler: string;
  /** hr_second_pass_steps, 0 replaced by steps. */
  steps: number;
  denoisingStrength: number;
}

type Common = Txt2ImgRequest & Partial<Img2ImgRequest>;

function unsupported(path: (string | number)[], what: string): never {
  throw invalidField(path, `${fieldName(path)}: ${what} is not supported by this server`, 'unsupported');
}

/** A1111 rounds sizes down to a multiple of 8 (its latent factor). */
function side(value: number | null | undefined): number | undefined {
  return value === null || value === undefined ? undefined : value - (value % 8);
}

function randomSeed(): number {
  return Math.floor(Math.random() * 4294967294);
}

/** The fields that ask for features this server does not have: a 422 naming the first. */
function refuseUnsupported(r: Common): void {
  if (truthy(r.restore_faces)) unsupported(['restore_faces'], 'face restoration');
  if (truthy(r.tiling)) unsupported(['tiling'], 'tiling');
  if ((r.subseed_strength ?? 0) > 0) unsupported(['subseed_strength'], 'a variation seed');
  if ((r.seed_resize_from_w ?? 0) > 0 || (r.seed_resize_from_h ?? 0) > 0) unsupported(['seed_resize_from_w'], 'seed resizing');
  if (r.styles && r.styles.length > 0) unsupported(['styles'], 'prompt styles');
  if (r.script_name) unsupported(['script_name'], 'a script');
  if (r.alwayson_scripts && Object.keys(r.alwayson_scripts).length > 0) unsupported(['alwayson_scripts'], 'an always-on script (ControlNet, ADetailer, …)');
  if (r.refiner_checkpoint && r.refiner_checkpoint !== 'None') unsupported(['refiner_checkpoint'], 'a refiner');
  if (r.infotext) unsupported(['infotext'], 'taking settings from an infotext');
  if (r.latent_mask) unsupported(['latent_mask'], 'a separate latent mask');
  if (r.resize_mode === 2 || r.resize_mode === 3) unsupported(['resize_mode'], `resize_mode ${r.resize_mode} (only 0, stretch, and 1, crop)`);
  if (r.initial_noise_multiplier !== null && r.initial_noise_multiplier !== undefined && r.initial_noise_multiplier !== 1) {
    unsupported(['initial_noise_multiplier'], 'a noise multiplier other than 1');
  }
}

/** override_settings: the model and Clip skip are honoured, a VAE other than the model's refused, the rest ignored. */
function overrides(settings: Record<string, unknown> | null | undefined): { checkpoint: string | undefined; clipSkip: number | undefined } {
  const s = settings ?? {};
  const checkpoint = s.sd_model_checkpoint;
  if (checkpoint !== undefined && checkpoint !== null && typeof checkpoint !== 'string') {
    throw invalidField(['override_settings', 'sd_model_checkpoint'], 'override_settings.sd_model_checkpoint must be a string', 'type');
  }
  const clipSkip = s.CLIP_stop_at_last_layers;
  if (clipSkip !== undefined && clipSkip !== null && !(typeof clipSkip === 'number' && Number.isInteger(clipSkip) && clipSkip >= 1 && clipSkip <= 12)) {
    throw invalidField(['override_settings', 'CLIP_stop_at_last_layers'], 'override_settings.CLIP_stop_at_last_layers must be an integer from 1 to 12', 'type');
  }
  const vae = s.sd_vae;
  if (vae !== undefined && vae !== null && vae !== '' && vae !== 'Automatic' && vae !== 'None') {
    unsupported(['override_settings', 'sd_vae'], `a separate VAE (${JSON.stringify(vae)})`);
  }
  return { checkpoint: checkpoint || undefined, clipSkip: (clipSkip as number | null | undefined) ?? undefined };
}

/** The largest side the hires fix may make. */
const HIRES_MAX_SIDE = 4096;

/** Whether an hr_* text field leaves the first pass's value (A1111's "Use same …"). */
function same(value: string | null | undefined, first: string | null | undefined): boolean {
  return value === null || value === undefined || value === '' || value === first || /^Use same /.test(value);
}

/** enable_hr's fields, checked as far as a request alone allows (the upscaler's name is checked against the server's). */
function planHires(r: Txt2ImgRequest, steps: number, samplerName: string): HiresPlan | undefined {
  if (!truthy(r.enable_hr)) return undefined;
  if ((r.firstphase_width ?? 0) > 0 || (r.firstphase_height ?? 0) > 0) unsupported(['firstphase_width'], 'the old hires fix (firstphase_width/height)');
  if (!same(r.hr_checkpoint_name, undefined)) unsupported(['hr_checkpoint_name'], 'another checkpoint for the hires pass');
  if (!same(r.hr_sampler_name, samplerName)) unsupported(['hr_sampler_name'], 'another sampler for the hires pass');
  if (!same(r.hr_scheduler, r.scheduler)) unsupported(['hr_scheduler'], 'another schedule type for the hires pass');
  if (!same(r.hr_prompt, r.prompt)) unsupported(['hr_prompt'], 'another prompt for the hires pass');
  if (!same(r.hr_negative_prompt, r.negative_prompt)) unsupported(['hr_negative_prompt'], 'another negative prompt for the hires pass');
  const resizeX = r.hr_resize_x ?? 0;
  const resizeY = r.hr_resize_y ?? 0;
  const width = resizeX > 0 ? side(resizeX) : undefined;
  const height = resizeY > 0 ? side(resizeY) : undefined;
  if (width === 0 || height === 0) throw invalidField([width === 0 ? 'hr_resize_x' : 'hr_resize_y'], 'hr_resize_x and hr_resize_y must be 0 or at least 8', 'range');
  if ((width ?? 0) > HIRES_MAX_SIDE || (height ?? 0) > HIRES_MAX_SIDE) {
    throw invalidField([(width ?? 0) > HIRES_MAX_SIDE ? 'hr_resize_x' : 'hr_resize_y'], `hr_resize_x and hr_resize_y must be at most ${HIRES_MAX_SIDE}`, 'range');
  }
  const scale = width === undefined && height === undefined ? r.hr_scale ?? 2 : undefined;
  if (scale !== undefined && (scale < 1 || scale > 8)) throw invalidField(['hr_scale'], `hr_scale must be between 1 and 8 but is ${scale}`, 'range');
  const hiresSteps = r.hr_second_pass_steps || steps;
  const denoisingStrength = r.denoising_strength ?? 0.75;
  if (Math.floor(hiresSteps * denoisingStrength) < 1) {
    throw invalidField(['denoising_strength'], `denoising_strength ${denoisingStrength} with ${hiresSteps} hires steps leaves no step to run`, 'range');
  }
  return { scale, width, height, upscaler: r.hr_upscaler || 'Latent', steps: hiresSteps, denoisingStrength };
}

/** POST /sdapi/v1/txt2img. */
export function planTxt2Img(r: Txt2ImgRequest): GenerationPlan {
  const p = plan(r, [], undefined, 'txt2img');
  p.hires = planHires(r, p.steps, p.samplerName);
  return p;
}

/** POST /sdapi/v1/img2img: the init images and mask decoded and checked. */
export async function planImg2Img(r: Img2ImgRequest): Promise<GenerationPlan> {
  if (!r.init_images || r.init_images.length === 0) {
    throw invalidField(['init_images'], 'init_images must hold at least one base64 image', 'missing');
  }
  const initImages = await Promise.all(r.init_images.map((text, i) => decodeImage(text, ['init_images', i])));
  const first = initImages[0]!;
  if (initImages.some((im) => im.width !== first.width || im.height !== first.height)) {
    throw invalidField(['init_images'], 'init_images must all have the same size', 'image');
  }
  let mask: EncodedImage | undefined;
  if (r.mask) {
    mask = await decodeImage(r.mask, ['mask']);
    if (mask.width !== first.width || mask.height !== first.height) {
      throw invalidField(['mask'], `mask is ${mask.width}×${mask.height} but init_images[0] is ${first.width}×${first.height}; they must be the same size`, 'image');
    }
  }
  return plan(r, initImages, mask, mask ? 'inpaint' : 'img2img');
}

function plan(r: Common, initImages: EncodedImage[], mask: EncodedImage | undefined, pipeline: GenerationPlan['pipeline']): GenerationPlan {
  refuseUnsupported(r);
  const { checkpoint, clipSkip } = overrides(r.override_settings);
  const sampler = resolveSampler(r.sampler_name, r.sampler_index, r.scheduler);
  let batchSize = r.batch_size ?? 1;
  // A1111: one init image serves the whole batch; several make the batch, one each.
  if (initImages.length > 1) {
    if (initImages.length > batchSize && r.batch_size !== null && r.batch_size !== undefined) {
      throw invalidField(['init_images'], `init_images has ${initImages.length} images for batch_size ${batchSize}; give one, or at most batch_size`, 'image');
    }
    batchSize = initImages.length;
  }
  const nIter = r.n_iter ?? 1;
  const seed = r.seed === null || r.seed === undefined || r.seed === -1 ? randomSeed() : r.seed;
  const blur = r.mask_blur ?? undefined;
  return {
    pipeline,
    checkpoint,
    prompt: r.prompt ?? '',
    negativePrompt: r.negative_prompt ?? '',
    width: side(r.width),
    height: side(r.height),
    steps: r.steps ?? 50,
    cfgScale: r.cfg_scale ?? 7,
    sampler,
    samplerName: r.sampler_name || r.sampler_index || 'Euler',
    eta: r.eta ?? undefined,
    seed,
    batchSize,
    nIter,
    clipSkip,
    strength: pipeline === 'txt2img' ? undefined : r.denoising_strength ?? 0.75,
    initImages,
    mask,
    maskBlurX: blur ?? r.mask_blur_x ?? 4,
    maskBlurY: blur ?? r.mask_blur_y ?? 4,
    invertMask: truthy(r.inpainting_mask_invert),
    resizeMode: r.resize_mode === 1 ? 1 : 0,
    sendImages: truthy(r.send_images, true),
    hires: undefined,
  };
}
