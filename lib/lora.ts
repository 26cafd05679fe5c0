// LoRAs at the API edge: A1111's `<lora:NAME:W>` prompt tags, `loras` options checked, names
// looked up in the `loraDirs` given at load. The engine reads, maps and applies the files
// (native/core/include/sdcore/lora.h); this module only decides which files, at which strengths.
import { readdirSync, statSync } from 'node:fs';
import { basename, extname, join, relative, resolve, sep } from 'node:path';

import { ArgumentRangeError, ArgumentTypeError, StableDiffusionError } from './errors.js';
import type { LoraSpec } from './types.js';
import { describe, expectKnownKeys, expectObject, expectPath, expectString, optionNames } from './validate.js';

/** File extensions looked for in `loraDirs` (in this order when one name has several files). */
export const LORA_EXTENSIONS = ['.safetensors', '.ckpt', '.pt', '.bin'] as const;

/** A `<lora:NAME:W>` (or `<lora:NAME:TE:UNET>`, `<lyco:…>`) tag read from a prompt. */
export interface LoraTag {
  /** The name in the tag: a file name without extension in `loraDirs`. */
  name: string;
  /** The text-encoder strength: the tag's first number (default 1), or its `te=` value. */
  textEncoderWeight: number;
  /** The UNet strength: the tag's second number (default: the first), or its `unet=` value. */
  unetWeight: number;
  /** The tag as written. */
  text: string;
}

/** What `parseLoraTags` reads from a prompt. */
export interface ParsedLoraTags {
  /** The prompt without its tags (what gets tokenized). */
  prompt: string;
  /** The tags, in order. */
  loras: LoraTag[];
}

// A1111's extra-network syntax: <type:arguments>, arguments separated by ':'.
const TAG = /<(lora|lyco):([^>]+)>/g;

function tagWeight(text: string, tag: string): number {
  const trimmed = text.trim();
  // What Python's float() reads and JS's Number() does not (A1111 reads tags with float()).
  if (/^[+-]?(inf|infinity|nan)$/i.test(trimmed)) throw new ArgumentRangeError(`Expected a finite weight in ${tag} but received ${text}`);
  const value = Number(trimmed);
  if (trimmed === '' || Number.isNaN(value)) {
    throw new ArgumentTypeError(`Expected a number as the weight in ${tag} but received ${JSON.stringify(text)}`);
  }
  if (!Number.isFinite(value)) throw new ArgumentRangeError(`Expected a finite weight in ${tag} but received ${text}`);
  return value;
}

/**
 * Reads A1111's LoRA tags from a prompt: `'a cat <lora:ink:0.7>'` → `{ prompt: 'a cat ', loras:
 * [{ name: 'ink', textEncoderWeight: 0.7, unetWeight: 0.7 }] }`. `<lora:NAME>` has weight 1,
 * `<lora:NAME:TE:UNET>` separate strengths, and `te=` / `unet=` arguments name them (A1111's
 * named form); `<lyco:…>` is read the same way. The tags are removed from the returned prompt,
 * which is what gets tokenized. Throws TypeError for a weight that is not a number and
 * RangeError for one that is not finite.
 */
export function parseLoraTags(prompt: string): ParsedLoraTags {
  const text = expectString(prompt, 'prompt');
  const loras: LoraTag[] = [];
  const stripped = text.replace(TAG, (tag, _type: string, args: string) => {
    const positional: string[] = [];
    const named: Record<string, string> = {};
    for (const part of args.split(':')) {
      const eq = /^\s*(te|unet|dyn)\s*=(.*)$/.exec(part);
      if (eq) named[eq[1]!] = eq[2]!;
      else positional.push(part);
    }
    const name = (positional[0] ?? '').trim();
    if (name === '') throw new ArgumentRangeError(`Expected a LoRA name in ${tag}`);
    const te = named.te ?? positional[1];
    const textEncoderWeight = te === undefined ? 1 : tagWeight(te, tag);
    const unet = named.unet ?? positional[2];
    const unetWeight = unet === undefined ? textEncoderWeight : tagWeight(unet, tag);
    loras.push({ name, textEncoderWeight, unetWeight, text: tag });
    return '';
  });
  return { prompt: stripped, loras };
}

/** The prompt with its `<lora:…>` / `<lyco:…>` tags removed (what the tokenizer sees). */
export function stripLoraTags(prompt: string): string {
  return prompt.replace(TAG, '');
}

function weightOf(value: unknown, name: string): number {
  if (typeof value !== 'number') throw new ArgumentTypeError(`Expected ${name} to be a finite number but received ${describe(value)}`);
  if (!Number.isFinite(value)) throw new ArgumentRangeError(`Expected ${name} to be a finite number but received ${value}`);
  return value;
}

const LORA_SPEC_OPTIONS = optionNames<LoraSpec>({ path: true, name: true, weight: true, textEncoderWeight: true, unetWeight: true });

