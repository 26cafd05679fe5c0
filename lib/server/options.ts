// createServer's options, checked at the edge like every public option of this package.
import type { LoadOptions } from '../stable-diffusion.js';
import { checkQueueName } from '../queue/names.js';
import { checkRedisUrl } from '../queue/redis-url.js';
import { expectBoolean, expectInteger, expectKnownKeys, expectObject, expectPath, expectPaths, expectString, optionNames } from '../validate.js';
import { ArgumentRangeError } from '../errors.js';

/** Options of `createServer` and of the Fastify plugin `sdnodeServer`. */
export interface ServerOptions {
  /** The model loaded at start: a .safetensors/.ckpt/.gguf file or a diffusers folder. */
  model: string;
  /** A folder of checkpoints to switch between (`sd_model_checkpoint`); searched a few levels deep. */
  modelsDir?: string;
  /**
   * A1111's `--lora-dir`: the LoRA (LyCORIS) files that `<lora:NAME:W>` tags in a request's
   * prompt name, listed by GET /sdapi/v1/loras. Every model the server loads gets it as its first
   * `loraDirs` folder (before any in `load.loraDirs`).
   */
  loraDir?: string;
  /**
   * A1111's `--embeddings-dir`: textual-inversion embeddings, triggered by their file names in a
   * prompt, listed by GET /sdapi/v1/embeddings. Every model loaded gets it as its first `embeddingDirs` folder.
   */
  embeddingDir?: string;
  /**
   * Real-ESRGAN files (.pth or .safetensors) for the hires fix, loaded at start: `hr_upscaler`
   * names them by file name without extension, GET /sdapi/v1/upscalers lists them.
   */
  upscalers?: string[];
  /**
   * A1111's `--api-auth`: `user:password`, several separated by commas. Every route, the web
   * page and its API calls included, then needs HTTP Basic authentication (401 without it).
   */
  apiAuth?: string;
  /** At most this many jobs wait behind the running one (default 32); one more gets 503 with Retry-After. */
  queueSize?: number;
  /** Origins allowed to call the API from a browser (CORS); none by default. `'*'` allows any. */
  corsOrigin?: string | string[];
  /** The largest request body in bytes (default 32 MiB); a larger one gets 413. */
  bodyLimit?: number;
  /** How models are loaded (backend, threads, weightType, …), for the start model and every switch. */
  load?: Omit<LoadOptions, 'model'>;
  /** Serve the web page at `/` (default true). */
  page?: boolean;
  /** Fastify's request log on stderr (default false). */
  logger?: boolean;
  /**
   * A shared job queue instead of the in-process one: txt2img and img2img go to a BullMQ queue on
   * this Redis (`redis://host:6379`, or `{ url, queue, prefix }`) and run on `sdnode worker`s
   * (`createWorker`); this server then loads no model. Default queue name `sdnode`, prefix `bull`.
   */
  redis?: string | {
    /** `redis://host:port` (`rediss://` for TLS). */
    url: string;
    /** The BullMQ queue name (default `sdnode`). */
    queue?: string;
    /** BullMQ's key prefix (default `bull`). */
    prefix?: string;
  };
}

/** Where a shared queue is. */
export interface RedisTarget {
  url: string;
  queue: string;
  prefix: string;
}

/** Checked options with defaults filled in. */
export interface CheckedServerOptions {
  model: string;
  modelsDir: string | undefined;
  loraDir: string | undefined;
  embeddingDir: string | undefined;
  upscalers: string[];
  credentials: Map<string, string> | undefined;
  queueSize: number;
  corsOrigin: string[] | undefined;
  bodyLimit: number;
  load: Omit<LoadOptions, 'model'>;
  page: boolean;
  logger: boolean;
  redis: RedisTarget | undefined;
}

const SERVER_OPTIONS = optionNames<ServerOptions>({
  model: true, modelsDir: true, loraDir: true, embeddingDir: true, upscalers: true, apiAuth: true, queueSize: true, corsOrigin: true,
  bodyLimit: true, load: true, page: true, logger: true, redis: true,
});
const REDIS_OPTIONS = ['url', 'queue', 'prefix'] as const;

function checkRedis(value: unknown): RedisTarget | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return { url: checkRedisUrl(value, 'options.redis'), queue: 'sdnode', prefix: 'bull' };
  const r = expectObject(value, 'options.redis');
  expectKnownKeys(r, 'options.redis', REDIS_OPTIONS);
  return {
    url: checkRedisUrl(r.url, 'options.redis.url'),
    queue: r.queue === undefined ? 'sdnode' : checkQueueName(r.queue, 'options.redis.queue'),
    prefix: r.prefix === undefined ? 'bull' : checkQueueName(r.prefix, 'options.redis.prefix'),
  };
}

/** `user:pass,user2:pass2` → user → password. */
export function parseCredentials(value: string): Map<string, string> {
  const credentials = new Map<string, string>();
  for (const pair of value.split(',')) {
    const colon = pair.indexOf(':');
    if (colon <= 0 || colon === pair.length - 1) {
      throw new ArgumentRangeError('Expected apiAuth as "user:password" (several separated by commas) with a non-empty user and password');
    }
    credentials.set(pair.slice(0, colon), pair.slice(colon + 1));
  }
  return credentials;
}

export function checkServerOptions(options: unknown): CheckedServerOptions {
  const o = expectObject(options, 'options');
  expectKnownKeys(o, 'options', SERVER_OPTIONS);
  const optionalPath = (key: string) => (o[key] === undefined ? undefined : expectPath(o[key], `options.${key}`));
  let corsOrigin: string[] | undefined;
  if (o.corsOrigin !== undefined) {
    const list = Array.isArray(o.corsOrigin) ? o.corsOrigin : [o.corsOrigin];
    corsOrigin = list.map((origin, i) => expectString(origin, `options.corsOrigin[${i}]`));
  }
  return {
    model: expectPath(o.model, 'options.model'),
    modelsDir: optionalPath('modelsDir'),
    loraDir: optionalPath('loraDir'),
    embeddingDir: optionalPath('embeddingDir'),
    upscalers: o.upscalers === undefined ? [] : expectPaths(o.upscalers, 'options.upscalers'),
    credentials: o.apiAuth === undefined ? undefined : parseCredentials(expectString(o.apiAuth, 'options.apiAuth')),
    queueSize: o.queueSize === undefined ? 32 : expectInteger(o.queueSize, 'options.queueSize', 0, 100_000),
    corsOrigin,
    bodyLimit: o.bodyLimit === undefined ? 32 * 1024 * 1024 : expectInteger(o.bodyLimit, 'options.bodyLimit', 1024, 2 ** 31 - 1),
    load: o.load === undefined ? {} : (expectObject(o.load, 'options.load') as Omit<LoadOptions, 'model'>),
    page: o.page === undefined ? true : expectBoolean(o.page, 'options.page'),
    logger: o.logger === undefined ? false : expectBoolean(o.logger, 'options.logger'),
    redis: checkRedis(o.redis),
  };
}
