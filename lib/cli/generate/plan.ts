// `sdnode generate`, step 2 of 4: the jobs. Comma-separated values of --cfg-scale, --seed,
// --sampler, --steps, --clip-skip and --strength make a grid: one job per combination, the
// first list varying fastest.
import { samplerLabel } from '../../png-parameters.js';
import type { Axis, Job, JobPlan, JobValues } from './types.js';

/** The parts of the job given more than one value: the grid's axes, the first across. */
export function gridAxes(values: JobValues): Axis[] {
  return (
    [
      { key: 'guidanceScale', label: 'CFG scale', values: values.guidanceScale },
      { key: 'seed', label: 'Seed', values: values.seed },
      { key: 'sampler', label: 'Sampler', values: values.sampler },
      { key: 'steps', label: 'Steps', values: values.steps },
      { key: 'clipSkip', label: 'Clip skip', values: values.clipSkip },
      { key: 'strength', label: 'Denoising strength', values: values.strength },
    ] as Axis[]
  ).filter((a) => a.values.length > 1);
}

export function planJobs(values: JobValues): JobPlan {
  const axes = gridAxes(values);
  const first: Job = {
    steps: values.steps[0]!,
    guidanceScale: values.guidanceScale[0]!,
    sampler: values.sampler[0]!,
    seed: values.seed[0]!,
    clipSkip: values.clipSkip[0],
    strength: values.strength[0],
  };
  return { axes, jobs: cartesian(axes, first) };
}

/** A value as the grid's labels show it (samplers by A1111's names). */
export function axisValue(axis: Axis, value: Job[keyof Job]): string {
  return axis.key === 'sampler' ? samplerLabel(String(value)) : String(value);
}

/** Jobs of the grid with the first axis varying fastest, the last slowest. */
function cartesian(axes: Axis[], base: Job): Job[] {
  let jobs: Job[] = [base];
  for (const axis of axes) {
    const next: Job[] = [];
    for (const value of axis.values) for (const job of jobs) next.push({ ...job, [axis.key]: value });
    jobs = next;
  }
  return jobs;
}
