// npm run bench [-- --model PATH --sizes 256,512 --types f16,q8_0,q4_0 --steps 3 --threads 2
//                   --seed 42 --runs 1 --sdcpp /path/to/sd-cli --diffusers-python /path/to/python
//                   --onnx DIR --onnx-python /path/to/python]
//
// Runs each configuration (weight type × size) in its own process on the full-size random SD 1.5
// model (tools/make_full_size_model.py; never committed) and prints a table: load time, weight
// memory, text encode, median seconds per UNet step (batch 2, as with guidance), VAE decode,
// achieved GFLOP/s (bench/flops.ts) and peak RSS. Networks not built yet show as "n/a".
//
// Side by side, from the same run: with --sdcpp BIN (or SDCPP_BIN=BIN; more CLI arguments in
// SDCPP_ARGS, e.g. "--diffusion-fa") stable-diffusion.cpp runs on the same file, size, weight type,
// steps, seed and threads (bench/sdcpp.ts); with --diffusers-python PYTHON (or DIFFUSERS_PYTHON;
// PYTHONPATH as that Python needs it for diffusers) diffusers runs in fp32 on the CPU
// (bench/diffusers_bench.py); with --onnx DIR (or ONNX_DIR: what tools/export_onnx.py wrote from the
// same checkpoint) ONNX Runtime runs those fp32 networks on the CPU (bench/onnxruntime_bench.py, with
// --onnx-python PYTHON, else the diffusers one, else python3). Runs alternate (ours, then theirs,
// for every configuration; --runs rounds of that), each figure is the median over the rounds, and
// our/their ratio is printed per figure. One process at a time. Run it on an idle machine.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { packageRoot } from '../lib/native.js';
import { median } from './median.js';
import { runSdcpp, type Figures } from './sdcpp.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1]! : fallback;
};
const model = option('--model', process.env.SDNODE_BENCH_MODEL ?? '/tmp/sd15-random.safetensors');
const sizes = option('--sizes', '256,512').split(',').map(Number);
const types = option('--types', 'f16,q8_0,q4_0').split(',');
const steps = option('--steps', '3');
const threads = option('--threads', '2');
const seed = option('--seed', '42');
const runs = Number(option('--runs', '1'));
const sdcppBin = option('--sdcpp', process.env.SDCPP_BIN ?? '');
const sdcppArgs = (process.env.SDCPP_ARGS ?? '').split(/\s+/).filter(Boolean);
const diffusersPython = option('--diffusers-python', process.env.DIFFUSERS_PYTHON ?? '');
const onnxDir = option('--onnx', process.env.ONNX_DIR ?? '');
const onnxPython = option('--onnx-python', diffusersPython || 'python3');

if (!existsSync(model)) {
  console.error(`No benchmark model at ${model}. Make one (2.1 GB, never commit it) with:
  PYTHONPATH=/path/to/diffusers/src python tools/make_full_size_model.py ${model}
or pass --model PATH / SDNODE_BENCH_MODEL.`);
  process.exit(1);
}
if (onnxDir && !existsSync(join(onnxDir, 'unet', 'model.onnx'))) {
  console.error(`No ONNX export in ${onnxDir} (--onnx / ONNX_DIR): make one with tools/export_onnx.py.`);
  process.exit(1);
}
if (sdcppBin && !existsSync(sdcppBin)) {
  console.error(`No stable-diffusion.cpp CLI at ${sdcppBin} (--sdcpp / SDCPP_BIN).`);
  process.exit(1);
}

const lastJson = (out: string): Figures => JSON.parse(out.trim().split('\n').pop()!) as Figures;

