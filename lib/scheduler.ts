// Noise schedulers for the denoising loop, computed by the native core exactly as diffusers'
// schedulers compute them when built from Stable Diffusion's scheduler config. All methods are
// synchronous: a step is element-wise maths over one latent (well under a millisecond).
//
// The core's scheduler catalog (schedulerCatalog()) is the one source of the names, A1111's names,
// what each scheduler supports and the overrides' ranges. The literal lists below give TypeScript
// its union types; test/scheduler-catalog.test.ts checks that they equal the catalog.
import { native, type NativeScheduler, type NativeSchedulerCatalog } from './native.js';
import { Tensor, type TensorLike } from './tensor.js';
import { describe, expectBoolean, expectInteger, expectKnownKeys, expectNumber, expectObject, expectOneOf, expectString } from './validate.js';
import { ArgumentRangeError, ArgumentTypeError } from './errors.js';

/** Our scheduler names (the core's catalog, as literal types). */
export const SCHEDULER_NAMES = [
  'pndm', 'ddim', 'lms', 'euler', 'euler_a', 'heun', 'dpmpp_2m', 'dpmpp_2m_karras', 'dpmpp_2m_sde', 'dpmpp_2m_sde_karras',
  'unipc', 'ddpm', 'lcm',
] as const;
/** One of our scheduler names. */
export type SchedulerName = (typeof SCHEDULER_NAMES)[number];

/** AUTOMATIC1111's names, accepted too (case-insensitive, like ours); the core's catalog, in its order. */
export const A1111_SCHEDULER_NAMES: Readonly<Record<string, SchedulerName>> = Object.freeze({
  'Euler a': 'euler_a',
  'DPM++ 2M Karras': 'dpmpp_2m_karras',
  DDIM: 'ddim',
  PLMS: 'pndm',
  LMS: 'lms',
  Heun: 'heun',
  Euler: 'euler',
  'DPM++ 2M': 'dpmpp_2m',
  // diffusers' sde-dpmsolver++ (noise from the pipeline's generator), not k-diffusion's Brownian tree.
  'DPM++ 2M SDE': 'dpmpp_2m_sde',
  'DPM++ 2M SDE Karras': 'dpmpp_2m_sde_karras',
  UniPC: 'unipc',
  LCM: 'lcm',
});

/** diffusers' `timestep_spacing` values. */
export const TIMESTEP_SPACINGS = ['leading', 'linspace', 'trailing'] as const;
/** One of TIMESTEP_SPACINGS. */
export type TimestepSpacing = (typeof TIMESTEP_SPACINGS)[number];
export const SCHEDULER_PREDICTION_TYPES = ['epsilon', 'v_prediction'] as const;

/** diffusers' config names in camelCase; what is left out keeps SD's config (or the scheduler's default). */
export interface SchedulerOverrides {
  /** Default: diffusers' default for the scheduler ('leading' for pndm, ddim, ddpm, lcm; 'linspace' otherwise). */
  timestepSpacing?: TimestepSpacing;
  /** Karras et al. noise levels: euler, lms, heun, dpmpp_2m, dpmpp_2m_sde, unipc (the *_karras names set it); true elsewhere is a RangeError. */
  useKarrasSigmas?: boolean;
  /** What the model predicts (default: SD's `epsilon`; `sd.createScheduler` gives the model's). */
  predictionType?: 'epsilon' | 'v_prediction';
  /** Added to 'leading' timesteps (SD: 1). */
  stepsOffset?: number;
  /** DDIM's eta (0 = deterministic, 1 = DDPM-like); with eta > 0 step() needs noise. Other schedulers ignore it, as diffusers' pipelines only pass it to DDIM. */
  eta?: number;
}

/** Returns standard normal noise of `shape` (e.g. drawn from the pipeline's generator). */
export type NoiseFunction = (shape: number[]) => TensorLike | Float32Array;

let catalog: NativeSchedulerCatalog | undefined;

