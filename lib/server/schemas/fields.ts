// Field builders for the request schemas. A1111's request models make every field Optional, so
// each field here may also be null (meaning: the default). Types are strict (a string is not a
// number), booleans also accept 0 and 1 as A1111's clients send them (pydantic takes both), and
// unknown fields are left alone: A1111 ignores them.
import { Type, type TSchema, type TUnsafe } from 'typebox';

type Nullable<T> = ReturnType<typeof Type.Optional<TUnsafe<T | null>>>;

function nullable<T>(schema: Record<string, unknown> & { type: string | string[] }): Nullable<T> {
  const types = Array.isArray(schema.type) ? schema.type : [schema.type];
  return Type.Optional(Type.Unsafe<T | null>({ ...schema, type: [...types, 'null'] }));
}

/** An integer in [min, max]. */
export function int(minimum: number, maximum: number): Nullable<number> {
  return nullable<number>({ type: 'integer', minimum, maximum });
}

/** A finite number in [min, max]. */
export function num(minimum: number, maximum: number): Nullable<number> {
  return nullable<number>({ type: 'number', minimum, maximum });
}

/** A string of at most `maxLength` characters. */
export function str(maxLength: number): Nullable<string> {
  return nullable<string>({ type: 'string', maxLength });
}

/** A boolean, or 0 / 1. */
export function flag(): Nullable<boolean | number> {
  return nullable<boolean | number>({ type: ['boolean', 'integer'], minimum: 0, maximum: 1 });
}

/** A list of strings each at most `maxLength` long. */
export function strings(maxItems: number, maxLength: number): Nullable<string[]> {
  return nullable<string[]>({ type: 'array', maxItems, items: { type: 'string', maxLength } });
}

/** Any JSON object (its content checked, where it matters, by the handler). */
export function object(): Nullable<Record<string, unknown>> {
  return nullable<Record<string, unknown>>({ type: 'object' });
}

/** Any JSON array. */
export function array(maxItems: number): Nullable<unknown[]> {
  return nullable<unknown[]>({ type: 'array', maxItems });
}

/** An object schema whose unknown properties are allowed (and ignored). */
export function body<P extends Record<string, TSchema>>(properties: P): ReturnType<typeof Type.Object<P>> {
  return Type.Object(properties, { additionalProperties: true });
}

/** A boolean field's value: true, false, or the default when missing. */
export function truthy(value: boolean | number | null | undefined, fallback = false): boolean {
  return value === null || value === undefined ? fallback : value === true || value === 1;
}
