// The bodies of POST /sdapi/v1/txt2img and /img2img: A1111's field names (its
// StableDiffusionProcessing* request models) with the types and ranges this server accepts.
// Fields we cannot honour are typed too; the handler refuses them when they ask for something
// (enable_hr: true, a script, …) and ignores them at their defaults.
import { Type, type Static } from 'typebox';

import { array, body, flag, int, num, object, str, strings } from './fields.js';

/** Limits of one request (the README's server guide lists them). */
export const LIMITS = {
  /** Image width and height in pixels (rounded down to a multiple of 8). */
  side: { min: 8, max: 2048 },
  steps: { min: 1, max: 150 },
  batchSize: { min: 1, max: 8 },
  nIter: { min: 1, max: 100 },
  cfgScale: { min: 0, max: 100 },
  promptLength: 20_000,
  initImages: 8,
  /** Largest decoded input image, in pixels per side. */
  inputSide: 4096,
} as const;

// Seeds are JSON numbers: keep seed + index exact.
const MAX_SEED = Number.MAX_SAFE_INTEGER - 10_000;

const generation = {
  prompt: str(LIMITS.promptLength),
  negative_prompt: str(LIMITS.promptLength),
  styles: strings(64, 1000),
  seed: int(-1, MAX_SEED),
  subseed: int(-1, MAX_SEED),
  subseed_strength: num(0, 1),
  seed_resize_from_h: int(-1, 65536),
  seed_resize_from_w: int(-1, 65536),
  seed_enable_extras: flag(),
  sampler_name: str(100),
  sampler_index: str(100),
  scheduler: str(100),
  batch_size: int(LIMITS.batchSize.min, LIMITS.batchSize.max),
  n_iter: int(LIMITS.nIter.min, LIMITS.nIter.max),
  steps: int(LIMITS.steps.min, LIMITS.steps.max),
  cfg_scale: num(LIMITS.cfgScale.min, LIMITS.cfgScale.max),
  width: int(LIMITS.side.min, LIMITS.side.max),
  height: int(LIMITS.side.min, LIMITS.side.max),
  restore_faces: flag(),
  tiling: flag(),
  do_not_save_samples: flag(),
  do_not_save_grid: flag(),
  eta: num(0, 1),
  denoising_strength: num(0, 1),
  s_min_uncond: num(-1e6, 1e6),
  s_churn: num(-1e6, 1e6),
  s_tmax: num(-1e6, 1e30),
  s_tmin: num(-1e6, 1e6),
  s_noise: num(-1e6, 1e6),
  override_settings: object(),
  override_settings_restore_afterwards: flag(),
  refiner_checkpoint: str(1000),
  refiner_switch_at: num(0, 1),
  disable_extra_networks: flag(),
  comments: object(),
  script_name: str(1000),
  script_args: array(1000),
  send_images: flag(),
  save_images: flag(),
  alwayson_scripts: object(),
  force_task_id: str(200),
  infotext: str(LIMITS.promptLength),
};

/** POST /sdapi/v1/txt2img. */
export const Txt2ImgBody = body({
  ...generation,
  enable_hr: flag(),
  firstphase_width: int(0, 65536),
  firstphase_height: int(0, 65536),
  hr_scale: num(0, 16),
  hr_upscaler: str(200),
  hr_second_pass_steps: int(0, 1000),
  hr_resize_x: int(0, 65536),
  hr_resize_y: int(0, 65536),
  hr_checkpoint_name: str(1000),
  hr_sampler_name: str(100),
  hr_scheduler: str(100),
  hr_prompt: str(LIMITS.promptLength),
  hr_negative_prompt: str(LIMITS.promptLength),
});
/** The txt2img body after schema validation. */
export type Txt2ImgRequest = Static<typeof Txt2ImgBody>;

/** POST /sdapi/v1/img2img. */
export const Img2ImgBody = body({
  ...generation,
  init_images: Type.Optional(
    Type.Unsafe<string[] | null>({ type: ['array', 'null'], maxItems: LIMITS.initImages, items: { type: 'string' } }),
  ),
  resize_mode: int(0, 3),
  image_cfg_scale: num(0, 100),
  mask: str(Number.MAX_SAFE_INTEGER),
  mask_blur_x: int(0, 64),
  mask_blur_y: int(0, 64),
  mask_blur: int(0, 64),
  mask_round: flag(),
  inpainting_fill: int(0, 3),
  inpaint_full_res: flag(),
  inpaint_full_res_padding: int(0, 4096),
  inpainting_mask_invert: flag(),
  initial_noise_multiplier: num(0, 10),
  latent_mask: str(Number.MAX_SAFE_INTEGER),
  include_init_images: flag(),
});
/** The img2img body after schema validation. */
export type Img2ImgRequest = Static<typeof Img2ImgBody>;
