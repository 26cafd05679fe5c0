import { ArgumentRangeError, ArgumentTypeError } from './errors.js';
// Argument checks at the API edge. Messages say what was expected and what was received.

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (typeof value === 'undefined') return 'undefined';
  if (typeof value === 'function') return 'a function';
  const name = (value as object).constructor?.name;
  return name && name !== 'Object' ? `a ${name}` : 'an object';
}

export function expectInteger(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new ArgumentTypeError(`Expected integer ${name} between ${min} and ${max} but received ${describe(value)}`);
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ArgumentRangeError(`Expected integer ${name} between ${min} and ${max} but received ${value}`);
  }
  return value;
}

export function expectNumber(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new ArgumentTypeError(`Expected number ${name} between ${min} and ${max} but received ${describe(value)}`);
  }
  if (value < min || value > max) {
    throw new ArgumentRangeError(`Expected number ${name} between ${min} and ${max} but received ${value}`);
  }
  return value;
}

export function expectString(value: unknown, name: string): string {
  if (typeof value !== 'string') throw new ArgumentTypeError(`Expected ${name} to be a string but received ${describe(value)}`);
  return value;
}

export function expectOneOf<T extends string>(value: unknown, name: string, allowed: readonly T[]): T {
  if (typeof value !== 'string') {
    throw new ArgumentTypeError(`Expected ${name} to be one of ${allowed.join(', ')} but received ${describe(value)}`);
  }
  if (!(allowed as readonly string[]).includes(value)) {
    throw new ArgumentRangeError(`Expected ${name} to be one of ${allowed.join(', ')} but received ${describe(value)}`);
  }
  return value as T;
}

export function expectBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw new ArgumentTypeError(`Expected ${name} to be a boolean but received ${describe(value)}`);
  return value;
}

export function expectObject(value: unknown, name: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ArgumentTypeError(`Expected ${name} to be an object but received ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

export function expectPath(value: unknown, name: string): string {
  const path = expectString(value, name);
  if (path.length === 0) throw new ArgumentRangeError(`Expected ${name} to be a path but received ""`);
  if (path.includes('\0')) throw new ArgumentTypeError(`Expected ${name} to be a path without NUL bytes but received ${describe(path)}`);
  return path;
}

/** An array of paths (each checked as expectPath). */
export function expectPaths(value: unknown, name: string): string[] {
  if (!Array.isArray(value)) throw new ArgumentTypeError(`Expected ${name} to be an array of paths but received ${describe(value)}`);
  return value.map((item, i) => expectPath(item, `${name}[${i}]`));
}

export function expectSignal(value: unknown, name: string): AbortSignal {
  if (!(value instanceof AbortSignal)) throw new ArgumentTypeError(`Expected ${name} to be an AbortSignal but received ${describe(value)}`);
  return value;
}

/**
 * Rejects keys of `options` (named `name` in messages) that are not in `known`, naming the
 * nearest known one when it is probably a misspelling: a misspelt option silently ignored runs
 * with its default, which is worse than an error. Keys whose value is undefined are let through.
 */
export function expectKnownKeys(options: Record<string, unknown>, name: string, known: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (options[key] === undefined || known.includes(key)) continue;
    const near = nearestName(key, known);
    const where = name === 'options' ? '' : ` in ${name}`;
    throw new ArgumentTypeError(`Unknown option '${key}'${where}${near === undefined ? '' : ` (did you mean '${near}'?)`}`, {
      code: 'ERR_INVALID_ARG_VALUE',
    });
  }
}

// The known name closest to `key`: equal once case, '_' and '-' are ignored (guidance_scale →
// guidanceScale), else within an edit distance of a third of its length.
function nearestName(key: string, known: readonly string[]): string | undefined {
  const fold = (s: string) => s.toLowerCase().replace(/[_-]/g, '');
  const folded = fold(key);
  const same = known.find((k) => fold(k) === folded);
  if (same !== undefined) return same;
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(folded.length / 3)) + 1;
  for (const k of known) {
    const d = editDistance(folded, fold(k));
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * The option names of an options interface `T`, for `expectKnownKeys`. Written as an object with
 * every key of `T` set to true, so the compiler rejects a list that misses one or adds another.
 */
export function optionNames<T>(keys: { [K in keyof Required<T>]: true }): readonly string[] {
  return Object.freeze(Object.keys(keys));
}
