// A model file's sha256, as A1111 shows it ("Model hash": the first 10 hex digits, its "AutoV2"
// hash), so that images made here identify their model the way A1111 images do. Hashing a 2–4 GB
// checkpoint takes seconds, so results are cached per file, keyed by absolute path, size and
// modification time: a file changed in place gets hashed again.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

import { StableDiffusionError } from './errors.js';
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

function sha256File(path: string): Promise<string> {
  return new Promise((done, fail) => {
    const hash = createHash('sha256');
    createReadStream(path, { highWaterMark: 1 << 22 })
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
  const file = resolve(expectPath(path, 'path'));
  let s;
  try {
    s = await stat(file);
  } catch (error) {
    throw new StableDiffusionError('ERR_FILE_NOT_FOUND', `${path} does not exist`, { path, cause: error });
  }
  if (s.isDirectory()) return undefined;
  const cache = await readCache();
  const hit = cache[file];
  if (hit && hit.size === s.size && hit.mtimeMs === s.mtimeMs && /^[0-9a-f]{64}$/.test(hit.sha256)) return hit.sha256;
  const sha256 = await sha256File(file);
  // Read again just before writing: another process may have added entries meanwhile.
  await writeCache({ ...(await readCache()), [file]: { size: s.size, mtimeMs: s.mtimeMs, sha256 } });
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

/** A1111's "Model hash": the first 10 hex digits of the file's sha256, or undefined for a folder. */
export async function modelHash(path: string): Promise<string | undefined> {
  return (await modelSha256(path))?.slice(0, 10);
}