// The core's scheduler table (read once).
function schedulerCatalog(): NativeSchedulerCatalog {
  catalog ??= native().schedulerCatalog();
  return catalog;
}

function schedulerInfo(name: string): NativeSchedulerCatalog['schedulers'][number] {
  const info = schedulerCatalog().schedulers.find((s) => s.name === name);
  if (info === undefined) throw new Error(`The scheduler catalog has no ${name}`);
  return info;
}

/** Whether a scheduler takes `useKarrasSigmas` (the core's catalog says). */
export function takesKarrasSigmas(name: SchedulerName): boolean {
  return schedulerInfo(name).karrasSigmas;
}

/** The canonical name for one of ours or A1111's (any case), or undefined. */
export function canonicalSchedulerName(name: string): SchedulerName | undefined {
  const key = name.toLowerCase();
  const ours = SCHEDULER_NAMES.find((n) => n === key);
  if (ours) return ours;
  for (const [a1111, canonical] of Object.entries(A1111_SCHEDULER_NAMES)) {
    if (a1111.toLowerCase() === key) return canonical;
  }
  return undefined;
}

// Each override checked as the catalog describes it.
function checkOverrides(value: unknown): SchedulerOverrides {
  if (value === undefined) return {};
  const object = expectObject(value, 'overrides');
  const overrides = schedulerCatalog().overrides;
  const known = overrides.map((o) => o.name);
  expectKnownKeys(object, 'the scheduler overrides', known);
  const out: Record<string, unknown> = {};
  for (const o of overrides) {
    const v = object[o.name];
    if (v === undefined) continue;
    if (o.type === 'oneOf') out[o.name] = expectOneOf(v, o.name, o.values!);
    else if (o.type === 'boolean') out[o.name] = expectBoolean(v, o.name);
    else if (o.type === 'integer') out[o.name] = expectInteger(v, o.name, o.min!, o.max!);
    else out[o.name] = expectNumber(v, o.name, o.min!, o.max!);
  }
  return out as SchedulerOverrides;
}

function checkTimestep(value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new ArgumentTypeError(`Expected timestep to be a finite number but received ${describe(value)}`);
  }
  return value;
}

/**
 * A noise scheduler, computed as diffusers' scheduler of that name built from Stable Diffusion's
 * config. Make one with `createScheduler` or `sd.createScheduler`.
 */
export class Scheduler {
  readonly #native: NativeScheduler;

  /** Use createScheduler(). */
  constructor(name: string, overrides?: SchedulerOverrides) {
    const given = expectString(name, 'the scheduler name');
    const canonical = canonicalSchedulerName(given);
    if (canonical === undefined) {
      const valid = [...SCHEDULER_NAMES, ...Object.keys(A1111_SCHEDULER_NAMES).map((n) => JSON.stringify(n))];
      throw new ArgumentRangeError(`Unknown scheduler ${JSON.stringify(given)}; expected one of ${valid.join(', ')}`);
    }
    this.#native = new (native().Scheduler)(canonical, checkOverrides(overrides));
  }

  /** The canonical name, e.g. 'dpmpp_2m_karras' for "DPM++ 2M Karras". */
  get name(): SchedulerName {
    return this.#native.name as SchedulerName;
  }

  /** Whether step() needs noise (euler_a, ddpm, lcm, ddim with eta > 0). */
  get stochastic(): boolean {
    return this.#native.stochastic;
  }

  /** Prepares `steps` inference steps; resets the scheduler's history. */
  setTimesteps(steps: number): void {
    this.#native.setTimesteps(expectInteger(steps, 'steps', 1, 1000));
  }

  /**
   * Starts the loop at `timesteps[index]` (img2img / inpaint: index = stepsSkipped · order), as
   * diffusers' pipelines do with set_beginIndex: the first step uses this index rather than
   * looking its timestep up (which matters where Heun repeats timesteps), and so does addNoise.
   * Call it after setTimesteps. DDIM, PNDM and DDPM have no step index and refuse it.
   */
  setBeginIndex(index: number): void {
    const n = this.#native.timesteps.length;
    if (n === 0) throw new ArgumentRangeError('Call setTimesteps(steps) before setBeginIndex()');
    this.#native.setBeginIndex(expectInteger(index, 'begin index', 0, n - 1));
  }

