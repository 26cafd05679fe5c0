// The body of a txt2img / img2img answer, in A1111's shape: `images` (base64 PNGs carrying
// their infotext), `parameters` (the request's known fields with A1111's defaults filled in)
// and `info` (a JSON string describing what was made).
import { samplerLabel } from '../../png-parameters.js';
import type { Img2ImgRequest, Txt2ImgRequest } from '../schemas/generate.js';
import type { GenerationPlan } from './plan.js';
import type { GenerationOutput } from './run.js';

const GENERATION_DEFAULTS: Record<string, unknown> = {
  prompt: '', negative_prompt: '', styles: null, seed: -1, subseed: -1, subseed_strength: 0, seed_resize_from_h: -1,
  seed_resize_from_w: -1, seed_enable_extras: true, sampler_name: null, sampler_index: 'Euler', scheduler: null, batch_size: 1, n_iter: 1,
  steps: 50, cfg_scale: 7, width: 512, height: 512, restore_faces: null, tiling: null, do_not_save_samples: false,
  do_not_save_grid: false, eta: null, denoising_strength: 0.75, s_min_uncond: null, s_churn: null, s_tmax: null, s_tmin: null,
  s_noise: null, override_settings: null, override_settings_restore_afterwards: true, refiner_checkpoint: null,
  refiner_switch_at: null, disable_extra_networks: false, comments: null, script_name: null, script_args: [], send_images: true,
  save_images: false, alwayson_scripts: {}, force_task_id: null, infotext: null,
};

const TXT2IMG_DEFAULTS: Record<string, unknown> = {
  ...GENERATION_DEFAULTS, enable_hr: false, firstphase_width: 0, firstphase_height: 0, hr_scale: 2, hr_upscaler: null,
  hr_second_pass_steps: 0, hr_resize_x: 0, hr_resize_y: 0, hr_checkpoint_name: null, hr_sampler_name: null, hr_scheduler: null,
  hr_prompt: '', hr_negative_prompt: '',
};

const IMG2IMG_DEFAULTS: Record<string, unknown> = {
  ...GENERATION_DEFAULTS, init_images: null, resize_mode: 0, image_cfg_scale: null, mask: null, mask_blur_x: 4, mask_blur_y: 4,
  mask_blur: null, mask_round: true, inpainting_fill: 0, inpaint_full_res: true, inpaint_full_res_padding: 0,
  inpainting_mask_invert: 0, initial_noise_multiplier: null, latent_mask: null, include_init_images: false,
};

/** The request echoed as A1111 does: its known fields, defaults where missing, unknown ones dropped. */
function echo(request: Record<string, unknown>, defaults: Record<string, unknown>, output: GenerationOutput): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, fallback] of Object.entries(defaults)) out[key] = request[key] === undefined ? fallback : request[key];
  // Sizes left to the server are reported as used.
  if (request.width === undefined || request.width === null) out.width = output.width;
  if (request.height === undefined || request.height === null) out.height = output.height;
  return out;
}

/** A1111's `info`: what was made, as a JSON string. */
function info(plan: GenerationPlan, output: GenerationOutput): string {
  const count = output.allSeeds.length;
  return JSON.stringify({
    prompt: plan.prompt,
    all_prompts: Array.from({ length: count }, () => plan.prompt),
    negative_prompt: plan.negativePrompt,
    all_negative_prompts: Array.from({ length: count }, () => plan.negativePrompt),
    seed: output.allSeeds[0],
    all_seeds: output.allSeeds,
    subseed: -1,
    all_subseeds: Array.from({ length: count }, () => -1),
    subseed_strength: 0,
    width: output.width,
    height: output.height,
    sampler_name: samplerLabel(plan.sampler.name),
    cfg_scale: plan.cfgScale,
    steps: plan.steps,
    batch_size: plan.batchSize,
    restore_faces: false,
    face_restoration_model: null,
    sd_model_name: output.checkpoint.modelName,
    sd_model_hash: output.checkpoint.hash ?? null,
    sd_vae_name: null,
    sd_vae_hash: null,
    seed_resize_from_w: -1,
    seed_resize_from_h: -1,
    denoising_strength: plan.strength ?? plan.hires?.denoisingStrength ?? null,
    extra_generation_params: {
      ...(plan.sampler.scheduleType !== undefined && { 'Schedule type': plan.sampler.scheduleType }), ...output.hires, ...output.networks,
    },
    index_of_first_image: 0,
    infotexts: output.infotexts,
    styles: [],
    job_timestamp: output.timestamp,
    clip_skip: output.clipSkip,
    is_using_inpainting_conditioning: output.inpaintingConditioning,
    interrupted: output.interrupted,
    // Not A1111's: diffusers' safety checker (on by default for a diffusers folder that has one);
    // per image made, whether it was flagged and sent black.
    ...(output.nsfwContentDetected && { nsfw_content_detected: output.nsfwContentDetected }),
  });
}

/** The answer to POST /sdapi/v1/txt2img. */
export function txt2imgResponse(request: Txt2ImgRequest, plan: GenerationPlan, output: GenerationOutput): { images: string[]; parameters: Record<string, unknown>; info: string } {
  return { images: output.images.map((png) => png.toString('base64')), parameters: echo(request, TXT2IMG_DEFAULTS, output), info: info(plan, output) };
}

/** The answer to POST /sdapi/v1/img2img (init images and mask echoed only with include_init_images). */
export function img2imgResponse(request: Img2ImgRequest, plan: GenerationPlan, output: GenerationOutput): { images: string[]; parameters: Record<string, unknown>; info: string } {
  const parameters = echo(request, IMG2IMG_DEFAULTS, output);
  if (!(request.include_init_images === true || request.include_init_images === 1)) {
    parameters.init_images = null;
    parameters.mask = null;
  }
  return { images: output.images.map((png) => png.toString('base64')), parameters, info: info(plan, output) };
}
