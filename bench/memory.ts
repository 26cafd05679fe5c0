// Peak memory per stage for the low-memory options, on the full-size random SD 1.5 model:
//   node --import tsx bench/memory.ts [--model PATH] [--size 512] [--types f16,q8_0,q4_0]
//        [--threads 2] [--configs all|matrix|lowest|LIST] [--out results.jsonl]
//        [--backend cpu|vulkan|cuda|auto] [--devices textEncoder=cpu,vae=cpu]
// LIST: comma-separated weightType:flash:tiling:offload with 0/1, e.g. f16:0:0:0,q4_0:1:1:1.
//
// Each configuration (weight type × flashAttention × vaeTiling [× offload]) runs in its own
// process, so that the process's peak RSS belongs to it alone: load, one prompt encode (prompt
// and negative prompt), one UNet call on a batch of 2 (a guided step) and one VAE decode, with
// sd.memoryUsage({ resetPeak: true }) between the stages. Printed: host peak RSS per stage and
// overall, the backend's own accounting (ggml buffers: weights + compute) at its peak, and the
// seconds each stage took. Times are only meaningful on an idle machine. With --backend vulkan
// or cuda, "device" is that backend's own accounting of its buffers (a Vulkan build and
// GGML_VK_VISIBLE_DEVICES=0 for lavapipe; see the README's "Vulkan"). --devices places networks
// on other devices (LoadOptions.devices); the device peak is then given per device.
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { StableDiffusion, Tensor, type DeviceChoice, type MemoryUsage, type Network } from '../lib/index.js';
import { filled } from './inputs.js';

interface Config {
  weightType: 'f16' | 'q8_0' | 'q4_0';
  flashAttention: boolean;
  vaeTiling: boolean;
  offload: boolean;
}

interface StageResult {
  seconds: number;
  hostPeak: number | null;
  devicePeak: number;
  /** Per device name, when the networks are placed on more than one. */
  devicePeaks: Record<string, number>;
}

type Backend = 'cpu' | 'vulkan' | 'cuda' | 'auto';

interface Result {
  config: Config;
  device: string;
  size: number;
  stages: Record<'load' | 'encode' | 'sample' | 'decode', StageResult>;
  hostPeak: number | null;
  hostPeakResettable: boolean;
  devicePeak: number;
  devicePeaks: Record<string, number>;
}

type Placement = Partial<Record<Network, DeviceChoice>>;

/** `textEncoder=cpu,vae=cpu` → `{ textEncoder: 'cpu', vae: 'cpu' }`. */
function parsePlacement(text: string): Placement {
  const placement: Placement = {};
  for (const item of text.split(',').filter(Boolean)) {
    const [network, device] = item.split('=');
    placement[network as Network] = device!;
  }
  return placement;
}

const args = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1]! : fallback;
};


async function measureOne(
  model: string,
  size: number,
  threads: number,
  backend: Backend,
  devices: Placement,
  config: Config,
): Promise<Result> {
  let start = process.hrtime.bigint();
  const stage = (usage: MemoryUsage): StageResult => {
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    start = process.hrtime.bigint();
    const devicePeaks = Object.fromEntries(usage.devices.map((d) => [d.name, d.peak]));
    return { seconds, hostPeak: usage.host.peak, devicePeak: usage.device.peak, devicePeaks };
  };
  const sd = await StableDiffusion.load({ model, threads, backend, devices, ...config });
  const device = sd.device.name;
  const load = stage(sd.memoryUsage({ resetPeak: true }));
  const { cond, uncond } = await sd.encodePrompt('a photograph of an astronaut riding a horse', { negativePrompt: 'blurry' });
  const encode = stage(sd.memoryUsage({ resetPeak: true }));
  const h = size / 8;
  const context = new Tensor([2, ...cond.shape.slice(1)], Float32Array.from([...uncond.data, ...cond.data]));
  await sd.unet.predict(filled([2, 4, h, h], 1), 999, context);
  const sample = stage(sd.memoryUsage({ resetPeak: true }));
  await sd.vae.decode(filled([1, 4, h, h], 2));
  const last = sd.memoryUsage({ resetPeak: true });
  const decode = stage(last);
  await sd.dispose();
  const stages = { load, encode, sample, decode };
  const all = Object.values(stages);
  const hostPeaks = all.map((s) => s.hostPeak).filter((v): v is number => v !== null);
  return {
    config,
    device,
    size,
    stages,
    // Without a resettable peak every stage reports the peak since the process started.
    hostPeak: hostPeaks.length ? Math.max(...hostPeaks) : null,
    hostPeakResettable: last.host.peakReset,
    devicePeak: Math.max(...all.map((s) => s.devicePeak)),
    devicePeaks: Object.fromEntries(
      Object.keys(load.devicePeaks).map((name) => [name, Math.max(...all.map((s) => s.devicePeaks[name] ?? 0))]),
    ),
  };
}

