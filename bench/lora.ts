// The cost of a LoRA (issue 17), on the full-size random SD 1.5 model:
//   node --import tsx bench/lora.ts [--model PATH] --lora RANK32.safetensors --lcm-lora LCM.safetensors
//     [--size 512] [--steps 3] [--threads 2] [--runs 2]
// Make the LoRAs with tools/make_random_lora.py (`--rank 32`, and `--rank 64 --preset lcm`).
// Per round, each in its own process (bench/measure.ts), alternating: one guided UNet step (batch 2)
// with f16 weights and no LoRA, with the LoRA merged, then q8_0 without and with the LoRA at run
// time; then the 4-step LCM image (LCM scheduler, guidance 1, LCM-LoRA per call; bench/image.ts)
// with f16 and q8_0 weights. Prints the medians over the rounds. Run it on an idle machine.
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { packageRoot } from '../lib/native.js';
import { median } from './median.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: process.env.SDNODE_BENCH_MODEL ?? '/tmp/sd15-random.safetensors' },
    lora: { type: 'string' },
    'lcm-lora': { type: 'string' },
    size: { type: 'string', default: '512' },
    steps: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' },
    runs: { type: 'string', default: '2' },
  },
});
if (!values.lora || !values['lcm-lora']) {
  console.error('Give --lora (rank 32) and --lcm-lora: make them with tools/make_random_lora.py.');
  process.exit(1);
}

type Figures = Record<string, number | number[] | string>;
const run = (script: string, type: string, extra: string[]): Figures => {
  const out = execFileSync(process.execPath, ['--import', 'tsx', join(packageRoot, 'bench', script), values.model!, type, values.size!, ...extra], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return JSON.parse(out.trim().split('\n').pop()!) as Figures;
};
const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

const stepConfigs = [
  { name: 'f16, no LoRA', type: 'f16', lora: false },
  { name: 'f16, LoRA merged', type: 'f16', lora: true },
  { name: 'q8_0, no LoRA', type: 'q8_0', lora: false },
  { name: 'q8_0, LoRA at run time', type: 'q8_0', lora: true },
];
const imageConfigs = ['f16', 'q8_0'];
const steps: Figures[][] = stepConfigs.map(() => []);
const images: Figures[][] = imageConfigs.map(() => []);

console.log(`${cpus().length} cores (${cpus()[0]!.model.trim()}), load average before: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
for (let round = 0; round < Number(values.runs); round++) {
  stepConfigs.forEach((config, i) => {
    const extra = [values.steps!, values.threads!, ...(config.lora ? ['--lora', values.lora!] : [])];
    steps[i]!.push(run('measure.ts', config.type, extra));
    console.error(`round ${round + 1}: ${config.name}: ${(steps[i]!.at(-1)!.unetStepSeconds as number).toFixed(2)} s/step`);
  });
  imageConfigs.forEach((type, i) => {
    const extra = ['4', values.threads!, '--scheduler', 'lcm', '--guidance', '1', '--lora', values['lcm-lora']!];
    images[i]!.push(run('image.ts', type, extra));
    console.error(`round ${round + 1}: LCM ${type}: ${(images[i]!.at(-1)!.imageSeconds as number[]).map((s) => s.toFixed(2)).join(', ')} s`);
  });
}

const pick = (runs: Figures[], key: string): number => median(runs.map((f) => f[key] as number));
console.log(`\nOne guided UNet step (batch 2) at ${values.size}², ${values.threads} threads, median of ${values.runs} runs × ${values.steps} steps:\n`);
console.log('| weights, LoRA | UNet step | first UNet call (graph built, LoRA applied) | LoRA memory | peak RSS |');
console.log('|---|---|---|---|---|');
stepConfigs.forEach((config, i) => {
  const runs = steps[i]!;
  const first = `${pick(runs, 'unetFirstStepSeconds').toFixed(2)} s`;
  const memory = !config.lora ? '–' : config.type === 'f16' ? `${mb(pick(runs, 'loraBackupBytes'))} backup (${pick(runs, 'loraMerged')} weights merged)` : `${mb(pick(runs, 'loraAdapterBytes'))} factors (${pick(runs, 'loraRuntime')} layers)`;
  console.log(`| ${config.name} | ${pick(runs, 'unetStepSeconds').toFixed(2)} s | ${first} | ${memory} | ${mb(pick(runs, 'peakRssBytes'))} |`);
});
console.log(`\n4-step LCM-LoRA image at ${values.size}² (LCM scheduler, guidance 1, the LoRA per call), end to end, median of ${values.runs} runs:\n`);
console.log('| weights | first image (graphs built, LoRA applied) | next image | peak RSS |');
console.log('|---|---|---|---|');
imageConfigs.forEach((type, i) => {
  const runs = images[i]!;
  const first = median(runs.map((f) => (f.imageSeconds as number[])[0]!));
  const next = median(runs.map((f) => (f.imageSeconds as number[])[1]!));
  console.log(`| ${type} | ${first.toFixed(2)} s | ${next.toFixed(2)} s | ${mb(pick(runs, 'peakRssBytes'))} |`);
});