/** A LoRA list checked: each entry a `LoraSpec` with `path` or `name` and finite weights. */
export function checkLoraSpecs(value: unknown, name: string): LoraSpec[] {
  if (!Array.isArray(value)) throw new ArgumentTypeError(`Expected ${name} to be an array of LoRAs but received ${describe(value)}`);
  return value.map((entry, i) => {
    const at = `${name}[${i}]`;
    const o = expectObject(entry, at);
    expectKnownKeys(o, at, LORA_SPEC_OPTIONS);
    if ((o.path === undefined) === (o.name === undefined)) {
      throw new ArgumentTypeError(`Expected ${at} to have either a path or a name`);
    }
    const spec: LoraSpec = {};
    if (o.path !== undefined) spec.path = expectPath(o.path, `${at}.path`);
    if (o.name !== undefined) {
      spec.name = expectString(o.name, `${at}.name`);
      if (spec.name.trim() === '') throw new ArgumentRangeError(`Expected ${at}.name to be a LoRA name but received ""`);
    }
    for (const key of ['weight', 'textEncoderWeight', 'unetWeight'] as const) {
      if (o[key] !== undefined) spec[key] = weightOf(o[key], `${at}.${key}`);
    }
    return spec;
  });
}

/** The folders given as `loraDirs` or `embeddingDirs`, checked: an array of existing folders. */
export function checkDirs(value: unknown, name: string): string[] {
  if (!Array.isArray(value)) throw new ArgumentTypeError(`Expected ${name} to be an array of folders but received ${describe(value)}`);
  return value.map((entry, i) => {
    const dir = resolve(expectPath(entry, `${name}[${i}]`));
    let isDir = false;
    try {
      isDir = statSync(dir).isDirectory();
    } catch (error) {
      throw new StableDiffusionError('ERR_FILE_NOT_FOUND', `${name}[${i}] ${dir} does not exist`, { path: dir, cause: error });
    }
    if (!isDir) throw new StableDiffusionError('ERR_FILE_NOT_FOUND', `${name}[${i}] ${dir} is not a folder`, { path: dir });
    return dir;
  });
}

/**
 * Files of some extensions in folders, by name: the file name without extension, and the path
 * below its folder without extension ("styles/ink"), as A1111 names LoRAs and embeddings. The
 * folders are listed again when a name is not found (files may have been added since).
 */
export class NamedFiles {
  readonly #dirs: readonly string[];
  readonly #extensions: readonly string[];
  #byName: Map<string, string> | undefined;

  constructor(dirs: readonly string[], extensions: readonly string[]) {
    this.#dirs = dirs;
    this.#extensions = extensions;
  }

  /** The folders searched, in order. */
  get dirs(): readonly string[] {
    return this.#dirs;
  }

  /** The file for `name`, or undefined: an exact match first, then one that differs only in case. */
  find(name: string): string | undefined {
    let found = this.#lookup(name);
    if (found === undefined) {
      this.#byName = undefined;
      found = this.#lookup(name);
    }
    return found;
  }

  /** Every name and its file. */
  entries(): [string, string][] {
    this.#byName ??= this.#scan();
    return [...this.#byName.entries()].filter(([name]) => !name.includes('/'));
  }

  #lookup(name: string): string | undefined {
    this.#byName ??= this.#scan();
    const key = name.split(sep).join('/');
    const exact = this.#byName.get(key);
    if (exact !== undefined) return exact;
    const lower = key.toLowerCase();
    for (const [candidate, path] of this.#byName) if (candidate.toLowerCase() === lower) return path;
    return undefined;
  }

  #scan(): Map<string, string> {
    const byName = new Map<string, string>();
    const rank = (path: string) => this.#extensions.indexOf(extname(path).toLowerCase());
    const add = (key: string, path: string) => {
      const previous = byName.get(key);
      if (previous === undefined || rank(path) < rank(previous)) byName.set(key, path);
    };
    for (const dir of this.#dirs) {
      const seen = new Map<string, string>();  // names of this folder: the first folder wins over later ones
      const walk = (folder: string, depth: number) => {
        let names: string[];
        try {
          names = readdirSync(folder).sort();
        } catch {
          return;
        }
        for (const entry of names) {
          const path = join(folder, entry);
          let isDir = false;
          try {
            isDir = statSync(path).isDirectory();
          } catch {
            continue;
          }
          if (isDir) {
            if (depth < 8) walk(path, depth + 1);
            continue;
          }
          const ext = extname(entry).toLowerCase();
          if (!this.#extensions.includes(ext)) continue;
          const stem = basename(entry, extname(entry));
          const below = relative(dir, join(folder, stem)).split(sep).join('/');
          for (const key of new Set([stem, below])) {
            const previous = seen.get(key);
            if (previous === undefined || rank(path) < rank(previous)) seen.set(key, path);
          }
        }
      };
      walk(dir, 0);
      for (const [key, path] of seen) if (!byName.has(key)) add(key, path);
    }
    return byName;
  }
}
