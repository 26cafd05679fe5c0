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
    throw new TypeError(`Expected integer ${name} between ${min} and ${max} but received ${describe(value)}`);
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`Expected integer ${name} between ${min} and ${max} but received ${value}`);
  }
  return value;
}

export function expectNumber(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new TypeError(`Expected number ${name} between ${min} and ${max} but received ${describe(value)}`);
  }
  if (value < min || value > max) {
    throw new RangeError(`Expected number ${name} between ${min} and ${max} but received ${value}`);
  }
  return value;
}

export function expectString(value: unknown, name: string): string {
  if (typeof value !== 'string') throw new TypeError(`Expected ${name} to be a string but received ${describe(value)}`);
  return value;
}

export function expectOneOf<T extends string>(value: unknown, name: string, allowed: readonly T[]): T {
  if (typeof value !== 'string') {
    throw new TypeError(`Expected ${name} to be one of ${allowed.join(', ')} but received ${describe(value)}`);
  }
  if (!(allowed as readonly string[]).includes(value)) {
    throw new RangeError(`Expected ${name} to be one of ${allowed.join(', ')} but received ${describe(value)}`);
  }
  return value as T;
}

export function expectBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw new TypeError(`Expected ${name} to be a boolean but received ${describe(value)}`);
  return value;
}

export function expectObject(value: unknown, name: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(`Expected ${name} to be an object but received ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

export function expectPath(value: unknown, name: string): string {
  const path = expectString(value, name);
  if (path.length === 0) throw new RangeError(`Expected ${name} to be a path but received ""`);
  if (path.includes('\0')) throw new TypeError(`Expected ${name} to be a path without NUL bytes but received ${describe(path)}`);
  return path;
}

export function expectSignal(value: unknown, name: string): AbortSignal {
  if (!(value instanceof AbortSignal)) throw new TypeError(`Expected ${name} to be an AbortSignal but received ${describe(value)}`);
  return value;
}
