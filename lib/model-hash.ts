// A model file's sha256, as A1111 shows it ("Model hash": the first 10 hex digits, its "AutoV2"
// hash), so that images made here identify their model the way A1111 images do. Hashing a 2–4 GB
// checkpoint takes seconds, so results are cached per file, keyed by absolute path, size and
// modification time: a file changed in place gets hashed again.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

import { StableDiffusionError } from './errors.js';
import type { GenerationParameters } from './types.js';
import { expectPath } from './validate.js';

/**
 * Where sdnode keeps caches: `SDNODE_CACHE_DIR`, else the platform's user cache folder
 * (`$XDG_CACHE_HOME/sdnode` or `~/.cache/sdnode`, `~/Library/Caches/sdnode`, `%LOCALAPPDATA%\sdnode\Cache`).
 */
export function cacheDir(): string {
  if (process.env.SDNODE_CACHE_DIR) return resolve(process.env.SDNODE_CACHE_DIR);
  if (process.platform === 'win32') return join(process.env.LOCALAPPDATA ?? join(homedir(), 'AppData', 'Local'), 'sdnode', 'Cache');
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Caches', 'sdnode');
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'sdnode');
}

interface CacheEntry {
  size: number;
  mtimeMs: number;
  sha256: string;
}

function cacheFile(): string {
  return join(cacheDir(), 'model-hashes.json');
}

async function readCache(): Promise<Record<string, CacheEntry>> {
  try {
    const parsed: unknown = JSON.parse(await readFile(cacheFile(), 'utf8'));
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, CacheEntry>) : {};
  } catch {
    return {}; // missing or damaged: start afresh
  }
}

async function writeCache(cache: Record<string, CacheEntry>): Promise<void> {
  const file = cacheFile();
  try {
    await mkdir(dirname(file), { recursive: true });
    const temp = `${file}.${process.pid}.tmp`;
    await writeFile(temp, JSON.stringify(cache, null, 1));
    await rename(temp, file); // readers never see half a file
  } catch {
    // A read-only home only costs hashing again next time.
  }
}

function sha256File(path: string, start = 0): Promise<string> {
  return new Promise((done, fail) => {
    const hash = createHash('sha256');
    createReadStream(path, { highWaterMark: 1 << 22, start })
      .on('data', (chunk) => hash.update(chunk))
      .on('error', (error) => fail(new StableDiffusionError('ERR_FILE_READ', `Cannot read ${path}: ${error.message}`, { path, cause: error })))
      .on('end', () => done(hash.digest('hex')));
  });
}

/**
 * The full sha256 of a model file (hex), from the cache when the file's size and mtime are
 * unchanged. Undefined for a folder (a diffusers model has no single file to hash; A1111 shows none).
 */
export async function modelSha256(path: string): Promise<string | undefined> {
  return cachedSha256(path, false);
}

// The sha256 of a file (whole, or with `tensorsOnly` the bytes after a safetensors header), cached
// under the file's absolute path (with "#tensors" for the second kind).
async function cachedSha256(path: string, tensorsOnly: boolean): Promise<string | undefined> {
  const file = resolve(expectPath(path, 'path'));
  let s;
  try {
    s = await stat(file);
  } catch (error) {
    throw new StableDiffusionError('ERR_FILE_NOT_FOUND', `${path} does not exist`, { path, cause: error });
  }
  if (s.isDirectory()) return undefined;
  const key = tensorsOnly ? `${file}#tensors` : file;
  const cache = await readCache();
  const hit = cache[key];
  if (hit && hit.size === s.size && hit.mtimeMs === s.mtimeMs && /^[0-9a-f]{64}$/.test(hit.sha256)) return hit.sha256;
  const sha256 = await sha256File(file, tensorsOnly ? await safetensorsDataOffset(file) : 0);
  // Read again just before writing: another process may have added entries meanwhile.
  await writeCache({ ...(await readCache()), [key]: { size: s.size, mtimeMs: s.mtimeMs, sha256 } });
  return sha256;
}

/** The sha256 of a model file if the cache has it for the file as it is now (nothing is hashed). */
export async function cachedModelSha256(path: string): Promise<string | undefined> {
  const file = resolve(expectPath(path, 'path'));
  const s = await stat(file).catch(() => undefined);
  if (s === undefined || s.isDirectory()) return undefined;
  const hit = (await readCache())[file];
  return hit && hit.size === s.size && hit.mtimeMs === s.mtimeMs && /^[0-9a-f]{64}$/.test(hit.sha256) ? hit.sha256 : undefined;
}

// Where a safetensors file's tensor bytes start: after the 8-byte header length and the header.
async function safetensorsDataOffset(file: string): Promise<number> {
  const handle = await open(file, 'r');
  try {
    const head = Buffer.alloc(8);
    const { bytesRead } = await handle.read(head, 0, 8, 0);
    if (bytesRead < 8) return 0;
    const length = head.readBigUInt64LE(0);
    return length > BigInt(Number.MAX_SAFE_INTEGER) - 8n ? 0 : Number(length) + 8;
  } finally {
    await handle.close();
  }
}

/**
 * A1111's "Lora hashes" value for a LoRA file: the first 12 hex digits of the sha256 of a
 * .safetensors file's tensor bytes (after its header, as kohya-ss and A1111 compute it, so that
 * editing the metadata keeps the hash), or of the whole file for other formats. Cached like
 * `modelSha256`.
 */
export async function loraHash(path: string): Promise<string> {
  const tensorsOnly = /\.safetensors$/i.test(path);
  return ((await cachedSha256(path, tensorsOnly)) ?? '').slice(0, 12);
}

/** A1111's "TI hashes" value for a textual-inversion embedding: the first 12 hex digits of the file's sha256. */
export async function embeddingHash(path: string): Promise<string> {
  return ((await cachedSha256(path, false)) ?? '').slice(0, 12);
}

/** A1111's "Model hash": the first 10 hex digits of the file's sha256, or undefined for a folder. */
export async function modelHash(path: string): Promise<string | undefined> {
  return (await modelSha256(path))?.slice(0, 10);
}

/** The hashes `networkHashes` gives, by name (what `toInfotext` takes). */
export interface NetworkHashes {
  /** LoRA name → A1111's 12-digit hash ("Lora hashes"); absent without LoRAs. */
  loraHashes?: Record<string, string>;
  /** Embedding name → A1111's 12-digit hash ("TI hashes"); absent without embeddings. */
  embeddingHashes?: Record<string, string>;
}

/**
 * A1111's hashes of the LoRAs and embeddings a generation used (`result.parameters.loras` and
 * `.embeddings`), by name, for `toInfotext`'s "Lora hashes" and "TI hashes".
 */
export async function networkHashes(parameters: Pick<GenerationParameters, 'loras' | 'embeddings'>): Promise<NetworkHashes> {
  const result: NetworkHashes = {};
  if (parameters.loras !== undefined && parameters.loras.length > 0) {
    result.loraHashes = {};
    for (const lora of parameters.loras) result.loraHashes[lora.name] = await loraHash(lora.path);
  }
  if (parameters.embeddings !== undefined && parameters.embeddings.length > 0) {
    result.embeddingHashes = {};
    for (const e of parameters.embeddings) result.embeddingHashes[e.name] = await embeddingHash(e.path);
  }
  return result;
}