const gb = (v: number | null): string => (v === null ? 'n/a' : (v / 1e9).toFixed(2));

async function main(): Promise<void> {
  const one = option('--one', '');
  const model = option('--model', process.env.SDNODE_BENCH_MODEL ?? '/tmp/sd15-random.safetensors');
  const size = Number(option('--size', '512'));
  const threads = Number(option('--threads', '2'));
  const backend = option('--backend', 'cpu') as Backend;
  const devices = option('--devices', '');
  if (one) {
    console.log(JSON.stringify(await measureOne(model, size, threads, backend, parsePlacement(devices), JSON.parse(one) as Config)));
    return;
  }
  if (!existsSync(model)) {
    console.error(`No benchmark model at ${model}: make one with tools/make_full_size_model.py or pass --model PATH.`);
    process.exit(1);
  }
  const types = option('--types', 'f16,q8_0,q4_0').split(',') as Config['weightType'][];
  const which = option('--configs', 'all');
  const out = option('--out', '');
  const configs: Config[] = [];
  if (which.includes(':')) {
    for (const code of which.split(',')) {
      const [weightType, ...flags] = code.split(':');
      const [flashAttention, vaeTiling, offload] = flags.map((f) => f === '1');
      configs.push({ weightType: weightType as Config['weightType'], flashAttention: flashAttention!, vaeTiling: vaeTiling!, offload: offload! });
    }
  } else if (which !== 'matrix') configs.push({ weightType: 'q4_0', flashAttention: true, vaeTiling: true, offload: true });
  if (which === 'all' || which === 'matrix') {
    for (const weightType of types) {
      for (const flashAttention of [false, true]) {
        for (const vaeTiling of [false, true]) configs.push({ weightType, flashAttention, vaeTiling, offload: false });
      }
    }
  }
  console.log(`model ${model}, ${size}², ${threads} threads, backend ${backend}${devices ? `, devices ${devices}` : ''}; GB = 1e9 bytes`);
  console.log('host = peak RSS of the process (VmHWM) per stage; device = ggml buffers (weights + compute) at their peak');
  console.log('| weights | flash | tiling | offload | host: load | encode | sample | decode | host peak | device peak | s: load / encode / UNet / decode |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const config of configs) {
    const text = execFileSync(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(import.meta.url), '--one', JSON.stringify(config), '--model', model, '--size', String(size), '--threads', String(threads), '--backend', backend, '--devices', devices],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const line = text.trim().split('\n').pop()!;
    if (out) appendFileSync(out, line + '\n');
    const r = JSON.parse(line) as Result;
    const s = r.stages;
    const yes = (v: boolean): string => (v ? 'on' : 'off');
    if (backend !== 'cpu') console.log(`(device ${r.device})`);
    const peaks = Object.entries(r.devicePeaks);
    const devicePeak = peaks.length > 1 ? peaks.map(([name, peak]) => `${name} ${gb(peak)}`).join(' / ') : gb(r.devicePeak);
    console.log(
      `| ${config.weightType} | ${yes(config.flashAttention)} | ${yes(config.vaeTiling)} | ${yes(config.offload)} | ` +
        `${gb(s.load.hostPeak)} | ${gb(s.encode.hostPeak)} | ${gb(s.sample.hostPeak)} | ${gb(s.decode.hostPeak)} | ` +
        `${gb(r.hostPeak)} | ${devicePeak} | ` +
        `${[s.load, s.encode, s.sample, s.decode].map((x) => x.seconds.toFixed(1)).join(' / ')} |`,
    );
  }
}

await main();
