// What travels through the BullMQ queue: a job's data (an A1111 request body, as the server takes
// it), its progress and its return value (the PNGs, base64, each carrying its infotext). Plain
// JSON, so that any BullMQ producer (another service, a script) can enqueue and read them.
import { Value } from 'typebox/value';

import { StableDiffusionError } from '../errors.js';
import { RequestValidationError, schemaIssues } from '../server/http/errors.js';
import { Img2ImgBody, Txt2ImgBody } from '../server/schemas/generate.js';

/**
 * The body of `POST /sdapi/v1/txt2img`, in A1111's field names. A few are shown here; every field
 * the server takes is listed in docs/guide/server.md, and the worker checks them with the
 * server's schema (unknown fields are ignored, as A1111 ignores them).
 */
export interface Txt2ImgRequest {
  /** The prompt, with A1111's attention syntax. */
  prompt?: string;
  /** The negative prompt. */
  negative_prompt?: string;
  /** Denoising steps (1–150; default 50). */
  steps?: number;
  /** Classifier-free guidance scale (default 7). */
  cfg_scale?: number;
  /** Image width and height in pixels (rounded down to a multiple of 8; default: the model's size). */
  width?: number;
  /** See `width`. */
  height?: number;
  /** The first seed (image i has seed + i); −1 picks one at random. */
  seed?: number;
  /** A1111's sampler name (`Euler a`, `DPM++ 2M`, …; default `Euler`). */
  sampler_name?: string;
  /** Images per batch and batches. */
  batch_size?: number;
  /** See `batch_size`. */
  n_iter?: number;
  /** Any other field of A1111's request. */
  [field: string]: unknown;
}

/** The body of `POST /sdapi/v1/img2img`: txt2img's fields and the input image(s), base64. */
export interface Img2ImgRequest extends Txt2ImgRequest {
  /** Input images, base64 (a `data:` URL prefix is accepted): one for the whole batch, or one per image. */
  init_images?: string[];
  /** How far from the input the result may go (0–1; default 0.75). */
  denoising_strength?: number;
  /** A mask (white: repaint), base64: inpainting. */
  mask?: string;
}

/** The version of the job format below; a worker fails jobs of another version (`ERR_INVALID_JOB`). */
export const JOB_FORMAT_VERSION = 1;

/** The queue name `sdnode worker` and `sdnode serve --redis` use unless told another. */
export const DEFAULT_QUEUE_NAME = 'sdnode';

/** A txt2img job: the body of `POST /sdapi/v1/txt2img`. */
export interface Txt2ImgJobData {
  /** The job format: `JOB_FORMAT_VERSION`. */
  version: typeof JOB_FORMAT_VERSION;
  /** Which A1111 endpoint the request is for. */
  endpoint: 'txt2img';
  /** The request body, in A1111's field names. Give a `seed` (not −1) so that a retried job makes the same images. */
  request: Txt2ImgRequest;
  /** Clip skip when the request has no `override_settings.CLIP_stop_at_last_layers` (default 1). */
  clipSkip?: number;
}

/** An img2img (or inpainting, with `mask`) job: the body of `POST /sdapi/v1/img2img`, images as base64. */
export interface Img2ImgJobData {
  /** The job format: `JOB_FORMAT_VERSION`. */
  version: typeof JOB_FORMAT_VERSION;
  /** Which A1111 endpoint the request is for. */
  endpoint: 'img2img';
  /** The request body, in A1111's field names. Give a `seed` (not −1) so that a retried job makes the same images. */
  request: Img2ImgRequest;
  /** Clip skip when the request has no `override_settings.CLIP_stop_at_last_layers` (default 1). */
  clipSkip?: number;
}

/** The data of a generation job on the queue (`queue.add(name, data, { jobId })`; the name is free). */
export type GenerationJobData = Txt2ImgJobData | Img2ImgJobData;

