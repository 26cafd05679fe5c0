// Writes models/demo-sd1-tiny.gguf, the model `sdnode generate --model demo` runs, from the
// diffusers folder that tools/train-demo/train.py exports (a tiny SD 1.x trained on procedural
// shapes and colours at 64x64): f16 weights (norms and biases f32), our metadata, and
// sdnode.image_size 64 so that the demo's default size is the size it was trained at.
//
//   node --import tsx tools/make-demo-model.ts --from /tmp/demo-train/diffusers [--out PATH]
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';

import { convertModel, inspectModelFile, readModelTensor, writeGgufFile, type GgufWriteType } from '../lib/index.js';
import { packageRoot } from '../lib/native.js';

const { values } = parseArgs({
  options: { from: { type: 'string' }, out: { type: 'string' } },
});
if (!values.from) {
  console.error('usage: node --import tsx tools/make-demo-model.ts --from DIFFUSERS_FOLDER [--out PATH]');
  process.exit(2);
}
const out = values.out ?? join(packageRoot, 'models', 'demo-sd1-tiny.gguf');
const temp = `${out}.tmp`;
mkdirSync(dirname(out), { recursive: true });
await convertModel(values.from, temp, { weightType: 'f16' });
const file = await inspectModelFile(temp);
const tensors = [];
for (const t of file.tensors) tensors.push({ name: t.name, type: t.type as GgufWriteType, tensor: await readModelTensor(temp, t.name) });
const metadata = Object.fromEntries(Object.entries(file.metadata).filter(([key]) => key.startsWith('sdnode.')));
metadata['sdnode.image_size'] = '64';
metadata['sdnode.converted_from'] = 'tools/train-demo/train.py (procedural shapes and colours)';
await writeGgufFile(out, tensors, { metadata });
rmSync(temp);
console.log(`wrote ${out}: ${tensors.length} tensors`);
