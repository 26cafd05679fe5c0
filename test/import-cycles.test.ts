// lib/ has no import cycles: a module's dependencies can be read (and moved) without it. Type-only
// imports count (see helpers/import-graph.ts).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';

import { packageRoot } from '../lib/native.js';
import { findCycles, importGraph } from './helpers/import-graph.js';

test('lib/ has no import cycles (type-only imports included)', () => {
  const graph = importGraph(join(packageRoot, 'lib'));
  assert.ok(graph.size > 30 && graph.get('index.ts')!.length > 10, 'the graph was read');
  const cycles = findCycles(graph);
  assert.deepEqual(
    cycles.map((c) => `${c.modules.length} modules (${c.modules.join(', ')}), e.g. ${c.path.join(' → ')}`),
    [],
    'import cycles in lib/',
  );
});

test('the cycle check finds a cycle closed by a type-only import through a re-export and a folder', () => {
  const root = mkdtempSync(join(tmpdir(), 'sdnode-cycles-'));
  try {
    const files: Record<string, string> = {
      'a.ts': "import { b } from './b.js';\nexport interface A { b: typeof b }\n",
      'b.ts': "export { c as b } from './c/index.js';\nimport 'node:fs';\nimport 'sharp';\n",
      'c/index.ts': "import type { A } from '../a.js';\nexport const c = 1;\nexport type C = A;\n",
      'd.ts': "import { c } from './c/index.js';\nexport const d = () => import('./e.js').then(() => c);\n",
      'e.ts': "import { d } from './d.js';\nexport const e = d;\n",
      'f.ts': "export * from './f.js';\n",
      'leaf.ts': "import { b } from './b.js';\nexport const leaf = b;\n",
    };
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(dirname(join(root, name)), { recursive: true });
      writeFileSync(join(root, name), text);
    }
    const graph = importGraph(root);
    assert.deepEqual(graph.get('b.ts'), ['c/index.ts']);
    assert.deepEqual(findCycles(graph), [
      { modules: ['a.ts', 'b.ts', 'c/index.ts'], path: ['a.ts', 'b.ts', 'c/index.ts', 'a.ts'] },
      { modules: ['d.ts', 'e.ts'], path: ['d.ts', 'e.ts', 'd.ts'] },
      { modules: ['f.ts'], path: ['f.ts', 'f.ts'] },
    ]);
    // Without the type-only import, the first cycle is gone.
    writeFileSync(join(root, 'c/index.ts'), 'export const c = 1;\n');
    assert.deepEqual(findCycles(importGraph(root)).map((c) => c.modules[0]), ['d.ts', 'f.ts']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
