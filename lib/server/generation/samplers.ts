// A1111's sampler and schedule-type names → our schedulers. A1111 names a sampler ("DPM++ 2M")
// and, since 1.9, a schedule type ("Karras") apart; we have diffusers' schedulers, whose
// timestep spacing and Karras sigmas cover the schedule types listed here. Others are refused.
import { A1111_SAMPLER_NAMES } from '../../png-parameters.js';
import { canonicalSchedulerName, SCHEDULER_NAMES, takesKarrasSigmas, type SchedulerName, type SchedulerOverrides } from '../../scheduler.js';
import { invalidField } from '../http/errors.js';

/** An entry of GET /sdapi/v1/samplers. */
export interface SamplerItem {
  name: string;
  aliases: string[];
  options: Record<string, string>;
}

// A1111's own short aliases (k-diffusion names), where it has them.
const K_ALIASES: Partial<Record<SchedulerName, string[]>> = {
  euler_a: ['k_euler_a', 'k_euler_ancestral'],
  euler: ['k_euler'],
  lms: ['k_lms'],
  heun: ['k_heun'],
  dpmpp_2m: ['k_dpmpp_2m'],
  dpmpp_2m_karras: ['k_dpmpp_2m_ka'],
  dpmpp_2m_sde: ['k_dpmpp_2m_sde'],
  dpmpp_2m_sde_karras: ['k_dpmpp_2m_sde_ka'],
  lcm: ['k_lcm'],
};

/** Every sampler, by A1111's name, with its A1111 aliases and our name. */
export const SAMPLERS: readonly SamplerItem[] = SCHEDULER_NAMES.map((name) => ({
  name: A1111_SAMPLER_NAMES[name],
  aliases: [...(K_ALIASES[name] ?? []), name],
  options: (name.endsWith('_karras') ? { scheduler: 'karras' } : {}) as Record<string, string>,
}));

/** An entry of GET /sdapi/v1/schedulers (A1111's schedule types that we can run). */
export interface ScheduleTypeItem {
  name: string;
  label: string;
  aliases: string[] | null;
  default_rho: number;
  need_inner_model: boolean;
}

type Schedule = { item: ScheduleTypeItem; overrides: SchedulerOverrides | 'karras' | undefined };

const item = (name: string, label: string, aliases: string[] | null = null, rho = -1): ScheduleTypeItem => ({
  name, label, aliases, default_rho: rho, need_inner_model: false,
});

// diffusers' spacings are A1111's schedules: 'linspace' spaces timesteps evenly from 999 to 0
// (Uniform, Normal), 'trailing' ends one step short of 0 (SGM Uniform, Simple), 'leading'
// starts from 0 (DDIM's).
const SCHEDULES: readonly Schedule[] = [
  { item: item('automatic', 'Automatic'), overrides: undefined },
  { item: item('uniform', 'Uniform'), overrides: { timestepSpacing: 'linspace' } },
  { item: item('karras', 'Karras', null, 7), overrides: 'karras' },
  { item: item('sgm_uniform', 'SGM Uniform', ['SGMUniform']), overrides: { timestepSpacing: 'trailing' } },
  { item: item('simple', 'Simple'), overrides: { timestepSpacing: 'trailing' } },
  { item: item('normal', 'Normal'), overrides: { timestepSpacing: 'linspace' } },
  { item: item('ddim', 'DDIM'), overrides: { timestepSpacing: 'leading' } },
];

/** The schedule types GET /sdapi/v1/schedulers lists. */
export const SCHEDULE_TYPES: readonly ScheduleTypeItem[] = SCHEDULES.map((s) => s.item);

/** A scheduler's Karras variant of its own (dpmpp_2m → dpmpp_2m_karras), which names itself in the infotext. */
function karrasVariant(name: SchedulerName): SchedulerName | undefined {
  if (name.endsWith('_karras')) return name;
  return SCHEDULER_NAMES.find((n) => n === `${name}_karras`);
}

/** What a request's sampler fields resolve to. */
export interface ResolvedSampler {
  /** Our scheduler. */
  name: SchedulerName;
  overrides: SchedulerOverrides;
  /** A1111's "Schedule type" for the infotext, when it is neither Automatic nor in the sampler's name. */
  scheduleType: string | undefined;
}

function samplerByName(name: string): SchedulerName | undefined {
  const key = name.trim().toLowerCase();
  return canonicalSchedulerName(key) ?? SAMPLERS.find((s) => s.aliases.some((a) => a.toLowerCase() === key))?.aliases.at(-1) as SchedulerName | undefined;
}

function scheduleByName(name: string): Schedule | undefined {
  const key = name.trim().toLowerCase();
  return SCHEDULES.find((s) => [s.item.name, s.item.label, ...(s.item.aliases ?? [])].some((n) => n.toLowerCase() === key));
}

/**
 * `sampler_name` (else `sampler_index`, else A1111's default "Euler") and `scheduler` → our
 * scheduler. Unknown names are 422s naming the field.
 */
export function resolveSampler(samplerName: string | null | undefined, samplerIndex: string | null | undefined, schedule: string | null | undefined): ResolvedSampler {
  const field = samplerName ? 'sampler_name' : 'sampler_index';
  const given = samplerName || samplerIndex || 'Euler';
  let name = samplerByName(given);
  if (name === undefined) {
    throw invalidField([field], `${field} ${JSON.stringify(given)} is not a sampler this server has; GET /sdapi/v1/samplers lists them (${SAMPLERS.map((s) => s.name).join(', ')})`, 'sampler');
  }
  const type = schedule ? scheduleByName(schedule) : undefined;
  if (schedule && type === undefined) {
    throw invalidField(['scheduler'], `scheduler ${JSON.stringify(schedule)} is not a schedule type this server has; GET /sdapi/v1/schedulers lists them (${SCHEDULE_TYPES.map((s) => s.label).join(', ')})`, 'scheduler');
  }
  let overrides: SchedulerOverrides = {};
  let scheduleType: string | undefined;
  if (type?.overrides === 'karras') {
    // A1111 ignores the schedule type for samplers that have no sigmas; so do we.
    const variant = karrasVariant(name);
    if (variant) name = variant;
    else if (takesKarrasSigmas(name)) {
      overrides = { useKarrasSigmas: true };
      scheduleType = type.item.label;
    }
  } else if (type?.overrides) {
    overrides = type.overrides;
    scheduleType = type.item.label;
  }
  return { name, overrides, scheduleType };
}
