// One UNet step (batch 2, as a guided step) or one VAE decode through the public API, for a
// profiler. Loads the model, runs the call once to warm up (graph building, allocation), then
// runs it once more between "enable" and "disable" on perf's control FIFO, so that the profile
// holds that call alone:
//
//   mkfifo /tmp/perf.ctl /tmp/perf.ack
//   PERF_CTL=/tmp/perf.ctl PERF_ACK=/tmp/perf.ack perf record -g -D -1 --control fifo:/tmp/perf.ctl,/tmp/perf.ack \
//     -o unet.perf.data -- node --import tsx bench/profile.ts unet MODEL [--size 256] [--type f16] [--threads 2]
//   perf report -i unet.perf.data --no-children --sort symbol --stdio | head -60
//
// Without PERF_CTL it just times the call (for callgrind or a plain `time`). See bench/README.md, "Profile".
import { closeSync, openSync, readSync, writeSync } from 'node:fs';

import { StableDiffusion } from '../lib/index.js';
import { filled } from './inputs.js';

const [what, model, ...rest] = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const i = rest.indexOf(name);
  return i >= 0 && i + 1 < rest.length ? rest[i + 1]! : fallback;
};
if ((what !== 'unet' && what !== 'vae') || !model) {
  console.error('usage: node --import tsx bench/profile.ts unet|vae MODEL [--size 256] [--type f16] [--threads 2]');
  process.exit(2);
}
const size = Number(option('--size', '256'));
const weightType = option('--type', 'f16');
const threads = Number(option('--threads', '2'));


/** Sends a command to perf's control FIFO and waits for its "ack". */
function perfControl(command: 'enable' | 'disable'): void {
  const ctl = process.env.PERF_CTL;
  const ack = process.env.PERF_ACK;
  if (!ctl) return;
  const out = openSync(ctl, 'w');
  writeSync(out, `${command}\n`);
  closeSync(out);
  if (ack) {
    const input = openSync(ack, 'r');
    readSync(input, Buffer.alloc(16));
    closeSync(input);
  }
}

const sd = await StableDiffusion.load({ model, weightType: weightType as never, threads, backend: 'cpu' });
const latent = size / 8;
const call =
  what === 'unet'
    ? (() => {
        const sample = filled([2, 4, latent, latent], 1);
        const context = filled([2, 77, sd.info.contextDim], 2);
        return () => sd.unet.predict(sample, 999, context);
      })()
    : (() => {
        const latents = filled([1, 4, latent, latent], 3);
        return () => sd.vae.decode(latents);
      })();

await call(); // warm-up: builds and allocates the graph
perfControl('enable');
const start = process.hrtime.bigint();
await call();
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
perfControl('disable');
await sd.dispose();
console.log(JSON.stringify({ what, size, weightType, threads, seconds }));
