// lib/native.ts types the whole addon: every function and class sd_node.node exports, and every
// method of its classes (and of a loaded model), is a member of NativeAddon's types, and nothing
// more. The member names are read from the TypeScript declarations with the compiler's checker.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, test } from 'node:test';

import ts from 'typescript';

import { native, packageRoot } from '../lib/native.js';

let checker: ts.TypeChecker;
let declared: Map<string, ts.Symbol>;

before(() => {
  const path = join(packageRoot, 'lib', 'native.ts');
  const program = ts.createProgram([path], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: ['node'],
  });
  checker = program.getTypeChecker();
  const file = program.getSourceFile(path)!;
  declared = new Map(checker.getExportsOfModule(checker.getSymbolAtLocation(file)!).map((s) => [s.name, s]));
});

function membersOf(type: ts.Type): string[] {
  return checker.getPropertiesOfType(type).map((s) => s.name).sort();
}

function declaredMembers(name: string): string[] {
  const symbol = declared.get(name);
  assert.ok(symbol, `lib/native.ts exports ${name}`);
  return membersOf(checker.getDeclaredTypeOfSymbol(symbol));
}

function prototypeMembers(value: unknown): string[] {
  return Object.getOwnPropertyNames((value as { prototype: object }).prototype).filter((n) => n !== 'constructor').sort();
}

test('NativeAddon names every export of the addon, and no more', () => {
  assert.deepEqual(declaredMembers('NativeAddon'), Object.keys(native()).sort());
});

test("each class the addon exports has its methods typed (the constructors' instance types)", () => {
  const addon = native() as unknown as Record<string, unknown>;
  const addonType = checker.getDeclaredTypeOfSymbol(declared.get('NativeAddon')!);
  const classes: string[] = [];
  for (const property of checker.getPropertiesOfType(addonType)) {
    const type = checker.getTypeOfSymbol(property);
    const [construct] = type.getConstructSignatures();
    if (construct === undefined) {
      assert.equal(typeof addon[property.name], 'function', `${property.name} is a function`);
      continue;
    }
    classes.push(property.name);
    assert.deepEqual(membersOf(construct.getReturnType()), prototypeMembers(addon[property.name]), `new ${property.name}(…)`);
  }
  assert.deepEqual(classes.sort(), ['Scheduler', 'Tokenizer', 'TorchGenerator']);
});

test('NativeModel has the methods of a loaded model', async () => {
  const model = await native().loadModel(join(packageRoot, 'test', 'fixtures', 'tiny', 'sd1-diffusers'), { backend: 'cpu', threads: 1 });
  try {
    assert.deepEqual(declaredMembers('NativeModel'), prototypeMembers(model.constructor));
  } finally {
    model.dispose();
  }
});
