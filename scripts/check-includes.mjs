#!/usr/bin/env node
// Checks the shape of native/'s include graph (run by test/architecture.test.ts):
//
//   1. No cycles. A file and its header are one unit (x.h + x.cpp), so "graph_runner.h includes
//      residency.h while residency.cpp includes graph_runner.h" is a cycle, as is any header
//      cycle. Each cycle is printed file by file.
//   2. No cycles between the core's rooms (native/core/<room>/, with include/ as a room of its
//      own): io, model, nets, … depend on each other in one direction.
//   3. The addon (native/addon/) includes only its own headers and the core's public headers
//      (native/core/include/), and names no ggml header or identifier.
//   4. The public headers include only each other (and the standard library) and name no ggml
//      header or identifier (comments aside).
//
// `#include "…"` is resolved as the compiler does with our include paths: next to the including
// file, then from its component's root (native/core, native/addon), then from native/core/include.
// What resolves nowhere is outside native/ (ggml, napi.h) and is not part of the graph.
//
//   node scripts/check-includes.mjs [DIR]    DIR defaults to native/ (laid out as core/ and addon/)
//
// Exits 1 naming every problem, 0 when there is none. Plain Node, no dependencies.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const SOURCE = /\.(h|hh|hpp|c|cc|cpp|cxx)$/;
const HEADER = /\.(h|hh|hpp)$/;
// ggml's types, macros and calls (not our own members that mention it, like info.ggml_version).
const GGML_NAME =
  /(?<![.\w>])(?:(?:ggml|gguf)_\w+(?=\s*\()|ggml_(?:type|tensor|context|cgraph|backend\w*|gallocr\w*|init_params|op|status)\b|gguf_\w+|(?:GGML|GGUF)_[A-Z]\w*)/;

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...walk(path));
    else if (SOURCE.test(name)) out.push(path);
  }
  return out;
}

