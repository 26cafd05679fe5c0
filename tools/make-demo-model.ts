// Writes models/demo-sd1-tiny.gguf, the model `sdnode generate --model demo` runs, in f16 (norms
// and biases f32) with our metadata and sdnode.image_size 64, so that the first command after
// install finishes in seconds.
//
//   node --import tsx tools/make-demo-model.ts
//       the tiny random-weight SD1 test fixture (what is shipped today): it shows the pipeline
//       working, not a picture
//   node --import tsx tools/make-demo-model.ts --from /tmp/demo-train/diffusers [--out PATH]
//       the diffusers folder that tools/train-demo/train.py exports (SD 1.x at tiny scale, trained
//       on procedural shapes at 64x64); marked in sdnode.converted_from, which
//       test/demo-model.test.ts reads to know that it checks a trained model
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';

import { convertModel, inspectModelFile, readModelTensor, writeGgufFile, type GgufWriteType } from '../lib/index.js';
import { packageRoot } from '../lib/native.js';

const { values } = parseArgs({ options: { from: { type: 'string' }, out: { type: 'string' } } });
const source = values.from ?? join(packageRoot, 'test', 'fixtures', 'tiny', 'sd1-ldm.safetensors');
const out = values.out ?? join(packageRoot, 'models', 'demo-sd1-tiny.gguf');
const temp = `${out}.tmp`;
mkdirSync(dirname(out), { recursive: true });
await convertModel(source, temp, { weightType: 'f16' });
const file = await inspectModelFile(temp);
const tensors = [];
for (const t of file.tensors) tensors.push({ name: t.name, type: t.type as GgufWriteType, tensor: await readModelTensor(temp, t.name) });
const metadata = Object.fromEntries(Object.entries(file.metadata).filter(([key]) => key.startsWith('sdnode.')));
metadata['sdnode.image_size'] = '64';
if (values.from) metadata['sdnode.converted_from'] = 'tools/train-demo/train.py (procedural shapes and colours)';
await writeGgufFile(out, tensors, { metadata });
rmSync(temp);
console.log(`wrote ${out}: ${tensors.length} tensors`);
