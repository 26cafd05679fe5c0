// Starting `sdnode serve` for the server suites (in this process through createServer, or as a
// child process of the compiled CLI) and talking to it over loopback.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import sharp from 'sharp';

import { createServer, type SdServer, type ServerOptions } from '../../lib/index.js';
import { packageRoot } from '../../lib/native.js';

/** The tiny random-weight model shipped in the package (64×64 images). */
export const DEMO = join(packageRoot, 'models', 'demo-sd1-tiny.gguf');

/** A server in this process on a free loopback port; `close()` in `after`. */
export async function startServer(options: Partial<ServerOptions> = {}): Promise<{ url: string; server: SdServer; close(): Promise<void> }> {
  const server = await createServer({ model: DEMO, ...options, load: { backend: 'cpu', threads: 1, ...options.load } });
  const url = await server.listen({ port: 0 });
  return { url, server, close: () => server.close() };
}

/** A JSON answer: status, parsed body (or the text when it is not JSON) and headers. */
export interface Answer<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/** GET (no body) or POST (a body: JSON-encoded unless a string) to `url + path`. */
export async function call<T = any>(url: string, path: string, body?: unknown, init: RequestInit = {}): Promise<Answer<T>> {
  const response = await fetch(url + path, {
    method: body === undefined ? 'GET' : 'POST',
    ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    ...init,
    headers: { ...(body !== undefined && typeof body !== 'string' && { 'content-type': 'application/json' }), ...(init.headers as Record<string, string>) },
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, body: parsed as T, headers: response.headers };
}

/** A solid-colour PNG, base64. */
export async function pngBase64(width: number, height: number, rgb: [number, number, number]): Promise<string> {
  const png = await sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toBuffer();
  return png.toString('base64');
}

/** A mask PNG (base64): white (repaint) inside the rectangle, black elsewhere. */
export async function maskBase64(width: number, height: number, rect: { x: number; y: number; w: number; h: number }): Promise<string> {
  const data = Buffer.alloc(width * height);
  for (let y = rect.y; y < rect.y + rect.h; y++) for (let x = rect.x; x < rect.x + rect.w; x++) data[y * width + x] = 255;
  return (await sharp(data, { raw: { width, height, channels: 1 } }).png().toBuffer()).toString('base64');
}

/** RGB bytes of a base64 image. */
export async function pixels(base64: string): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(Buffer.from(base64, 'base64')).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

/** Polls `check` every `ms` until it returns a value other than undefined, for at most `timeoutMs`. */
export async function waitFor<T>(check: () => Promise<T | undefined>, timeoutMs = 30_000, ms = 20): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`waitFor: nothing after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, ms));
  }
}

/** Waits until the server runs a job that has done at least one step. */
export function waitForStep(url: string, init: RequestInit = {}): Promise<void> {
  return waitFor(async () => {
    const { body } = await call(url, '/sdapi/v1/progress?skip_current_image=true', undefined, init);
    return body.state.sampling_step >= 1 ? true : undefined;
  }).then(() => undefined);
}

/** Waits until no job runs and none waits. */
export function waitForIdle(url: string, init: RequestInit = {}): Promise<void> {
  return waitFor(async () => {
    const { body } = await call(url, '/sdapi/v1/progress?skip_current_image=true', undefined, init);
    return body.state.job_count === 0 && body.queue.waiting === 0 ? true : undefined;
  }).then(() => undefined);
}

/** A scratch folder removed by `dispose()`; SDNODE_CACHE_DIR points into it so model hashes stay out of the user's cache. */
export function scratch(label: string): { dir: string; dispose(): void } {
  const dir = mkdtempSync(join(tmpdir(), `sdnode-${label}-`));
  process.env.SDNODE_CACHE_DIR = join(dir, 'cache');
  return { dir, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The compiled CLI, as npm links it (npm test compiles lib/ first); SDNODE_TEST_CLI points at another build. */
export const CLI = process.env.SDNODE_TEST_CLI ?? join(packageRoot, 'dist', 'cli', 'sdnode.js');

/** `sdnode serve` in a child process on a free port; resolves once it prints its URL. */
export async function spawnServe(args: string[], env: Record<string, string> = {}): Promise<{ url: string; child: ChildProcess; stop(): Promise<number | null> }> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match) resolve(match[1]!);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('exit', (code) => reject(new Error(`sdnode serve exited with ${code}: ${output}`)));
  });
  return {
    url,
    child,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill('SIGTERM');
      }),
  };
}
