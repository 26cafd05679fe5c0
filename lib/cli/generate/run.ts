// `sdnode generate`, step 3 of 4: the model loaded and each job generated, with progress on
// stderr. The signal (Ctrl-C) stops the generation in progress.
import { basename } from 'node:path';

import { StableDiffusionError } from '../../errors.js';
import { modelHash, networkHashes } from '../../model-hash.js';
import { HIRES_UPSCALERS, type GenerationResult, type HiresOptions } from '../../pipelines/index.js';
import { toInfotext } from '../../png-parameters.js';
import { StableDiffusion } from '../../stable-diffusion.js';
import type { PipelineName } from '../../types.js';
import { Upscaler, upscalerOptionsOf } from '../../upscaler.js';
import type { Progress } from '../progress.js';
import { UsageError, warn } from '../usage.js';
import type { GenerateRequest, JobPlan, JobResult } from './types.js';

type PipelineCall = (options: Record<string, unknown>) => Promise<GenerationResult>;

/** Loads the model and hashes its file (A1111's "Model hash"), together. */
export async function loadModel(request: GenerateRequest): Promise<{ sd: StableDiffusion; hash: string | undefined }> {
  const [sd, hash] = await Promise.all([StableDiffusion.load(request.loadOptions), modelHash(request.modelPath)]);
  return { sd, hash };
}

/** Runs every job of the plan on the loaded model, in order. */
export async function runJobs(
  sd: StableDiffusion, hash: string | undefined, request: GenerateRequest, plan: JobPlan, progress: Progress, signal: AbortSignal,
): Promise<JobResult[]> {
  const { from, modelPath, pipeline } = request;
  if (from?.parameters.modelHash && hash && from.parameters.modelHash.toLowerCase() !== hash) {
    const made = from.parameters.model ? ` (${from.parameters.model})` : '';
    warn(`${from.path} was made with model hash ${from.parameters.modelHash}${made}; ${basename(modelPath)} is ${hash}`);
  }
  if (pipeline === 'txt2img' && sd.info.variant !== 'base') {
    throw new UsageError(`${basename(modelPath)} is a ${sd.info.variant} model: pass --init-image${sd.info.variant === 'inpaint' ? ' and --mask' : ' and --depth-map'}`);
  }
  const call = pipelineCall(sd, pipeline);
  const modelName = request.model === 'demo' ? 'demo-sd1-tiny' : basename(modelPath).replace(/\.(safetensors|ckpt|pt|gguf|bin)$/i, '');

  const hires = request.hires && (await hiresOption(request.hires, request.loadOptions));
  try {
    return await runEach(sd, hash, request, plan, progress, signal, call, modelName, hires);
  } finally {
    if (hires?.upscaler instanceof Upscaler) hires.upscaler.dispose();
  }
}

/** --hires-*: a Real-ESRGAN file given as the upscaler is loaded where the model runs. */
async function hiresOption(flags: NonNullable<GenerateRequest['hires']>, load: GenerateRequest['loadOptions']): Promise<HiresOptions> {
  const { upscaler, ...rest } = flags;
  if (upscaler === undefined || (HIRES_UPSCALERS as readonly string[]).includes(upscaler)) return flags as HiresOptions;
  return { ...rest, upscaler: await Upscaler.load(upscaler, upscalerOptionsOf(load)) };
}

async function runEach(
  sd: StableDiffusion, hash: string | undefined, request: GenerateRequest, plan: JobPlan, progress: Progress, signal: AbortSignal,
  call: PipelineCall, modelName: string, hires: HiresOptions | undefined,
): Promise<JobResult[]> {
  const { jobs } = plan;
  const { pipeline } = request;
  const results: JobResult[] = [];
  for (let j = 0; j < jobs.length; j++) {
    const job = jobs[j]!;
    progress.job(j, jobs.length);
    progress.stage('encode');
    const options: Record<string, unknown> = {
      prompt: request.prompt,
      negativePrompt: request.negativePrompt,
      steps: job.steps,
      guidanceScale: job.guidanceScale,
      scheduler: job.sampler,
      seed: job.seed,
      batchSize: request.batchSize,
      signal,
      onStep: (info: Parameters<Progress['step']>[0]) => progress.step(info),
      ...(request.width !== undefined && { width: request.width }),
      ...(request.height !== undefined && { height: request.height }),
      ...(job.clipSkip !== undefined && { clipSkip: job.clipSkip }),
      ...(sd.tinyVae !== null && { tinyVae: true }),
      ...(job.strength !== undefined && { strength: job.strength }),
      ...(request.image !== undefined && { image: request.image }),
      ...(request.mask !== undefined && { mask: request.mask }),
      ...(request.depthMap !== undefined && { depthMap: request.depthMap }),
      ...(request.loras.length > 0 && { loras: request.loras }),
      ...(hires && { hires }),
    };
    const result = await call(options);
    if (result.images === null) throw new StableDiffusionError('ERR_INTERNAL', `${pipeline} returned no images`);
    const count = result.images.shape[0]!;
    const hashes = await networkHashes(result.parameters);
    const parameters = Array.from({ length: count }, (_, i) => ({
      ...toInfotext(result.parameters, i, { model: modelName, ...(hash !== undefined && { modelHash: hash }), ...hashes }),
      seed: result.seeds[i] ?? result.parameters.seed,
    }));
    result.nsfwContentDetected?.forEach((flagged, i) => {
      if (flagged) warn(`the safety checker flagged image ${i + 1} of ${count} (seed ${parameters[i]!.seed}): it was replaced by a black image`);
    });
    results.push({ images: result.images, parameters });
  }
  return results;
}

function pipelineCall(sd: StableDiffusion, pipeline: PipelineName): PipelineCall {
  // The options object is built from checked flags; the pipelines validate it again at their edge.
  const methods = sd as unknown as Record<PipelineName, PipelineCall | undefined>;
  const method = methods[pipeline];
  if (typeof method !== 'function') {
    throw new StableDiffusionError('ERR_NOT_IMPLEMENTED', `${pipeline} is not available in this version of stable-diffusion-node`);
  }
  return method.bind(sd);
}
