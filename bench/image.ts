// One txt2img configuration end to end in its own process, as a user calls it:
//   node --import tsx bench/image.ts <model> <weightType> <size> <steps> <threads>
//     [--scheduler NAME] [--guidance G] [--lora PATH [--lora-weight W]] [--images N]
// Times N (default 2) txt2img calls with the LoRA given per call (`loras`); the first also builds
// and allocates the graphs and applies the LoRA. Prints one JSON line.
import { parseArgs } from 'node:util';

import { StableDiffusion } from '../lib/index.js';

const { positionals, values: flags } = parseArgs({
  allowPositionals: true,
  options: {
    scheduler: { type: 'string', default: 'euler' },
    guidance: { type: 'string', default: '7.5' },
    lora: { type: 'string' },
    'lora-weight': { type: 'string', default: '1' },
    images: { type: 'string', default: '2' },
  },
});
const [model, weightType, sizeText, stepsText, threadsText] = positionals;
const size = Number(sizeText);
const threads = Number(threadsText);

const seconds = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e9;

let start = process.hrtime.bigint();
const sd = await StableDiffusion.load({ model: model!, weightType: weightType as never, threads, backend: 'cpu' });
const result: Record<string, number | string | number[]> = { weightType: weightType!, size, threads, loadSeconds: seconds(start) };
const imageSeconds: number[] = [];
for (let i = 0; i < Number(flags.images); i++) {
  start = process.hrtime.bigint();
  await sd.txt2img({
    prompt: 'a photograph of an astronaut riding a horse',
    width: size,
    height: size,
    steps: Number(stepsText),
    scheduler: flags.scheduler!,
    guidanceScale: Number(flags.guidance),
    seed: 42 + i,
    outputType: 'tensor',
    ...(flags.lora ? { loras: [{ path: flags.lora, weight: Number(flags['lora-weight']) }] } : {}),
  });
  imageSeconds.push(seconds(start));
}
result.imageSeconds = imageSeconds;
await sd.dispose();
result.peakRssBytes = process.resourceUsage().maxRSS * 1024;
console.log(JSON.stringify(result));
