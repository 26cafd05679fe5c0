// The import graph of a folder of TypeScript modules, and its cycles. Every static import and
// re-export counts as an edge, `import type` and `export type … from` included (a type-only
// cycle still ties the modules together: neither can be read, moved or documented without the
// other), and so does a dynamic `import()`. Only relative specifiers are followed; packages and
// node: built-ins are leaves.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

import ts from 'typescript';

/** Module → the modules it imports, both as paths relative to the root, '/'-separated. */
export type ImportGraph = Map<string, string[]>;

function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) files.push(...sourceFiles(path));
    else if (entry.endsWith('.ts') && !entry.endsWith('.d.ts')) files.push(path);
  }
  return files;
}

// NodeNext style: './x.js' names './x.ts'; a folder import names its index.ts.
function resolveSpecifier(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const base = resolve(dirname(from), specifier);
  const candidates = [base.replace(/\.js$/, '.ts'), base, `${base}.ts`, join(base, 'index.ts')];
  return candidates.find((c) => c.endsWith('.ts') && statSync(c, { throwIfNoEntry: false })?.isFile());
}

/** Reads every .ts file under `root` and returns who imports whom. */
export function importGraph(root: string): ImportGraph {
  const graph: ImportGraph = new Map();
  const name = (file: string) => relative(root, file).split('\\').join('/');
  for (const file of sourceFiles(root)) {
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const targets = new Set<string>();
    for (const imported of info.importedFiles) {
      const target = resolveSpecifier(file, imported.fileName);
      if (target !== undefined && target.startsWith(root)) targets.add(name(target));
    }
    graph.set(name(file), [...targets].sort());
  }
  return graph;
}

/** Modules that import each other, directly or through others. */
export interface Cycle {
  /** Every module of the strongly connected component, sorted. */
  modules: string[];
  /** One cycle through them, returning to its start: ['a.ts', 'b.ts', 'a.ts']. */
  path: string[];
}

/** The graph's cycles: one per strongly connected component of more than one module (or a module importing itself). */
export function findCycles(graph: ImportGraph): Cycle[] {
  // Tarjan's strongly connected components.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) components.push(component);
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return components.map((component) => ({ modules: component.sort(), path: cycleThrough(graph, new Set(component)) }));
}

// One cycle inside a strongly connected component: a shortest path from its first module (by
// name) back to itself, so the report names real import statements.
function cycleThrough(graph: ImportGraph, component: Set<string>): string[] {
  const start = [...component].sort()[0]!;
  const previous = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of graph.get(v) ?? []) {
      if (!component.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let u = v; u !== start; u = previous.get(u)!) path.unshift(u);
        path.unshift(start);
        return path;
      }
      if (!previous.has(w)) {
        previous.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}
