#!/usr/bin/env node
// sdnode: the command-line front end. Each subcommand parses its own options; errors print one
// line (a stack trace only with --verbose) and exit non-zero.
import { open } from 'node:fs/promises';

import { inspectModel } from '../model.js';
import { parseParameters } from '../png-parameters.js';
import { convertModel } from '../stable-diffusion.js';
import { listDevices, systemInfo } from '../system.js';
import { PREDICTION_TYPES, WEIGHT_TYPES, type PredictionType, type WeightType } from '../types.js';
import { DEPTH_HELP, depthCommand } from './depth.js';
import { generate, GENERATE_HELP, readImageParameters } from './generate.js';
import { CancelledError } from './interrupt.js';
import { serve, SERVE_HELP } from './serve.js';
import { UPSCALE_HELP, upscaleCommand } from './upscale.js';
import { oneOf, parse, UsageError } from './usage.js';
import { worker, WORKER_HELP } from './worker.js';

const HELP = `Usage: sdnode <command> [options]

Commands:
  generate --model <m> --prompt <text> [-o out.png]
                        Text to image, image to image, inpainting, depth to image, grids
                        (sdnode generate --help); --model demo runs the tiny bundled model
  serve --model <m> [--port 7860]
                        An AUTOMATIC1111-compatible HTTP API with a job queue and a web page
                        (sdnode serve --help)
  worker --model <m> --redis <url>
                        A generation worker behind a shared queue (BullMQ on Redis), for
                        \`serve --redis\` front ends (sdnode worker --help)
  upscale <image> --upscaler <file> [-o out.png] [--scale N]
                        Upscale an image with Real-ESRGAN, tile by tile
                        (sdnode upscale --help)
  depth <image> --model <m> [-o depth.png]
                        Estimate depth (SD 2 depth's DPT) as a 16-bit PNG (sdnode depth --help)
  info <model|image>    What a model is (family, variant, prediction type, size, layout,
                        shapes), or the generation parameters an image carries
  convert <model> -o <out.gguf> [--weight-type f16]
                        Convert any readable model to GGUF (${WEIGHT_TYPES.join(', ')})
  system                Package and ggml versions, the binary and variant in use (CPU,
                        Vulkan, CUDA) and why a GPU variant is not
  devices               Devices ggml can use, with their memory

Options:
  --json      Machine-readable output
  --verbose   Stack traces on errors
  --help      Help for a command (sdnode <command> --help)
  --version   Print the package version`;

const COMMAND_HELP: Record<string, string> = {
  generate: GENERATE_HELP,
  serve: SERVE_HELP,
  worker: WORKER_HELP,
  upscale: UPSCALE_HELP,
  depth: DEPTH_HELP,
  info: `Usage: sdnode info <model|image.png> [--prediction-type epsilon|v_prediction] [--json]

Prints what detection finds in a .safetensors/.ckpt/.gguf file or a diffusers folder, or the
A1111 generation parameters of a PNG, JPEG or WebP (--json: parsed into fields).`,
  convert: `Usage: sdnode convert <model> -o <out.gguf> [--weight-type TYPE] [--vae FILE]
                      [--prediction-type epsilon|v_prediction] [--json]

Writes a GGUF in canonical names with the detected configuration as metadata.
--weight-type: ${WEIGHT_TYPES.join(', ')} (default f16). Norms and biases stay f32; quantized
types apply to linear weights, convolutions and embeddings become f16.`,
  system: 'Usage: sdnode system [--json]',
  devices: 'Usage: sdnode devices [--json]',
};

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

async function info(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, { 'prediction-type': { type: 'string' } });
  if (positionals.length !== 1) throw new UsageError('info takes one model path or image (see sdnode info --help)');
  if (await isImageFile(positionals[0]!)) {
    imageInfo(positionals[0]!, await readImageParameters(positionals[0]!), values.json ?? false);
    return;
  }
  const predictionType = oneOf(values['prediction-type'], 'prediction-type', PREDICTION_TYPES);
  const { info: details, tensors } = await inspectModel(positionals[0]!, predictionType ? { predictionType } : {});
  if (values.json) {
    console.log(JSON.stringify({ ...details, tensorCount: tensors.length }, null, 2));
    return;
  }
  const u = details.unet;
  const t = details.textEncoder;
  console.log(`${details.path}`);
  console.log(`  ${details.family} ${details.variant}, ${details.predictionType} (${details.predictionTypeSource}), ${details.imageSize}×${details.imageSize}`);
  console.log(`  ${details.layout} layout, ${details.format}, ${tensors.length} tensors`);
  console.log(`  UNet: ${u.inChannels} input channels, blocks ${u.blockChannels.join('/')}, heads ${u.heads.join('/')}, context ${u.contextDim}`);
  console.log(`  text encoder: ${t.layersUsed} of ${t.layers} layers, ${t.hidden} wide, ${t.activation}, pad ${JSON.stringify(t.padToken)}`);
  console.log(`  VAE: blocks ${details.vae.blockChannels.join('/')}, scaling factor ${details.vae.scalingFactor}`);
}

