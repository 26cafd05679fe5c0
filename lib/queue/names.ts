// Queue names and key prefixes, checked at the edge.
import { expectString } from '../validate.js';
import { ArgumentRangeError } from '../errors.js';

/** A queue name or key prefix BullMQ accepts and that reads well in keys. */
export function checkQueueName(value: unknown, name: string): string {
  const text = expectString(value, name);
  if (!/^[A-Za-z0-9_.-]{1,100}$/.test(text)) throw new ArgumentRangeError(`Expected ${name} to be 1–100 letters, digits, "_", "." or "-" (received ${JSON.stringify(text)})`);
  return text;
}
