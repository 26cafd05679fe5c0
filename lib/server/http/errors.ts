// Errors as AUTOMATIC1111's API answers them (FastAPI underneath): 422 with a `detail` list of
// { loc, msg, type } for invalid requests, and { error, detail, body, errors } for the others
// (modelfusion's A1111 client parses that shape), with the status codes A1111 uses.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';

import { describe } from '../../validate.js';

/** One entry of a 422's `detail` list, as FastAPI writes it. */
export interface ValidationIssue {
  /** Where: `['body', 'width']`, `['body', 'init_images', 0]`. */
  loc: (string | number)[];
  /** What is wrong, naming the field. */
  msg: string;
  /** A short machine-readable kind ('type', 'maximum', 'image', …). */
  type: string;
}

/** An error with an HTTP status and A1111's body. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** A request that is well-formed JSON but asks for something invalid: 422 naming the field. */
export class RequestValidationError extends HttpError {
  constructor(readonly issues: ValidationIssue[]) {
    super(422, issues.map((i) => i.msg).join('; '));
    this.name = 'RequestValidationError';
  }
}

/** 422 for one field of the body. */
export function invalidField(path: (string | number)[], msg: string, type = 'value_error'): RequestValidationError {
  return new RequestValidationError([{ loc: ['body', ...path], msg, type }]);
}

/** A field name for messages: `init_images[0]`, `override_settings.CLIP_stop_at_last_layers`. */
export function fieldName(path: (string | number)[]): string {
  let name = '';
  for (const part of path) name += typeof part === 'number' ? `[${part}]` : name === '' ? part : `.${part}`;
  return name || 'the body';
}

interface SchemaIssue {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}

function pathOf(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((part) => (/^\d+$/.test(part) ? Number(part) : part));
}

function valueAt(root: unknown, path: (string | number)[]): unknown {
  let value = root;
  for (const part of path) value = (value as Record<string | number, unknown> | undefined)?.[part];
  return value;
}

function expectation(issue: SchemaIssue): string {
  const p = issue.params;
  switch (issue.keyword) {
    case 'type': {
      const types = (Array.isArray(p.type) ? p.type : [p.type]).filter((t) => t !== 'null') as string[];
      const words = types.map((t) => (t === 'integer' ? 'an integer' : t === 'array' || t === 'object' ? `an ${t}` : `a ${t}`));
      return `must be ${words.join(' or ')}`;
    }
    case 'minimum': return `must be at least ${p.limit}`;
    case 'maximum': return `must be at most ${p.limit}`;
    case 'exclusiveMinimum': return `must be more than ${p.limit}`;
    case 'maxLength': return `must be at most ${p.limit} characters long`;
    case 'maxItems': return `must have at most ${p.limit} items`;
    case 'minItems': return `must have at least ${p.limit} items`;
    case 'enum': return `must be one of ${(p.allowedValues as unknown[] | undefined)?.map((v) => JSON.stringify(v)).join(', ')}`;
    default: return issue.message ?? `is invalid (${issue.keyword})`;
  }
}

/** Schema validation errors (Fastify's `error.validation`) as 422 issues naming each field once. */
export function schemaIssues(errors: SchemaIssue[], body: unknown, part: string): ValidationIssue[] {
  const seen = new Set<string>();
  const issues: ValidationIssue[] = [];
  for (const error of errors) {
    if (seen.has(error.instancePath)) continue;
    seen.add(error.instancePath);
    const path = pathOf(error.instancePath);
    const value = valueAt(body, path);
    issues.push({ loc: [part, ...path], msg: `${fieldName(path)} ${expectation(error)} (received ${describe(value)})`, type: error.keyword });
  }
  return issues;
}

/** A1111's body for errors other than validation. */
export function errorBody(error: string, detail: string): { error: string; detail: string; body: string; errors: string } {
  return { error, detail, body: '', errors: detail };
}

/**
 * The plugin's error handler: schema and body errors → 422 (FastAPI's shape), a body over the
 * limit → 413, HttpError → its status, anything else → 500 with the message (and a log line).
 */
export function handleError(error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): void {
  const e = error as FastifyError & { validation?: SchemaIssue[]; validationContext?: string };
  if (e.validation) {
    void reply.code(422).send({ detail: schemaIssues(e.validation, request.body, e.validationContext ?? 'body') });
    return;
  }
  if (error instanceof RequestValidationError) {
    void reply.code(422).send({ detail: error.issues });
    return;
  }
  if (error instanceof HttpError) {
    void reply.code(error.statusCode).headers(error.headers).send(errorBody(httpErrorName(error.statusCode), error.message));
    return;
  }
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      void drain(request).then(() =>
        reply.code(413).header('connection', 'close').send(errorBody('PayloadTooLarge', `The request body is larger than the server's limit of ${request.routeOptions.bodyLimit} bytes`)),
      );
      return;
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      void reply.code(415).send(errorBody('UnsupportedMediaType', e.message));
      return;
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    void reply.code(e.statusCode).send(errorBody(httpErrorName(e.statusCode), e.message));
    return;
  }
  request.log.error({ err: error }, 'request failed');
  void reply.code(500).send(errorBody(error.name || 'Error', error.message));
}

// A client still sending when the 413 goes out and the connection closes sees a broken pipe, not
// the answer (fetch does): the rest of the body is read and dropped first, up to this much.
const MAX_DRAIN = 128 * 1024 * 1024;

function drain(request: FastifyRequest): Promise<void> {
  const raw = request.raw;
  if (raw.complete || raw.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let read = 0;
    raw.on('data', (chunk: Buffer) => {
      read += chunk.length;
      if (read > MAX_DRAIN) {
        raw.destroy();
        resolve();
      }
    });
    raw.once('end', () => resolve());
    raw.once('close', () => resolve());
    raw.once('error', () => resolve());
    raw.resume();
  });
}

function httpErrorName(status: number): string {
  const names: Record<number, string> = {
    400: 'BadRequest', 401: 'Unauthorized', 404: 'NotFound', 409: 'Conflict', 413: 'PayloadTooLarge', 422: 'RequestValidationError',
    500: 'InternalServerError', 503: 'ServiceUnavailable',
  };
  return names[status] ?? 'HTTPException';
}
