// Writes models/demo-sd1-tiny.gguf, the model `sdnode generate --model demo` runs: the tiny
// random-weight SD1 test fixture in f16, with a 64-pixel default image size so that the first
// command after install finishes in seconds. Its images show the pipeline working, not a picture.
//
//   node --import tsx tools/make-demo-model.ts
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { convertModel, inspectModelFile, readModelTensor, writeGgufFile, type GgufWriteType } from '../lib/index.js';
import { packageRoot } from '../lib/native.js';

const source = join(packageRoot, 'test', 'fixtures', 'tiny', 'sd1-ldm.safetensors');
const out = join(packageRoot, 'models', 'demo-sd1-tiny.gguf');
const temp = `${out}.tmp`;
mkdirSync(join(packageRoot, 'models'), { recursive: true });
await convertModel(source, temp, { weightType: 'f16' });
const file = await inspectModelFile(temp);
const tensors = [];
for (const t of file.tensors) tensors.push({ name: t.name, type: t.type as GgufWriteType, tensor: await readModelTensor(temp, t.name) });
const metadata = Object.fromEntries(Object.entries(file.metadata).filter(([key]) => key.startsWith('sdnode.')));
metadata['sdnode.image_size'] = '64';
await writeGgufFile(out, tensors, { metadata });
rmSync(temp);
console.log(`wrote ${out}: ${tensors.length} tensors`);
