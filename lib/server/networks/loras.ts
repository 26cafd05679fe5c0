// The LoRA files of --lora-dir as GET /sdapi/v1/loras lists them (A1111's fields: name, alias,
// path, metadata), and the check of a request's `<lora:NAME:W>` tags before its job waits in the
// queue. Names are those the model resolves (lib/lora.ts NamedFiles): the file name without
// extension, the first folder winning.
import { stat } from 'node:fs/promises';

import { LORA_EXTENSIONS, NamedFiles, parseLoraTags } from '../../lora.js';
import { inspectModelFile } from '../../model-file.js';
import { invalidField, type RequestValidationError } from '../http/errors.js';

/** One LoRA, as GET /sdapi/v1/loras lists it. */
export interface LoraListing {
  /** What `<lora:NAME:W>` names: the file name without extension. */
  name: string;
  /** The name its trainer gave it (kohya's `ss_output_name`), else `name`. */
  alias: string;
  /** The file. */
  path: string;
  /** The file's safetensors metadata; values holding JSON objects or arrays are parsed. Empty for other formats. */
  metadata: Record<string, unknown>;
}

/** Metadata values that hold JSON (kohya's tag frequencies, PEFT's adapter config) parsed, as A1111 shows them. */
function parseMetadata(raw: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    out[key] = value;
    const t = value.trimStart();
    if (t.startsWith('{') || t.startsWith('[')) {
      try {
        out[key] = JSON.parse(value);
      } catch {
        // Text that only looks like JSON stays text.
      }
    }
  }
  return out;
}

export class LoraCatalog {
  readonly #dirs: readonly string[];
  #files: NamedFiles;
  #list: LoraListing[] = [];
  // path → [size, mtime, metadata], so that a refresh reads only changed files' headers
  readonly #metadata = new Map<string, { size: number; mtimeMs: number; metadata: Record<string, unknown> }>();

  constructor(dirs: readonly string[]) {
    this.#dirs = dirs;
    this.#files = new NamedFiles(dirs, LORA_EXTENSIONS);
  }

  /** The folders searched. */
  get dirs(): readonly string[] {
    return this.#dirs;
  }

  /** Lists the folders again (POST /sdapi/v1/refresh-loras). */
  async refresh(): Promise<void> {
    this.#files = new NamedFiles(this.#dirs, LORA_EXTENSIONS);
    const entries = this.#files.entries().sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const list: LoraListing[] = [];
    for (const [name, path] of entries) {
      const metadata = await this.#readMetadata(path);
      const alias = typeof metadata.ss_output_name === 'string' && metadata.ss_output_name.trim() !== '' ? metadata.ss_output_name : name;
      list.push({ name, alias, path, metadata });
    }
    this.#list = list;
  }

  /** The LoRAs found at the last refresh, by name. */
  list(): readonly LoraListing[] {
    return this.#list;
  }

  /**
   * Checks the `<lora:…>` tags of a prompt before the job is queued: a weight that is not a
   * finite number, or a name no file of --lora-dir has, is a 422 on `prompt` (the type is our
   * error code for an unknown name, ERR_LORA_NOT_FOUND). The folders are listed again for a
   * name not seen before (a file added since).
   */
  checkPrompt(prompt: string): void {
    let tags;
    try {
      tags = parseLoraTags(prompt).loras;
    } catch (error) {
      throw invalidField(['prompt'], `prompt: ${(error as Error).message}`, error instanceof RangeError ? 'value_error' : 'type');
    }
    for (const tag of tags) {
      if (this.#files.find(tag.name) !== undefined) continue;
      const where = this.#dirs.length > 0 ? `in ${this.#dirs.join(', ')} (GET /sdapi/v1/loras lists them)` : 'because the server has no --lora-dir';
      throw invalidField(['prompt'], `No LoRA named "${tag.name}" (${tag.text}) was found ${where}`, 'ERR_LORA_NOT_FOUND');
    }
  }

  async #readMetadata(path: string): Promise<Record<string, unknown>> {
    if (!/\.safetensors$/i.test(path)) return {};
    const s = await stat(path).catch(() => undefined);
    if (s === undefined) return {};
    const known = this.#metadata.get(path);
    if (known && known.size === s.size && known.mtimeMs === s.mtimeMs) return known.metadata;
    let metadata: Record<string, unknown> = {};
    try {
      metadata = parseMetadata((await inspectModelFile(path)).metadata);
    } catch {
      // A file that cannot be read is still listed; using it gives its error then.
    }
    this.#metadata.set(path, { size: s.size, mtimeMs: s.mtimeMs, metadata });
    return metadata;
  }
}

/** Codes of the errors a request's LoRAs can cause: the client's choice of file, so 422. */
const LORA_CODES = new Set(['ERR_LORA_NOT_FOUND', 'ERR_LORA_FORMAT', 'ERR_LORA_INCOMPATIBLE']);

/** A LoRA error as A1111's 422 on `prompt`, its type our error code; undefined for other errors. */
export function loraError(error: unknown): RequestValidationError | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (!(error instanceof Error) || typeof code !== 'string' || !LORA_CODES.has(code)) return undefined;
  return invalidField(['prompt'], error.message, code);
}