  /**
   * Whether `setBeginIndex` applies: every scheduler with a step index. diffusers' PNDM, DDIM and
   * DDPM have none (their step looks at the timestep only), so its pipelines skip them.
   */
  get hasBeginIndex(): boolean {
    return schedulerInfo(this.#native.name).beginIndex;
  }

  /** How many model calls one step takes (2 for heun, whose timesteps repeat; 1 otherwise). */
  get order(): number {
    return schedulerInfo(this.#native.name).order;
  }

  /** The timesteps to visit, in order (float32 values; fractional with Karras sigmas). */
  get timesteps(): number[] {
    return this.#native.timesteps;
  }

  /** The noise levels (one more than the timesteps, ending in 0), or null for schedulers without them. */
  get sigmas(): Float32Array | null {
    return this.#native.sigmas;
  }

  /** Multiply the initial N(0, 1) latents by this. */
  get initNoiseSigma(): number {
    return this.#native.initNoiseSigma;
  }

  /** The UNet's input for the current step. */
  scaleModelInput(sample: TensorLike, timestep: number): Tensor {
    return Tensor.of(this.#native.scaleModelInput(Tensor.of(sample), checkTimestep(timestep)));
  }

  /**
   * One denoising step. Stochastic schedulers need `noise` (N(0, 1)): a tensor of the sample's
   * shape, or a function called with the shape each time the scheduler draws (DDPM and LCM draw
   * nothing on their last step, like diffusers), so a generator is advanced exactly as diffusers
   * advances it. Deterministic schedulers ignore it.
   */
  step(modelOutput: TensorLike, timestep: number, sample: TensorLike, noise?: TensorLike | NoiseFunction): {
    /** The sample one step on. */
    prevSample: Tensor;
  } {
    const out = Tensor.of(modelOutput);
    const x = Tensor.of(sample);
    if (out.shape.length !== x.shape.length || out.shape.some((d, i) => d !== x.shape[i])) {
      throw new ArgumentRangeError(`Expected modelOutput [${out.shape.join(', ')}] to have the shape of sample [${x.shape.join(', ')}]`);
    }
    let n: Tensor | NoiseFunction | undefined;
    if (typeof noise === 'function') {
      n = noise;
    } else if (noise !== undefined) {
      n = Tensor.of(noise);
      if (n.size !== x.size) throw new ArgumentRangeError(`Expected noise to have ${x.size} values (the sample's shape) but it has ${n.size}`);
    }
    const result = this.#native.step(out, checkTimestep(timestep), x, n);
    return { prevSample: Tensor.of(result.prevSample) };
  }

  /** `original` noised to `timesteps` (one per batch item, or one for all). */
  addNoise(original: TensorLike, noise: TensorLike, timesteps: number | readonly number[]): Tensor {
    const o = Tensor.of(original);
    const n = Tensor.of(noise);
    if (o.size !== n.size) throw new ArgumentRangeError('Expected noise to have the shape of original');
    const ts = typeof timesteps === 'number' ? checkTimestep(timesteps) : Array.isArray(timesteps) ? timesteps.map(checkTimestep) : undefined;
    if (ts === undefined) throw new ArgumentTypeError(`Expected timesteps to be a number or an array of numbers but received ${describe(timesteps)}`);
    return Tensor.of(this.#native.addNoise(o, n, ts));
  }
}

/** A scheduler by our name or A1111's ("Euler a", "DPM++ 2M Karras", …), with SD's config plus `overrides`. */
export function createScheduler(name: string, overrides?: SchedulerOverrides): Scheduler {
  return new Scheduler(name, overrides);
}
