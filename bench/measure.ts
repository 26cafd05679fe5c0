// One benchmark configuration in its own process, so that peak RSS belongs to it alone:
//   node --import tsx bench/measure.ts <model> <weightType> <size> <steps> <threads> [--lora PATH [--lora-weight W]]
// With --lora, the LoRA is set on the model (`setLoras`) before the calls, as a component loop would;
// each network applies it at its first call, so that call's time includes the merge. Prints one JSON line. Networks not built yet are reported as null. The FLOPs of each figure
// (bench/flops.ts, from the loaded model's shapes) come with it, for GFLOP/s.
import { parseArgs } from 'node:util';

import { StableDiffusion, Tensor } from '../lib/index.js';
import { benchFlops } from './flops.js';
import { filled } from './inputs.js';
import { median } from './median.js';

const { positionals, values: flags } = parseArgs({
  allowPositionals: true,
  options: { lora: { type: 'string' }, 'lora-weight': { type: 'string', default: '1' } },
});
const [model, weightType, sizeText, stepsText, threadsText] = positionals;
const size = Number(sizeText);
const steps = Number(stepsText);
const threads = Number(threadsText);

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}



type Networks = {
  textEncoder?: { encode(ids: number[], options?: object): Promise<Tensor> };
  unet?: { predict(sample: Tensor, timestep: number, context: Tensor): Promise<Tensor> };
  vae?: { decode(latents: Tensor): Promise<Tensor> };
};

const result: Record<string, number | string | null> = { weightType: weightType!, size, threads };
let start = process.hrtime.bigint();
const sd = await StableDiffusion.load({ model: model!, weightType: weightType as never, threads, backend: 'cpu' });
result.loadSeconds = seconds(start);
result.weightBytes = Object.values(sd.memory()).reduce((a, b) => a + b, 0);
const nets = sd as unknown as Networks;
const flops = benchFlops(sd.info, size);
result.unetStepFlops = flops.unetStep;
result.vaeDecodeFlops = flops.vaeDecode;
result.textEncodeFlops = flops.textEncode;

if (flags.lora) {
  start = process.hrtime.bigint();
  await sd.setLoras([{ path: flags.lora, weight: Number(flags['lora-weight']) }]);
  result.loraSetSeconds = seconds(start);
}

result.textEncodeSeconds = null;
if (nets.textEncoder) {
  const ids = sd.tokenizer.tokenizePrompt('a photograph of an astronaut riding a horse').chunks[0]!.ids;
  start = process.hrtime.bigint();
  await nets.textEncoder.encode(ids);
  result.textEncodeSeconds = seconds(start);
}

result.unetStepSeconds = null;
result.unetFirstStepSeconds = null;
if (nets.unet) {
  const latent = size / 8;
  // Guidance on: a step is a UNet batch of 2 (unconditional and conditional).
  const sample = filled([2, 4, latent, latent], 1);
  const context = filled([2, 77, sd.info.contextDim], 2);
  // The first call also builds and allocates the graph: reported on its own.
  start = process.hrtime.bigint();
  await nets.unet.predict(sample, 999, context);
  result.unetFirstStepSeconds = seconds(start);
  const times: number[] = [];
  for (let i = 1; i <= steps; i++) {
    start = process.hrtime.bigint();
    await nets.unet.predict(sample, 999 - i * 20, context);
    times.push(seconds(start));
  }
  result.unetStepSeconds = times.length > 0 ? median(times) : null;
}

result.vaeDecodeSeconds = null;
if (nets.vae) {
  start = process.hrtime.bigint();
  await nets.vae.decode(filled([1, 4, size / 8, size / 8], 3));
  result.vaeDecodeSeconds = seconds(start);
}

if (flags.lora) {
  // The LoRA is applied to the weights a network uses at that network's next call: read after them.
  const status = sd.loraStatus();
  result.loraMerged = status.merged;
  result.loraRuntime = status.runtime;
  result.loraBackupBytes = status.backupBytes;
  result.loraAdapterBytes = status.adapterBytes;
}

await sd.dispose();
result.peakRssBytes = process.resourceUsage().maxRSS * 1024;
console.log(JSON.stringify(result));
