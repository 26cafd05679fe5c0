// The checkpoints the server can switch between: the files and diffusers folders under
// --models-dir (searched a few levels deep, as A1111 searches its Stable-diffusion folder) and
// the --model given. Names follow A1111: `name` is the path under the folder, the `title` adds
// " [hash]" once the file's sha256 is known: from the hash cache, or when the model is loaded
// (listing hashes nothing).
import { readdir, stat } from 'node:fs/promises';
import { basename, extname, join, relative, resolve, sep } from 'node:path';

import { cachedModelSha256 } from '../../model-hash.js';

/** One checkpoint, as GET /sdapi/v1/sd-models lists it. */
export interface Checkpoint {
  /** `name [hash]`, or `name` before the hash is known: what `sd_model_checkpoint` holds. */
  title: string;
  /** The name without extension, folders joined with `_`. */
  modelName: string;
  /** The path under --models-dir (the file name for --model outside it). */
  name: string;
  /** Absolute path. */
  filename: string;
  /** First 10 hex digits of the sha256 (A1111's short hash), once known. */
  hash: string | undefined;
  /** The file's sha256, once known. */
  sha256: string | undefined;
}

const EXTENSIONS = new Set(['.safetensors', '.ckpt', '.pt', '.gguf']);
const MAX_DEPTH = 4;
const MAX_ENTRIES = 10_000;

function describeCheckpoint(filename: string, name: string, sha256: string | undefined): Checkpoint {
  const hash = sha256?.slice(0, 10);
  const stem = extname(name) && EXTENSIONS.has(extname(name).toLowerCase()) ? name.slice(0, -extname(name).length) : name;
  return { title: hash ? `${name} [${hash}]` : name, modelName: stem.split(sep).join('_'), name, filename, hash, sha256 };
}

async function isDiffusersFolder(path: string): Promise<boolean> {
  try {
    return (await stat(join(path, 'model_index.json'))).isFile();
  } catch {
    return false;
  }
}

/** Model files and diffusers folders under `root`. */
async function scan(root: string): Promise<string[]> {
  const found: string[] = [];
  let seen = 0;
  const walk = async (dir: string, depth: number): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      if (++seen > MAX_ENTRIES || entry.name.startsWith('.')) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (await isDiffusersFolder(path)) found.push(path);
        else if (depth < MAX_DEPTH) await walk(path, depth + 1);
      } else if ((entry.isFile() || entry.isSymbolicLink()) && EXTENSIONS.has(extname(entry.name).toLowerCase())) {
        found.push(path);
      }
    }
  };
  await walk(root, 0);
  return found;
}

/** The checkpoints of --models-dir and --model, with what is known of their hashes. */
export class CheckpointCatalog {
  readonly #modelsDir: string | undefined;
  readonly #extra: string[];
  #checkpoints: Checkpoint[] = [];
  readonly #hashes = new Map<string, string>();

  constructor(modelsDir: string | undefined, extra: string[]) {
    this.#modelsDir = modelsDir === undefined ? undefined : resolve(modelsDir);
    this.#extra = extra.map((p) => resolve(p));
  }

  /** Reads --models-dir again (POST /sdapi/v1/refresh-checkpoints). */
  async refresh(): Promise<void> {
    const files = this.#modelsDir === undefined ? [] : await scan(this.#modelsDir);
    for (const extra of this.#extra) if (!files.includes(extra)) files.push(extra);
    // Hashes already computed (here or by sdnode generate) show in the titles at once.
    for (const file of files) {
      if (this.#hashes.has(file)) continue;
      const sha256 = await cachedModelSha256(file);
      if (sha256 !== undefined) this.#hashes.set(file, sha256);
    }
    this.#checkpoints = files.map((file) => describeCheckpoint(file, this.#nameOf(file), this.#hashes.get(file)));
  }

  /** Every checkpoint, --models-dir's first. */
  list(): readonly Checkpoint[] {
    return this.#checkpoints;
  }

  /** The checkpoint of a file, listed or not (the --model given may be anywhere). */
  forFile(filename: string): Checkpoint {
    const file = resolve(filename);
    return this.#checkpoints.find((c) => c.filename === file) ?? describeCheckpoint(file, this.#nameOf(file), this.#hashes.get(file));
  }

  /** Records a file's sha256 (its title gains the short hash). */
  setHash(filename: string, sha256: string): void {
    const file = resolve(filename);
    this.#hashes.set(file, sha256);
    this.#checkpoints = this.#checkpoints.map((c) => (c.filename === file ? describeCheckpoint(file, c.name, sha256) : c));
  }

  /**
   * A checkpoint by any name A1111 accepts for it: title, name, name without " [hash]", model
   * name, file name, short hash or sha256.
   */
  find(query: string): Checkpoint | undefined {
    const q = query.trim();
    const bare = q.replace(/\s*\[[0-9a-f]{8,64}\]$/i, '');
    return (
      this.#checkpoints.find((c) => c.title === q) ??
      this.#checkpoints.find((c) => c.name === bare || c.modelName === bare || basename(c.filename) === bare) ??
      this.#checkpoints.find((c) => (c.hash !== undefined && c.hash === q.toLowerCase()) || (c.sha256 !== undefined && c.sha256 === q.toLowerCase()))
    );
  }

  #nameOf(file: string): string {
    if (this.#modelsDir !== undefined) {
      const rel = relative(this.#modelsDir, file);
      if (rel !== '' && !rel.startsWith('..') && !rel.startsWith(sep)) return rel;
    }
    return basename(file);
  }
}
