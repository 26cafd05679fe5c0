// npm run bench [-- --model PATH --sizes 256,512 --types f16,q8_0,q4_0 --steps 3 --threads 2]
//
// Runs each configuration (weight type × size) in its own process on the full-size random SD 1.5
// model (tools/make_full_size_model.py; never committed) and prints a table: load time, weight
// memory, text encode, median seconds per UNet step (batch 2, as with guidance), VAE decode and
// peak RSS. Networks not built yet show as "n/a". Run it on an idle machine.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { packageRoot } from '../lib/native.js';

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

if (!existsSync(model)) {
  console.error(`No benchmark model at ${model}. Make one (2.1 GB, never commit it) with:
  PYTHONPATH=/path/to/diffusers/src python tools/make_full_size_model.py ${model}
or pass --model PATH / SDNODE_BENCH_MODEL.`);
  process.exit(1);
}

const format = (value: unknown, unit: string, scale = 1, digits = 2): string =>
  typeof value === 'number' ? `${(value / scale).toFixed(digits)} ${unit}` : 'n/a';

console.log(`model ${model}, ${threads} threads; UNet: the first call (builds the graph) and the median of ${steps} more\n`);
console.log('| weights | size | load | weights in memory | text encode | UNet first step | UNet step (batch 2) | VAE decode | peak RSS |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const type of types) {
  for (const size of sizes) {
    const out = execFileSync(process.execPath, ['--import', 'tsx', join(packageRoot, 'bench', 'measure.ts'), model, type, String(size), steps, threads], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const r = JSON.parse(out.trim().split('\n').pop()!) as Record<string, number | null>;
    console.log(
      `| ${type} | ${size}² | ${format(r.loadSeconds, 's')} | ${format(r.weightBytes, 'GB', 1e9)} | ${format(r.textEncodeSeconds, 's')} | ` +
        `${format(r.unetFirstStepSeconds, 's')} | ${format(r.unetStepSeconds, 's')} | ${format(r.vaeDecodeSeconds, 's')} | ${format(r.peakRssBytes, 'GB', 1e9)} |`,
    );
  }
}
