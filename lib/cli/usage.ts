// What every sdnode command shares: option parsing that turns parseArgs' complaints into one-line
// usage errors (exit 2), and warnings on stderr.
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake in the command line: printed as one line, exit status 2. */
export class UsageError extends Error {}

export const COMMON = {
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

type Options = NonNullable<ParseArgsConfig['options']>;
type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: typeof COMMON & O; allowPositionals: true; strict: true }>>;

export function parse<O extends Options>(args: string[], options: O): Parsed<O> {
  try {
    return parseArgs({ args, options: { ...COMMON, ...options }, allowPositionals: true, strict: true });
  } catch (error) {
    // parseArgs' messages name the flag; keep them on one line, without its advice on '--'.
    const message = error instanceof Error ? error.message.split('\n')[0]! : String(error);
    throw new UsageError(message.replace(/\. To specify a positional argument.*$/, ''));
  }
}

/** A flag's non-negative integer in [min, max], or undefined when the flag was not given. */
export function optionalInteger(text: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) throw new UsageError(`--${flag} must be an integer from ${min} to ${max} (got "${text}")`);
  return n;
}

export function oneOf<T extends string>(value: string | undefined, flag: string, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`--${flag} must be one of ${allowed.join(', ')} (got "${value}")`);
  }
  return value as T;
}

export function warn(message: string): void {
  process.stderr.write(`sdnode: warning: ${message}\n`);
}

/** `--safety-checker on|off|PATH`: the load option's true, false or path. */
export function safetyCheckerFlag(text: string): boolean | string {
  if (text === 'on') return true;
  if (text === 'off') return false;
  if (text.trim() === '') throw new UsageError('--safety-checker takes on, off or the path of a safety checker (folder or file)');
  return text;
}