function ours(type: string, size: number): Figures {
  const out = execFileSync(process.execPath, ['--import', 'tsx', join(packageRoot, 'bench', 'measure.ts'), model, type, String(size), steps, threads], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return lastJson(out);
}

/** A Python reference (bench/<script>) on `input` (the checkpoint or the ONNX folder), fp32. */
function python(interpreter: string, script: string, input: string, size: number): Figures {
  const out = execFileSync(interpreter, [join(packageRoot, 'bench', script), input, String(size), threads, '--steps', steps, '--seed', seed], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return lastJson(out);
}

/** The fp32 references that run once per size, in this order after ours. */
const references = [
  ...(diffusersPython ? [{ key: 'diffusers', label: 'diffusers fp32', version: 'torch', run: (size: number) => python(diffusersPython, 'diffusers_bench.py', model, size) }] : []),
  ...(onnxDir ? [{ key: 'onnxruntime', label: 'ONNX Runtime fp32', version: 'onnxruntime', run: (size: number) => python(onnxPython, 'onnxruntime_bench.py', onnxDir, size) }] : []),
];
const sideBySide = Boolean(sdcppBin) || references.length > 0;

function sdcpp(type: string, size: number): Figures {
  return runSdcpp({ bin: sdcppBin, model, weightType: type, size, steps: Number(steps), seed: Number(seed), threads: Number(threads), extraArgs: sdcppArgs });
}

// Every measurement, in the order taken; each engine × configuration keeps one Figures per round.
const results = new Map<string, Figures[]>();
const record = (key: string, figures: Figures): void => {
  results.set(key, [...(results.get(key) ?? []), figures]);
};
const log = (text: string): void => {
  if (sideBySide) process.stderr.write(`${text}\n`);
};

for (let round = 1; round <= runs; round++) {
  for (const size of sizes) {
    for (const type of types) {
      log(`round ${round}/${runs}: ours ${type} ${size}²`);
      record(`ours ${type} ${size}`, ours(type, size));
      if (sdcppBin) {
        log(`round ${round}/${runs}: stable-diffusion.cpp ${type} ${size}²`);
        record(`sdcpp ${type} ${size}`, sdcpp(type, size));
      }
    }
    for (const reference of references) {
      log(`round ${round}/${runs}: ${reference.label} ${size}²`);
      record(`${reference.key} ${size}`, reference.run(size));
    }
  }
}

/** Per figure, the median over the rounds (null where a round has none). */
function combined(key: string): Record<string, number | null> {
  const rounds = results.get(key) ?? [];
  const out: Record<string, number | null> = {};
  for (const name of new Set(rounds.flatMap((r) => Object.keys(r)))) {
    const values = rounds.map((r) => r[name]).filter((v): v is number => typeof v === 'number');
    out[name] = values.length === rounds.length && values.length > 0 ? median(values) : null;
  }
  return out;
}

const format = (value: number | null | undefined, unit: string, scale = 1, digits = 2): string =>
  typeof value === 'number' ? `${(value / scale).toFixed(digits)}${unit ? ` ${unit}` : ''}` : 'n/a';
const rate = (flops: number | null | undefined, secs: number | null | undefined): number | null =>
  typeof flops === 'number' && typeof secs === 'number' && secs > 0 ? flops / secs : null;

console.log(`model ${model}, ${threads} threads, seed ${seed}; UNet: the first call (builds the graph) and the median of ${steps} more` +
  (runs > 1 ? `; median of ${runs} alternating rounds` : '') + '\n');
console.log('| weights | size | load | weights in memory | text encode | UNet first step | UNet step (batch 2) | UNet GFLOP/s | VAE decode | VAE GFLOP/s | peak RSS |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const type of types) {
  for (const size of sizes) {
    const r = combined(`ours ${type} ${size}`);
    console.log(
      `| ${type} | ${size}² | ${format(r.loadSeconds, 's')} | ${format(r.weightBytes, 'GB', 1e9)} | ${format(r.textEncodeSeconds, 's')} | ` +
        `${format(r.unetFirstStepSeconds, 's')} | ${format(r.unetStepSeconds, 's')} | ${format(rate(r.unetStepFlops, r.unetStepSeconds), '', 1e9, 1)} | ` +
        `${format(r.vaeDecodeSeconds, 's')} | ${format(rate(r.vaeDecodeFlops, r.vaeDecodeSeconds), '', 1e9, 1)} | ${format(r.peakRssBytes, 'GB', 1e9)} |`,
    );
  }
}

if (sideBySide) {
  // Ratios are ours / theirs: below 1 we are faster (or smaller).
  const ratio = (a: number | null | undefined, b: number | null | undefined): string =>
    typeof a === 'number' && typeof b === 'number' && b > 0 ? `${(a / b).toFixed(2)}×` : 'n/a';
  const timed = ['loadSeconds', 'textEncodeSeconds', 'unetFirstStepSeconds', 'unetStepSeconds'] as const;
  const row = (label: string, r: Record<string, number | null>, flops: Record<string, number | null>): string =>
    `| ${label} | ${timed.map((k) => format(r[k], 's')).join(' | ')} | ${format(rate(flops.unetStepFlops, r.unetStepSeconds), '', 1e9, 1)} | ` +
    `${format(r.vaeDecodeSeconds, 's')} | ${format(rate(flops.vaeDecodeFlops, r.vaeDecodeSeconds), '', 1e9, 1)} | ${format(r.peakRssBytes, 'GB', 1e9)} |`;
  const ratioRow = (label: string, a: Record<string, number | null>, b: Record<string, number | null>): string =>
    `| ${label} | ${timed.map((k) => ratio(a[k], b[k])).join(' | ')} | | ${ratio(a.vaeDecodeSeconds, b.vaeDecodeSeconds)} | | ${ratio(a.peakRssBytes, b.peakRssBytes)} |`;

  console.log('\nSide by side (same file, size, steps, seed and threads; ratio = ours / theirs, below 1× is better for us):\n');
  console.log('| size | engine | load | text encode | UNet first step | UNet step (batch 2) | UNet GFLOP/s | VAE decode | VAE GFLOP/s | peak RSS |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const size of sizes) {
    for (const type of types) {
      const us = combined(`ours ${type} ${size}`);
      console.log(row(`${size}² | ours ${type}`, us, us));
      if (sdcppBin) {
        const them = combined(`sdcpp ${type} ${size}`);
        console.log(row(`${size}² | stable-diffusion.cpp ${type}`, them, us));
        console.log(ratioRow(`${size}² | **ours / sd.cpp, ${type}**`, us, them));
      }
      for (const reference of references) console.log(ratioRow(`${size}² | **ours ${type} / ${reference.label}**`, us, combined(`${reference.key} ${size}`)));
    }
    for (const reference of references) {
      const version = String((results.get(`${reference.key} ${size}`) ?? [{}])[0]![reference.version] ?? '?');
      console.log(row(`${size}² | ${reference.label} (${reference.version} ${version})`, combined(`${reference.key} ${size}`), combined(`ours ${types[0]} ${size}`)));
    }
  }
  if (sdcppBin) console.log('\nstable-diffusion.cpp: Euler, cfg 7.5, step 1 reported as "UNet first step", the median of the later steps as "UNet step";' +
    ' its text encode is half of its prompt + negative prompt conditioning; its load is the sum of its "loading tensors completed" (--eager-load).');
  console.log('\nGFLOP/s use our FLOP counts (bench/flops.ts) for every engine.');
}
