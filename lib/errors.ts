/** Error codes this package sets on `error.code`. */
export type ErrorCode =
  | 'ERR_NATIVE_MISSING'
  | 'ERR_NATIVE_LOAD'
  | 'ERR_NOT_IMPLEMENTED'
  | 'ERR_BACKEND_UNAVAILABLE'
  | 'ERR_BACKEND_INIT'
  | 'ERR_MODEL_FORMAT'
  | 'ERR_MODEL_INCOMPLETE'
  | 'ERR_FILE_NOT_FOUND'
  | 'ERR_FILE_READ'
  | 'ERR_FILE_CHANGED'
  | 'ERR_FILE_WRITE'
  | 'ERR_UNSAFE_PICKLE'
  | 'ERR_LORA_FORMAT'
  | 'ERR_LORA_INCOMPATIBLE'
  | 'ERR_LORA_NOT_FOUND'
  | 'ERR_EMBEDDING_FORMAT'
  | 'ERR_EMBEDDING_INCOMPATIBLE'
  | 'ERR_TENSOR_NOT_FOUND'
  | 'ERR_OUT_OF_MEMORY'
  | 'ERR_COMPUTE'
  | 'ERR_DISPOSED'
  | 'ERR_TINY_VAE_NO_ENCODER'
  | 'ERR_TINY_VAE_NO_DECODER'
  | 'ERR_UPSCALER_FORMAT'
  | 'ERR_SAFETY_CHECKER_FORMAT'
  | 'ERR_DEPTH_ESTIMATOR_FORMAT'
  | 'ERR_NO_DEPTH_ESTIMATOR'
  | 'ERR_INTERNAL'
  | 'ERR_INVALID_JOB'
  | 'ERR_MODEL_NOT_SERVED'
  | 'ABORT_ERR';

/** An Error with a machine-readable `code` and, where a file is involved, its `path`. */
export class StableDiffusionError extends Error {
  /** What went wrong, for programs (see `ErrorCode`). */
  readonly code: ErrorCode;
  /** The file or folder concerned, where there is one. */
  readonly path?: string;

  constructor(code: ErrorCode, message: string, options: { path?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StableDiffusionError';
    this.code = code;
    if (options.path !== undefined) this.path = options.path;
  }
}

/** A generation stopped by its `signal` or by `onStep` returning false: `name` 'AbortError', `code` 'ABORT_ERR'. */
export class AbortError extends StableDiffusionError {
  constructor(message = 'The operation was aborted', options: { cause?: unknown } = {}) {
    super('ABORT_ERR', message, options);
    this.name = 'AbortError';
  }
}

/**
 * A wrong argument type, shaped like Node's own: a TypeError with `code` 'ERR_INVALID_ARG_TYPE'
 * ('ERR_INVALID_ARG_VALUE' for an unknown option name).
 */
export class ArgumentTypeError extends TypeError {
  /** `ERR_INVALID_ARG_TYPE` for a wrong type, `ERR_INVALID_ARG_VALUE` for an unknown option name. */
  readonly code: 'ERR_INVALID_ARG_TYPE' | 'ERR_INVALID_ARG_VALUE';
  constructor(message: string, options: { code?: 'ERR_INVALID_ARG_TYPE' | 'ERR_INVALID_ARG_VALUE'; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code ?? 'ERR_INVALID_ARG_TYPE';
  }
}

/** A value out of its range, shaped like Node's own: a RangeError with `code` 'ERR_OUT_OF_RANGE'. */
export class ArgumentRangeError extends RangeError {
  /** Always `ERR_OUT_OF_RANGE`. */
  readonly code = 'ERR_OUT_OF_RANGE';
}
