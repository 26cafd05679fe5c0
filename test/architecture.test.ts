// The shape of native/: scripts/check-includes.mjs on the real tree (no include cycles, the addon
// sees only the core's public header, no ggml in either), and on made-up trees that break each
// rule, so that a check which could never fail would show here.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';

import { packageRoot } from '../lib/native.js';

const script = join(packageRoot, 'scripts', 'check-includes.mjs');

function check(dir?: string): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, dir === undefined ? [script] : [script, dir], { encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

const roots: string[] = [];
after(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

// A native/ folder with the given files (path → content) under core/ and addon/.
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'sdnode-includes-'));
  roots.push(root);
  const all: Record<string, string> = { 'core/include/sdcore.h': '#pragma once\n#include <string>\n', 'addon/addon.cpp': '#include "sdcore.h"\n', ...files };
  for (const [path, text] of Object.entries(all)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

test('native/: no include cycles, and the addon includes only the core\'s public header', () => {
  const r = check();
  assert.equal(r.status, 0, r.output);
  assert.match(r.output, /no include cycles/);
});

describe('the include check fails where it should', () => {
  test('a clean made-up tree passes', () => {
    const r = check(tree({
      'core/io/reader.h': '#pragma once\n#include "sdcore/types.h"\n',
      'core/io/reader.cpp': '#include "io/reader.h"\n#include "ggml.h"\n',
      'core/model/model.cpp': '#include "io/reader.h"\n#include "sdcore.h"\n',
      'core/include/sdcore/types.h': '#pragma once\n// ggml_tensor stays out: comments may name it.\n',
    }));
    assert.equal(r.status, 0, r.output);
  });

  test('a header cycle, named file by file', () => {
    const r = check(tree({
      'core/ops/a.h': '#pragma once\n#include "ops/b.h"\n',
      'core/ops/b.h': '#pragma once\n#include "c.h"\n',
      'core/ops/c.h': '// a comment\n#include "a.h"\n',
    }));
    assert.equal(r.status, 1);
    assert.match(r.output, /include cycle core\/ops\/a → core\/ops\/b → core\/ops\/c → core\/ops\/a/);
    assert.match(r.output, /core\/ops\/c\.h:2 includes core\/ops\/a\.h/);
  });

  test('a header and a source including each other\'s header (graph_runner ↔ residency)', () => {
    const r = check(tree({
      'core/runtime/graph_runner.h': '#pragma once\n#include "runtime/residency.h"\n',
      'core/runtime/graph_runner.cpp': '#include "runtime/graph_runner.h"\n',
      'core/runtime/residency.h': '#pragma once\nclass GraphRunner;\n',
      'core/runtime/residency.cpp': '#include "runtime/residency.h"\n#include "runtime/graph_runner.h"\n',
    }));
    assert.equal(r.status, 1);
    assert.match(r.output, /include cycle core\/runtime\/graph_runner → core\/runtime\/residency → core\/runtime\/graph_runner/);
    assert.match(r.output, /core\/runtime\/residency\.cpp:2 includes core\/runtime\/graph_runner\.h/);
  });

  test('rooms of the core that depend on each other', () => {
    const r = check(tree({
      'core/io/json.cpp': '#include "model/names.h"\n',
      'core/model/names.h': '#pragma once\n',
      'core/model/detect.cpp': '#include "io/json.h"\n',
      'core/io/json.h': '#pragma once\n',
    }));
    assert.equal(r.status, 1);
    assert.doesNotMatch(r.output, /include cycle/);
    assert.match(r.output, /cycle between the core's rooms io → model → io/);
  });

  test('the addon reaching into the core, or naming ggml', () => {
    const r = check(tree({
      'core/model/model.h': '#pragma once\n',
      'addon/binding.cpp': '#include "sdcore.h"\n#include "model/model.h"\n#include <ggml-backend.h>\nconst char * n(ggml_backend_dev_t d) { return ggml_backend_dev_name(d); }\n',
    }));
    assert.equal(r.status, 1);
    assert.match(r.output, /addon\/binding\.cpp:2: includes "model\/model\.h", which is not a header of the addon or the public API/);
    assert.match(r.output, /addon\/binding\.cpp:3: includes ggml-backend\.h/);
    assert.match(r.output, /addon\/binding\.cpp:4: names ggml_backend_dev_t/);
  });

  test('a public header that includes an internal one or names a ggml type', () => {
    const r = check(tree({
      'core/runtime/handles.h': '#pragma once\n',
      'core/include/sdcore/model.h': '#pragma once\n#include "runtime/handles.h"\nstruct Weight { ggml_type type; };\n',
    }));
    assert.equal(r.status, 1);
    assert.match(r.output, /core\/include\/sdcore\/model\.h:2: a public header includes core\/runtime\/handles\.h, which is internal/);
    assert.match(r.output, /core\/include\/sdcore\/model\.h:3: names ggml_type/);
  });
});

test('README.md stays a page for users: at most 350 lines, the rest in docs/', () => {
  const lines = readFileSync(join(packageRoot, 'README.md'), 'utf8').split('\n').length;
  assert.ok(lines <= 350, `README.md has ${lines} lines; move details to docs/guide/ or docs/development.md`);
});

test("lib/ throws argument errors with Node's codes: ArgumentTypeError and ArgumentRangeError, never a bare TypeError or RangeError", () => {
  const offenders: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts') && path !== join(packageRoot, 'lib', 'errors.ts')) {
        readFileSync(path, 'utf8').split('\n').forEach((line, i) => {
          if (/new (TypeError|RangeError)\(/.test(line)) offenders.push(`${path.slice(packageRoot.length + 1)}:${i + 1}`);
        });
      }
    }
  };
  walk(join(packageRoot, 'lib'));
  assert.deepEqual(offenders, [], 'use ArgumentTypeError / ArgumentRangeError (lib/errors.ts) so the error has its code');
});
