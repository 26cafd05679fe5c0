// A Redis URL as BullMQ's and ioredis's `url` option take it, checked at the edge.
import { expectString } from '../validate.js';
import { ArgumentRangeError } from '../errors.js';

/** `redis://[user:pass@]host[:port][/db]` or `rediss://…` (TLS); RangeError otherwise. */
export function checkRedisUrl(value: unknown, name: string): string {
  const text = expectString(value, name);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ArgumentRangeError(`Expected ${name} to be a Redis URL such as redis://127.0.0.1:6379 (received ${JSON.stringify(text)})`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new ArgumentRangeError(`Expected ${name} to start with redis:// or rediss:// (received ${JSON.stringify(text)})`);
  }
  if (url.hostname === '') throw new ArgumentRangeError(`Expected ${name} to name a host (received ${JSON.stringify(text)})`);
  return text;
}