/** What a worker reports with `job.updateProgress` while a job runs. */
export interface GenerationJobProgress {
  /** The pipeline: 'txt2img', 'img2img' or 'inpaint'. */
  job: string;
  /** Denoising steps done of the current image. */
  step: number;
  /** The current image's step count. */
  steps: number;
  /** Images done so far. */
  image: number;
  /** Images in the job (`batch_size` × `n_iter`). */
  images: number;
  /** Whether an interrupt reached the worker. */
  interrupted: boolean;
  /** The worker running it (`host:pid`). */
  worker: string;
}

/** A completed job's return value. */
export interface GenerationJobResult {
  /** The job format: `JOB_FORMAT_VERSION`. */
  version: typeof JOB_FORMAT_VERSION;
  /** PNGs as base64, each with its infotext in a `parameters` chunk (none with `send_images: false`). */
  images: string[];
  /** The infotext of each image made. */
  infotexts: string[];
  /** Every seed of the job (seed + i), made or not. */
  allSeeds: number[];
  /** The image width in pixels. */
  width: number;
  /** The image height in pixels. */
  height: number;
  /** The checkpoint the worker ran. */
  model: {
    /** A1111's title: `name [hash]`. */
    title: string;
    /** The model name (file name without extension). */
    name: string;
    /** A1111's short hash, once known. */
    hash: string | null;
    /** The file's sha256, once known. */
    sha256: string | null;
  };
  /** The clip skip used. */
  clipSkip: number;
  /** Whether a 9-channel inpainting UNet saw the mask. */
  inpaintingConditioning: boolean;
  /** Stopped by an interrupt; the images made until then are kept. */
  interrupted: boolean;
  /** The infotext's `Lora hashes` and `TI hashes` fields of the job's networks (empty without any). */
  networks: Record<string, string>;
  /** With the worker's safety checker on: per image made, whether it was flagged (and sent black). */
  nsfwContentDetected?: boolean[];
  /** A1111's job_timestamp (YYYYMMDDhhmmss, the worker's local time). */
  timestamp: string;
  /** The worker that made it (`host:pid`). */
  worker: string;
}

function invalid(message: string): StableDiffusionError {
  return new StableDiffusionError('ERR_INVALID_JOB', message);
}

/**
 * Checks a job's data as the server checks a request (the same schemas); throws a
 * StableDiffusionError with code `ERR_INVALID_JOB` naming the fields at fault.
 */
export function checkJobData(data: unknown): GenerationJobData {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw invalid('The job data must be an object { version, endpoint, request }');
  const d = data as Record<string, unknown>;
  for (const key of Object.keys(d)) {
    if (!['version', 'endpoint', 'request', 'clipSkip'].includes(key)) throw invalid(`Unknown job data field "${key}"; expected version, endpoint, request, clipSkip`);
  }
  if (d.version !== JOB_FORMAT_VERSION) throw invalid(`The job data's version must be ${JOB_FORMAT_VERSION} (received ${JSON.stringify(d.version)})`);
  if (d.endpoint !== 'txt2img' && d.endpoint !== 'img2img') throw invalid(`The job data's endpoint must be "txt2img" or "img2img" (received ${JSON.stringify(d.endpoint)})`);
  if (d.clipSkip !== undefined && !(Number.isInteger(d.clipSkip) && (d.clipSkip as number) >= 1 && (d.clipSkip as number) <= 12)) {
    throw invalid(`The job data's clipSkip must be an integer from 1 to 12 (received ${JSON.stringify(d.clipSkip)})`);
  }
  const schema = d.endpoint === 'txt2img' ? Txt2ImgBody : Img2ImgBody;
  if (typeof d.request !== 'object' || d.request === null || Array.isArray(d.request)) throw invalid('The job data\'s request must be an object (an A1111 request body)');
  if (!Value.Check(schema, d.request)) {
    const issues = schemaIssues([...Value.Errors(schema, d.request)] as never, d.request, 'request');
    throw invalid(issues.map((i) => i.msg).join('; '));
  }
  return data as GenerationJobData;
}

/** A request the planner or pipeline refused (a 422 on the server) as a job error. */
export function jobErrorOf(error: unknown): unknown {
  if (error instanceof RequestValidationError) return invalid(error.message);
  return error;
}
