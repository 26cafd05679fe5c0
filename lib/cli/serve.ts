// `sdnode serve`: the A1111-compatible HTTP server (lib/server/) from the command line. Prints
// its URL, serves until Ctrl-C or SIGTERM, then cancels the jobs and frees the model.
import { existsSync } from 'node:fs';

import { createServer } from '../server/index.js';
import type { ServerOptions } from '../server/options.js';
import { BACKENDS, WEIGHT_TYPES } from '../types.js';
import { DEMO_MODEL } from './generate.js';
import { oneOf, optionalInteger, parse, safetyCheckerFlag, UsageError } from './usage.js';

export const SERVE_HELP = `Usage: sdnode serve --model <file|folder|demo> [options]

An AUTOMATIC1111-compatible HTTP API (/sdapi/v1/txt2img, img2img, progress, interrupt, options,
…) with a job queue and a web page at /. Point Open WebUI, SillyTavern or any A1111 client at it.

  -m, --model PATH         the model to load at start; "demo" is the tiny bundled model
      --host HOST          default 127.0.0.1 (this machine only); 0.0.0.0 for every interface
      --port N             default 7860 (A1111's)
      --models-dir DIR     checkpoints to switch between (sd_model_checkpoint)
      --lora-dir DIR       LoRA files for <lora:NAME:W> in prompts (/sdapi/v1/loras lists them)
      --embedding-dir DIR  textual-inversion embeddings, triggered by file name (/sdapi/v1/embeddings)
      --upscaler FILE      a Real-ESRGAN file for the hires fix's hr_upscaler, named by its file
                           name without extension (repeatable; /sdapi/v1/upscalers lists them)
      --api-auth USER:PASS HTTP Basic auth on every route and the page (several: a:b,c:d)
      --queue-size N       jobs that may wait behind the running one (default 32; then 503)
      --cors-origin ORIGIN allow browser calls from ORIGIN (repeatable; "*" for any)
      --body-limit MB      largest request body (default 32)
      --no-page            serve the API only
      --redis URL          a shared queue: jobs go to BullMQ on this Redis and run on
                           \`sdnode worker\`s (redis://host:6379); this process loads no model
      --queue NAME         the BullMQ queue with --redis (default sdnode)
  Model: --backend ${BACKENDS.join('|')}, --threads N, --weight-type ${WEIGHT_TYPES.join('|')}
      --tiny-vae PATH      TAESD (file or folder): /progress's current_image at full size
      --safety-checker on|off|PATH  diffusers' NSFW checker (default: on for a diffusers folder
                           with safety_checker/); flagged images are sent black and listed in
                           info's nsfw_content_detected
      --log                log every request (JSON lines on stdout)`;

/** The command line → createServer's options and where to listen. */
export function parseServe(args: string[]): { options: ServerOptions; host: string; port: number } {
  const { values: v, positionals } = parse(args, {
    model: { type: 'string', short: 'm' },
    host: { type: 'string' },
    port: { type: 'string' },
    'models-dir': { type: 'string' },
    'lora-dir': { type: 'string' },
    'embedding-dir': { type: 'string' },
    upscaler: { type: 'string', multiple: true },
    'api-auth': { type: 'string' },
    'queue-size': { type: 'string' },
    'cors-origin': { type: 'string', multiple: true },
    'body-limit': { type: 'string' },
    'no-page': { type: 'boolean' },
    redis: { type: 'string' },
    queue: { type: 'string' },
    backend: { type: 'string' },
    threads: { type: 'string' },
    'weight-type': { type: 'string' },
    'tiny-vae': { type: 'string' },
    'safety-checker': { type: 'string' },
    log: { type: 'boolean' },
  });
  if (positionals.length > 0) throw new UsageError(`serve takes no positional arguments (got "${positionals[0]}")`);
  if (v.model === undefined) throw new UsageError('serve needs --model <file|folder|demo>');
  const model = v.model === 'demo' ? DEMO_MODEL : v.model;
  if (!existsSync(model)) throw new UsageError(`--model ${model} does not exist`);
  for (const flag of ['models-dir', 'lora-dir', 'embedding-dir', 'tiny-vae'] as const) {
    if (v[flag] !== undefined && !existsSync(v[flag])) throw new UsageError(`--${flag} ${v[flag]} does not exist`);
  }
  for (const file of v.upscaler ?? []) if (!existsSync(file)) throw new UsageError(`--upscaler ${file} does not exist`);
  if (v['api-auth'] !== undefined && !/^[^:,]+:[^,]+(,[^:,]+:[^,]+)*$/.test(v['api-auth'])) {
    throw new UsageError('--api-auth must be USER:PASSWORD (several separated by commas)');
  }
  if (v.queue !== undefined && v.redis === undefined) throw new UsageError('--queue needs --redis');
  const threads = optionalInteger(v.threads, 'threads', 1, 1024);
  const bodyLimitMb = optionalInteger(v['body-limit'], 'body-limit', 1, 2047);
  const queueSize = optionalInteger(v['queue-size'], 'queue-size', 0, 100_000);
  const backend = oneOf(v.backend, 'backend', BACKENDS);
  const weightType = oneOf(v['weight-type'], 'weight-type', WEIGHT_TYPES);
  const options: ServerOptions = {
    model,
    ...(v['models-dir'] !== undefined && { modelsDir: v['models-dir'] }),
    ...(v['lora-dir'] !== undefined && { loraDir: v['lora-dir'] }),
    ...(v['embedding-dir'] !== undefined && { embeddingDir: v['embedding-dir'] }),
    ...(v.upscaler !== undefined && { upscalers: v.upscaler }),
    ...(v['api-auth'] !== undefined && { apiAuth: v['api-auth'] }),
    ...(queueSize !== undefined && { queueSize }),
    ...(v['cors-origin'] !== undefined && { corsOrigin: v['cors-origin'] }),
    ...(bodyLimitMb !== undefined && { bodyLimit: bodyLimitMb * 1024 * 1024 }),
    ...(v['no-page'] && { page: false }),
    ...(v.log && { logger: true }),
    ...(v.redis !== undefined && { redis: { url: v.redis, ...(v.queue !== undefined && { queue: v.queue }) } }),
    load: {
      ...(backend && { backend }), ...(threads !== undefined && { threads }), ...(weightType && { weightType }),
      ...(v['tiny-vae'] !== undefined && { tinyVae: v['tiny-vae'] }),
      ...(v['safety-checker'] !== undefined && { safetyChecker: safetyCheckerFlag(v['safety-checker']) }),
    },
  };
  return { options, host: v.host ?? '127.0.0.1', port: optionalInteger(v.port, 'port', 0, 65535) ?? 7860 };
}

/** A Redis URL without its password, for messages. */
export function redisLabel(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

/** Resolves on the first SIGINT or SIGTERM. */
export function untilSignal(): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

/** Runs `sdnode serve` until SIGINT or SIGTERM. */
export async function serve(args: string[]): Promise<void> {
  const { options, host, port } = parseServe(args);
  const server = await createServer(options);
  const url = await server.listen({ host, port });
  const redis = typeof options.redis === 'object' ? options.redis : undefined;
  const behind = redis ? `queue ${redis.queue ?? 'sdnode'} on ${redisLabel(redis.url)}` : `model ${options.model}`;
  console.log(`sdnode serve: listening on ${url} (${behind})`);
  await untilSignal();
  await server.close();
}
