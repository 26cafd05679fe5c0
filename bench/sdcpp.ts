// The stable-diffusion.cpp side of `SDCPP_BIN=/path/to/sd-cli npm run bench`: one txt2img run of
// its CLI on the same model file, size, weight type (its --type), seed and threads, guidance on
// (its --cfg-scale 7.5, so every step is a conditional and an unconditional UNet pass) with the
// Euler sampler (one model evaluation per step) and --eager-load (all weights read at start-up,
// as ours are: by default it reads each network's weights inside its first call, which would
// land in "UNet first step" and "VAE decode"), under /usr/bin/time -v for the peak RSS.
// stable-diffusion.cpp is built from its own sources outside this repository; see bench/README.md.
//
// Figures are read from its log (-v), as bench/measure.ts reports ours:
//   loadSeconds           the sum of its "loading tensors completed, taking X s" (reading and converting weights)
//   weightBytes           "total params memory size = X MB"
//   textEncodeSeconds     half of "get_learned_condition completed, taking X s" (prompt + negative prompt)
//   unetFirstStepSeconds  the progress bar's time of step 1 ("1/N - X s/it" or "it/s")
//   unetStepSeconds       the median of the progress bar's times of steps 2..N
//   vaeDecodeSeconds      "latent 1 decoded, taking X s"
//   peakRssBytes          /usr/bin/time -v "Maximum resident set size (kbytes)"
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { median } from './median.js';

export interface SdcppOptions {
  bin: string;
  model: string;
  weightType: string;
  size: number;
  /** UNet steps after the first (the first, which also builds the graph, is reported on its own). */
  steps: number;
  seed: number;
  threads: number;
  /** More arguments for the CLI, e.g. ['--diffusion-fa'] (SDCPP_ARGS). */
  extraArgs?: string[];
}

export type Figures = Record<string, number | string | null>;

const number = (text: string, pattern: RegExp): number | null => {
  const m = pattern.exec(text);
  return m ? Number(m[1]) : null;
};

const sum = (text: string, pattern: RegExp): number | null => {
  const values = [...text.matchAll(pattern)].map((m) => Number(m[1]));
  return values.length > 0 ? values.reduce((a, b) => a + b, 0) : null;
};

/** The median, or null when no value was read. */
function medianOrNull(values: number[]): number | null {
  return values.length === 0 ? null : median(values);
}

/** Seconds per step from the CLI's progress bar ("|====| 3/4 - 2.50s/it" or "1.20it/s"), by step. */
export function progressSteps(log: string): Map<number, number> {
  const steps = new Map<number, number>();
  for (const m of log.matchAll(/(\d+)\/(\d+) - ([\d.]+)(s\/it|it\/s)/g)) {
    const value = Number(m[3]);
    steps.set(Number(m[1]), m[4] === 'it/s' ? (value > 0 ? 1 / value : 0) : value);
  }
  return steps;
}

/** The figures of one run from its log (stdout and stderr together). */
export function parseSdcppLog(log: string, sampling: number): Figures {
  const steps = progressSteps(log);
  const later = [...steps.entries()].filter(([step]) => step > 1 && step <= sampling).map(([, s]) => s);
  const condition = number(log, /get_learned_condition completed, taking ([\d.]+)s/);
  const paramsMb = number(log, /total params memory size = ([\d.]+)MB/);
  const rssKb = number(log, /Maximum resident set size \(kbytes\): (\d+)/);
  return {
    loadSeconds: sum(log, /loading tensors completed, taking ([\d.]+)s/g),
    weightBytes: paramsMb === null ? null : paramsMb * 1024 * 1024,
    textEncodeSeconds: condition === null ? null : condition / 2,
    unetFirstStepSeconds: steps.get(1) ?? null,
    unetStepSeconds: medianOrNull(later),
    samplingSeconds: number(log, /sampling completed, taking ([\d.]+)s/),
    vaeDecodeSeconds:
      number(log, /latent 1 decoded, taking ([\d.]+)s/) ?? number(log, /decode_first_stage completed, taking ([\d.]+)s/),
    peakRssBytes: rssKb === null ? null : rssKb * 1024,
  };
}

export function runSdcpp(o: SdcppOptions): Figures {
  if (!existsSync(o.bin)) throw new Error(`SDCPP_BIN: no stable-diffusion.cpp CLI at ${o.bin}`);
  const dir = mkdtempSync(join(tmpdir(), 'sdnode-bench-sdcpp-'));
  const sampling = o.steps + 1;
  const args = [
    '-m', o.model,
    '--type', o.weightType,
    '-W', String(o.size), '-H', String(o.size),
    '--steps', String(sampling),
    '--sampling-method', 'euler',
    '--cfg-scale', '7.5',
    '--eager-load',
    '-s', String(o.seed),
    '-t', String(o.threads),
    '-p', 'a photograph of an astronaut riding a horse',
    '-o', join(dir, 'out.png'),
    '-v',
    ...(o.extraArgs ?? []),
  ];
  const timed = existsSync('/usr/bin/time');
  const started = process.hrtime.bigint();
  const run = timed
    ? spawnSync('/usr/bin/time', ['-v', o.bin, ...args], { encoding: 'utf8', maxBuffer: 256 << 20 })
    : spawnSync(o.bin, args, { encoding: 'utf8', maxBuffer: 256 << 20 });
  const wallSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  rmSync(dir, { recursive: true, force: true });
  const log = `${run.stdout ?? ''}\n${run.stderr ?? ''}`;
  if (run.status !== 0) {
    throw new Error(`stable-diffusion.cpp exited with ${run.status ?? run.signal}:\n${log.slice(-4000)}`);
  }
  const figures = parseSdcppLog(log, sampling);
  for (const key of ['unetStepSeconds', 'vaeDecodeSeconds'] as const) {
    if (figures[key] === null) throw new Error(`stable-diffusion.cpp: could not read ${key} from its log:\n${log.slice(-4000)}`);
  }
  return { ...figures, wallSeconds, weightType: o.weightType, size: o.size, threads: o.threads };
}