const IMAGE_MAGIC = [
  [0x89, 0x50, 0x4e, 0x47], // PNG
  [0xff, 0xd8, 0xff], // JPEG
  [0x52, 0x49, 0x46, 0x46], // RIFF (WebP)
];

/** Images are told from models by their first bytes (a folder or a missing path is not an image). */
async function isImageFile(path: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, 'r');
    const head = Buffer.alloc(4);
    await handle.read(head, 0, 4, 0);
    return IMAGE_MAGIC.some((magic) => magic.every((b, i) => head[i] === b));
  } catch {
    return false;
  } finally {
    await handle?.close();
  }
}

function imageInfo(path: string, text: string | undefined, json: boolean): void {
  if (json) {
    console.log(JSON.stringify(text === undefined ? { path, parameters: null } : { path, parameters: text, ...parseParameters(text) }, (_, value) => (typeof value === 'bigint' ? String(value) : value), 2));
  } else if (text === undefined) {
    console.log(`${path}: no generation parameters`);
  } else {
    console.log(text);
  }
}

async function convert(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, {
    output: { type: 'string', short: 'o' },
    'weight-type': { type: 'string' },
    'prediction-type': { type: 'string' },
    vae: { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError('convert takes one model path (see sdnode convert --help)');
  if (values.output === undefined) throw new UsageError('convert needs -o <out.gguf>');
  const weightType: WeightType = oneOf(values['weight-type'], 'weight-type', WEIGHT_TYPES) ?? 'f16';
  const predictionType: PredictionType | undefined = oneOf(values['prediction-type'], 'prediction-type', PREDICTION_TYPES);
  const started = Date.now();
  if (!values.json && process.stderr.isTTY) process.stderr.write(`converting ${positionals[0]} to ${weightType}…\n`);
  const result = await convertModel(positionals[0]!, values.output, {
    weightType,
    ...(predictionType && { predictionType }),
    ...(values.vae !== undefined && { vae: values.vae }),
  });
  const seconds = (Date.now() - started) / 1000;
  if (values.json) {
    console.log(JSON.stringify({ output: values.output, weightType, tensors: result.tensors, bytes: result.bytes, seconds }, null, 2));
  } else {
    console.log(`wrote ${values.output}: ${result.info.family} ${result.info.variant}, ${weightType}, ${result.tensors} tensors, ${(result.bytes / 1e6).toFixed(1)} MB in ${seconds.toFixed(1)} s`);
  }
}

function system(args: string[]): void {
  const { values, positionals } = parse(args, {});
  if (positionals.length > 0) throw new UsageError('system takes no arguments');
  const i = systemInfo();
  if (values.json) {
    console.log(JSON.stringify(i, null, 2));
    return;
  }
  console.log(`stable-diffusion-node ${i.version}`);
  console.log(`ggml ${i.ggml.version} (${i.ggml.commit})`);
  console.log(`binary: ${i.binary.source} (${i.binary.path})`);
  console.log(`variant: ${i.variant}`);
  console.log(`CPU variant: ${i.cpuVariant ?? 'built in'} (${i.cpuFeatures.join(' ')})`);
  for (const gpu of i.gpu) {
    const what = gpu.status === 'loaded' || gpu.status === 'built-in' ? `${gpu.status}, ${gpu.devices?.join(', ') || gpu.modulePath}` : `${gpu.status}: ${gpu.reason}`;
    console.log(`${gpu.backend}: ${what}`);
  }
  console.log(`backends: ${i.backends.join(', ')}`);
  console.log(`default threads: ${i.defaultThreads}`);
}

function devices(args: string[]): void {
  const { values, positionals } = parse(args, {});
  if (positionals.length > 0) throw new UsageError('devices takes no arguments');
  const list = listDevices();
  if (values.json) {
    console.log(JSON.stringify(list, null, 2));
    return;
  }
  for (const d of list) console.log(`${d.name}  ${d.type}  ${d.description}  ${gib(d.memoryFree)} free of ${gib(d.memoryTotal)}`);
}

const COMMANDS: Record<string, (args: string[]) => void | Promise<void>> = {
  generate, serve, worker, upscale: upscaleCommand, depth: depthCommand, info, convert, system, devices,
};

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h') {
    console.log(HELP);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version') {
    console.log(systemInfo().version);
    return 0;
  }
  const run = COMMANDS[command];
  if (run === undefined) throw new UsageError(`unknown command "${command}" (see sdnode --help)`);
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(COMMAND_HELP[command]);
    return 0;
  }
  await run(rest);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const verbose = process.argv.includes('--verbose');
    const message = error instanceof Error ? error.message : String(error);
    console.error(`sdnode: ${verbose && error instanceof Error && !(error instanceof UsageError) ? error.stack : message}`);
    process.exitCode = error instanceof UsageError ? 2 : error instanceof CancelledError ? error.exitCode : 1;
  },
);
