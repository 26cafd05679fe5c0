// Model files as containers: what tensors a safetensors, GGUF or PyTorch checkpoint file holds,
// reading one of them as float32, and writing tensors to GGUF. Names are as stored in the file;
// no mapping to a model's layout happens here.
import { native } from './native.js';
import { Tensor, type TensorLike } from './tensor.js';
import { GGUF_WRITE_TYPES, type GgufWriteResult, type GgufWriteType, type ModelFileInfo } from './types.js';
import { describe, expectKnownKeys, expectObject, expectOneOf, expectPath, expectString, optionNames } from './validate.js';
import { ArgumentRangeError, ArgumentTypeError } from './errors.js';

/** One tensor for `writeGgufFile`. */
export interface GgufTensorInput {
  /** The name to store it under. */
  name: string;
  /** Its values. */
  tensor: TensorLike;
  /** Default: the `type` option of `writeGgufFile`. */
  type?: GgufWriteType;
}

/** Options of `writeGgufFile`. */
export interface GgufWriteOptions {
  /** Storage type for tensors that name none (default `f16`). */
  type?: GgufWriteType;
  /** Written as GGUF string key-values. */
  metadata?: Record<string, string>;
}

/** Lists the tensors and metadata of a model file, chosen by its contents (not its extension). */
export async function inspectModelFile(path: string): Promise<ModelFileInfo> {
  return native().inspectModelFile(expectPath(path, 'path'));
}

/** Reads one tensor as float32, converting f16, bf16, quantized and integer types. */
export async function readModelTensor(path: string, name: string): Promise<Tensor> {
  const file = expectPath(path, 'path');
  const tensorName = expectString(name, 'name');
  const result = await native().readModelTensor(file, tensorName);
  if (result.data.length === 0) {
    throw new ArgumentRangeError(`Tensor "${tensorName}" in ${file} has no elements (shape [${result.shape.join(', ')}])`);
  }
  return new Tensor(result.shape, result.data);
}

/** Writes tensors to a GGUF file, converting each to its storage type. */
export async function writeGgufFile(
  path: string,
  tensors: readonly GgufTensorInput[],
  options: GgufWriteOptions = {},
): Promise<GgufWriteResult> {
  const file = expectPath(path, 'path');
  if (!Array.isArray(tensors)) throw new ArgumentTypeError(`Expected tensors to be an array but received ${describe(tensors)}`);
  const opts = expectObject(options, 'options');
  expectKnownKeys(opts, 'options', optionNames<GgufWriteOptions>({ type: true, metadata: true }));
  const defaultType = opts.type === undefined ? 'f16' : expectOneOf(opts.type, 'options.type', GGUF_WRITE_TYPES);
  const metadata: Record<string, string> = {};
  if (opts.metadata !== undefined) {
    for (const [key, value] of Object.entries(expectObject(opts.metadata, 'options.metadata'))) {
      metadata[key] = expectString(value, `options.metadata.${key}`);
    }
  }
  const list = tensors.map((entry, i) => {
    const item = expectObject(entry, `tensors[${i}]`);
    return {
      name: expectString(item.name, `tensors[${i}].name`),
      type: item.type === undefined ? defaultType : expectOneOf(item.type, `tensors[${i}].type`, GGUF_WRITE_TYPES),
      tensor: Tensor.of(item.tensor as TensorLike),
    };
  });
  return native().writeGguf(file, list, metadata);
}
