// What the steps of `sdnode generate` hand each other: the checked request (parse.ts), the jobs
// (plan.ts) and their results (run.ts); write.ts takes all three.
import type { ImageFormat } from '../../image.js';
import type { HiresOptions } from '../../pipelines/index.js';
import type { InfotextParameters, ParsedParameters } from '../../png-parameters.js';
import type { LoadOptions } from '../../stable-diffusion.js';
import type { Tensor } from '../../tensor.js';
import type { LoraSpec, PipelineName, Seed } from '../../types.js';

/** A generate command line, checked. */
export interface GenerateRequest {
  /** `--from`: the image whose parameters were taken, and what they said. */
  from: { path: string; parameters: ParsedParameters } | undefined;
  prompt: string;
  negativePrompt: string;
  /** `--model` as given (`demo` or a path) and the path it names. */
  model: string;
  modelPath: string;
  /** The values of the parts of a job; several for a grid. */
  values: JobValues;
  isGrid: boolean;
  width: number | undefined;
  height: number | undefined;
  batchSize: number;
  /** `--from` an image of a batch: the position of the image to keep. */
  keep: number | undefined;
  pipeline: PipelineName;
  output: string;
  format: ImageFormat;
  quality: number | undefined;
  loadOptions: LoadOptions;
  /** `--lora`: the LoRAs of every job. */
  loras: LoraSpec[];
  /** The --hires-* flags: txt2img's `hires`, with the upscaler as a mode name or a Real-ESRGAN file. */
  hires: (Omit<HiresOptions, 'upscaler'> & { upscaler?: string }) | undefined;
  image: Tensor | undefined;
  mask: Tensor | undefined;
  depthMap: Tensor | undefined;
  json: boolean;
  quiet: boolean;
}

/** The varying part of one generation; a grid has one per cell. */
export interface Job {
  steps: number;
  guidanceScale: number;
  sampler: string;
  seed: Seed;
  clipSkip: number | undefined;
  strength: number | undefined;
}

/** The values given for each part of a job (one each unless the command line lists several). */
export type JobValues = { [K in keyof Job]: Job[K][] };

/** One dimension of a grid: a part of the job with more than one value, and its label. */
export type Axis = { key: keyof Job; label: string; values: Job[keyof Job][] };

export interface JobPlan {
  /** The grid's axes, in the order the grid lays them out (none: a single generation). */
  axes: Axis[];
  jobs: Job[];
}

/** One job's images and the parameters recorded for each. */
export interface JobResult {
  images: Tensor;
  parameters: InfotextParameters[];
}