// Comments and string literals (other than #include's) blanked out, line structure kept.
function stripComments(text) {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, (m) => m.replace(/[^\n]/g, ' '))
    .replace(/\/\/.*$/gm, '')
    .replace(/^(?!\s*#\s*include).*$/gm, (line) => line.replace(/"(?:[^"\\\n]|\\.)*"/g, '""'));
}

function parseIncludes(text) {
  const out = [];
  const lines = stripComments(text).split('\n');
  lines.forEach((line, i) => {
    const m = /^\s*#\s*include\s*([<"])([^>"]+)[>"]/.exec(line);
    if (m) out.push({ name: m[2], quoted: m[1] === '"', line: i + 1 });
  });
  return out;
}

/** Checks the tree under `root` (core/ and addon/ inside it); returns the problems found. */
export function checkIncludes(root) {
  root = resolve(root);
  const core = join(root, 'core');
  const addon = join(root, 'addon');
  const publicDir = join(core, 'include');
  const rel = (path) => relative(root, path).split(sep).join('/');
  const inside = (path, dir) => path === dir || path.startsWith(dir + sep);
  const files = existsSync(root) ? walk(root) : [];
  const fileSet = new Set(files);

  const componentRoot = (file) => (inside(file, addon) ? addon : inside(file, core) ? core : root);
  const resolveInclude = (from, name) => {
    for (const base of [dirname(from), componentRoot(from), publicDir]) {
      const candidate = resolve(base, name);
      if (fileSet.has(candidate)) return candidate;
    }
    return undefined;
  };

  const problems = [];
  const edges = new Map();  // file → [{ to, line }]
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const list = [];
    for (const inc of parseIncludes(text)) {
      const to = inc.quoted ? resolveInclude(file, inc.name) : undefined;
      const where = `${rel(file)}:${inc.line}`;
      const isAddon = inside(file, addon);
      const isPublic = inside(file, publicDir);
      if (!to && (isAddon || isPublic) && /^(ggml|gguf)/.test(inc.name.split('/').pop())) {
        problems.push(`${where}: includes ${inc.name} (ggml stays behind the core's public header)`);
      }
      if (to) {
        list.push({ to, line: inc.line });
        if (isAddon && !inside(to, addon) && !inside(to, publicDir)) {
          problems.push(`${where}: the addon includes ${rel(to)}, which is internal to the core (use the public header in core/include/)`);
        }
        if (isPublic && !inside(to, publicDir)) {
          problems.push(`${where}: a public header includes ${rel(to)}, which is internal to the core`);
        }
      } else if (inc.quoted && (isAddon || isPublic)) {
        problems.push(`${where}: includes "${inc.name}", which is not a header of ${isAddon ? 'the addon or the public API' : 'the public API'}`);
      }
    }
    edges.set(file, list);
    if (inside(file, addon) || inside(file, publicDir)) {
      stripComments(text).split('\n').forEach((line, i) => {
        if (/^\s*#\s*include/.test(line)) return;
        const m = GGML_NAME.exec(line);
        if (m) problems.push(`${rel(file)}:${i + 1}: names ${m[0]} (no ggml type or call ${inside(file, addon) ? 'in the addon' : 'in the public header'})`);
      });
    }
  }

  // 1. Cycles between units: x.h and x.cpp (same folder, same stem) are one node.
  const unitOf = (file) => rel(file).replace(SOURCE, '');
  const unitEdges = new Map();  // unit → Map(unit → "a.cpp:3 → b.h")
  for (const [file, list] of edges) {
    const from = unitOf(file);
    if (!unitEdges.has(from)) unitEdges.set(from, new Map());
    for (const { to, line } of list) {
      const target = unitOf(to);
      if (target === from) continue;
      const map = unitEdges.get(from);
      if (!map.has(target)) map.set(target, `${rel(file)}:${line} includes ${rel(to)}`);
    }
  }
  for (const cycle of findCycles(unitEdges)) {
    const steps = cycle.map((unit, i) => unitEdges.get(unit).get(cycle[(i + 1) % cycle.length]));
    problems.push(`include cycle ${[...cycle, cycle[0]].join(' → ')}:\n    ${steps.join('\n    ')}`);
  }

  // 2. Cycles between the core's rooms (its direct subfolders; files at its top level are a room
  // named ".").
  const roomOf = (file) => {
    if (!inside(file, core)) return undefined;
    const parts = relative(core, file).split(sep);
    return parts.length > 1 ? parts[0] : '.';
  };
  const roomEdges = new Map();
  for (const [file, list] of edges) {
    const from = roomOf(file);
    if (from === undefined) continue;
    if (!roomEdges.has(from)) roomEdges.set(from, new Map());
    for (const { to, line } of list) {
      const target = roomOf(to);
      if (target === undefined || target === from) continue;
      const map = roomEdges.get(from);
      if (!map.has(target)) map.set(target, `${rel(file)}:${line} includes ${rel(to)}`);
    }
  }
  for (const cycle of findCycles(roomEdges)) {
    const steps = cycle.map((room, i) => roomEdges.get(room).get(cycle[(i + 1) % cycle.length]));
    problems.push(`cycle between the core's rooms ${[...cycle, cycle[0]].join(' → ')}, e.g.:\n    ${steps.join('\n    ')}`);
  }
  return problems;
}

// One cycle per strongly connected component with more than one node (Tarjan), each as a list
// of nodes in edge order.
function findCycles(graph) {
  const index = new Map();
  const low = new Map();
  const onStack = new Set();
  const stack = [];
  const components = [];
  let counter = 0;
  const nodes = [...graph.keys()].sort();
  const strong = (v) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of [...(graph.get(v)?.keys() ?? [])].sort()) {
      if (!index.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v), index.get(w)));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) components.push(new Set(component));
    }
  };
  for (const v of nodes) if (!index.has(v)) strong(v);
  // A shortest cycle through each component's first node (breadth-first inside the component).
  return components.map((members) => {
    const start = [...members].sort()[0];
    const previous = new Map([[start, undefined]]);
    const queue = [start];
    while (queue.length > 0) {
      const v = queue.shift();
      for (const w of [...(graph.get(v)?.keys() ?? [])].sort()) {
        if (!members.has(w)) continue;
        if (w === start) {
          const path = [];
          for (let u = v; u !== undefined; u = previous.get(u)) path.unshift(u);
          return path;
        }
        if (!previous.has(w)) {
          previous.set(w, v);
          queue.push(w);
        }
      }
    }
    return [start];
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'native');
  const problems = checkIncludes(root);
  if (problems.length > 0) {
    console.error(`check-includes: ${problems.length} problem${problems.length === 1 ? '' : 's'} in ${root}`);
    for (const p of problems) console.error(`  ${p}`);
    process.exit(1);
  }
  console.log(`check-includes: ${root}: no include cycles; the addon sees only the core's public headers`);
}
