#!/usr/bin/env node
// Writes native/core/text/unicode_tables.cpp: the Unicode data the CLIP tokenizer and the prompt
// parser need, taken from this Node's ICU by testing every code point:
//
//   letters          /\p{L}/u          (the tokenizer's [\p{L}]+ pieces)
//   numbers          /\p{N}/u          (the tokenizer's single-digit pieces)
//   decimal digits   /\p{Nd}/u         (Python's \d and float() in A1111's weight syntax)
//   lowercase        toLowerCase() of each code point on its own (no context, so no final sigma)
//   NFC              normalize('NFD') / normalize('NFC'): full decompositions, the primary
//                    composites as (first, second) pairs, and the canonical combining classes
//
// JavaScript has no API for the canonical combining class, so it is measured: two combining
// marks after a base letter are swapped by NFD exactly when the first has the higher class. The
// classes are stored as ranks (1, 2, …) that keep their order, which is all NFC needs.
//
// White space is not generated: transformers' tokenizer (Oniguruma's \s) uses exactly the Unicode
// White_Space property, which native/core/text/unicode.cpp lists by hand; this script checks that list
// against /\p{White_Space}/u.
//
//   node tools/unicode/make_unicode_tables.mjs [--check]
//
// --check regenerates in memory and fails if the committed file differs (the tables follow this
// Node's Unicode version: run it with the Node that last wrote them, named in the file's header).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const outPath = join(root, 'native', 'core', 'text', 'unicode_tables.cpp');
const MAX = 0x110000;
const isSurrogate = (c) => c >= 0xd800 && c <= 0xdfff;
const isHangulSyllable = (c) => c >= 0xac00 && c <= 0xd7a3;
const chr = (...c) => String.fromCodePoint(...c);
const cps = (s) => Array.from(s, (ch) => ch.codePointAt(0));
const hex = (c) => '0x' + c.toString(16).toUpperCase();

function ranges(test) {
  const out = [];
  for (let c = 0; c < MAX; c++) {
    if (isSurrogate(c) || !test(chr(c))) continue;
    const last = out[out.length - 1];
    if (last && last[1] === c - 1) last[1] = c;
    else out.push([c, c]);
  }
  return out;
}

// --- general categories
const letters = ranges((s) => /\p{L}/u.test(s));
const numbers = ranges((s) => /\p{N}/u.test(s));
const digits = ranges((s) => /\p{Nd}/u.test(s));
for (const [a, b] of digits) {
  // Unicode keeps every decimal digit set in one run of ten, 0 first: the value is (c - first) % 10.
  if ((b - a + 1) % 10 !== 0) throw new Error(`decimal digit run ${hex(a)}..${hex(b)} is not whole tens`);
}

// --- White_Space: checked, not generated (see header)
const whiteSpace = [[0x09, 0x0d], [0x20, 0x20], [0x85, 0x85], [0xa0, 0xa0], [0x1680, 0x1680], [0x2000, 0x200a],
  [0x2028, 0x2029], [0x202f, 0x202f], [0x205f, 0x205f], [0x3000, 0x3000]];
if (JSON.stringify(ranges((s) => /\p{White_Space}/u.test(s))) !== JSON.stringify(whiteSpace)) {
  throw new Error('White_Space differs from the list in native/core/text/unicode.cpp: update both');
}

// --- lowercase: runs of code points with the same offset, stepping by 1 or 2 (case pairs often
// alternate upper/lower), plus the few that lower-case to more than one code point.
const caseRuns = [];
const expanding = [];
for (let c = 0; c < MAX; c++) {
  if (isSurrogate(c)) continue;
  const lower = cps(chr(c).toLowerCase());
  if (lower.length === 1 && lower[0] === c) continue;
  if (lower.length > 1) {
    expanding.push([c, lower]);
    continue;
  }
  const delta = lower[0] - c;
  const last = caseRuns[caseRuns.length - 1];
  if (last && last.delta === delta) {
    const step = c - last.last;
    if (last.first === last.last && (step === 1 || step === 2)) {
      last.stride = step;
      last.last = c;
      continue;
    }
    if (step === last.stride) {
      last.last = c;
      continue;
    }
  }
  caseRuns.push({ first: c, last: c, delta, stride: 1 });
}
for (const [, lower] of expanding) if (lower.length > 3) throw new Error('lowercase expansion longer than 3');

// --- NFC
const decompositions = []; // [cp, [full canonical decomposition]]
const compositions = []; // [first, second, composite]
const combiningMarks = [];
for (let c = 0; c < MAX; c++) {
  if (isSurrogate(c) || isHangulSyllable(c)) continue;
  const s = chr(c);
  const nfd = s.normalize('NFD');
  if (nfd !== s) {
    const d = cps(nfd);
    decompositions.push([c, d]);
    if (s.normalize('NFC') === s && d.length >= 2) {
      // A primary composite: its one-level decomposition is (first, last code point), where
      // first is whatever the rest composes to.
      const first = cps(chr(...d.slice(0, -1)).normalize('NFC'));
      const second = d[d.length - 1];
      if (first.length !== 1 || chr(first[0], second).normalize('NFC') !== s) {
        throw new Error(`cannot split the composite ${hex(c)}`);
      }
      compositions.push([first[0], second, c]);
    }
  }
}
const decomposable = new Set(decompositions.map(([c]) => c));

// A code point has a non-zero combining class when NFD moves it past U+0345 (class 240, the
// highest) or moves U+0334 (class 1, the lowest) past it.
const reorders = (x, y) => 'a' + chr(x) + chr(y) !== ('a' + chr(x) + chr(y)).normalize('NFD');
for (let c = 0; c < MAX; c++) {
  if (isSurrogate(c) || decomposable.has(c) || isHangulSyllable(c)) continue;
  if (c === 0x345 || c === 0x334 || reorders(0x345, c) || reorders(c, 0x334)) combiningMarks.push(c);
}
// Rank the classes: x sorts after y when NFD swaps (x, y); equal when it swaps neither order.
const compare = (x, y) => (reorders(x, y) ? 1 : reorders(y, x) ? -1 : 0);
const sortedMarks = [...combiningMarks].sort((x, y) => compare(x, y) || x - y);
const rank = new Map();
let r = 0;
for (let i = 0; i < sortedMarks.length; i++) {
  if (i === 0 || compare(sortedMarks[i - 1], sortedMarks[i]) !== 0) r++;
  rank.set(sortedMarks[i], r);
}
if (r > 255) throw new Error('more than 255 combining classes');
const classRuns = [];
for (const c of combiningMarks) {
  const last = classRuns[classRuns.length - 1];
  if (last && last[1] === c - 1 && last[2] === rank.get(c)) last[1] = c;
  else classRuns.push([c, c, rank.get(c)]);
}
compositions.sort((a, b) => a[0] - b[0] || a[1] - b[1]);

// --- write
const pool = [];
const decompositionEntries = decompositions.map(([c, d]) => {
  const offset = pool.length;
  pool.push(...d);
  return `{${hex(c)},${offset},${d.length}}`;
});
if (pool.length > 0xffff) throw new Error('decomposition pool too large for uint16 offsets');

function block(items, perLine) {
  const lines = [];
  for (let i = 0; i < items.length; i += perLine) lines.push('    ' + items.slice(i, i + perLine).join(','));
  return lines.join(',\n');
}
function table(type, name, items, perLine) {
  return `const ${type} ${name}[] = {\n${block(items, perLine)},\n};\nconst size_t ${name}Count = ${items.length};\n`;
}

const text = `// Generated by tools/unicode/make_unicode_tables.mjs from Node ${process.version} (Unicode ${process.versions.unicode}, ICU ${process.versions.icu}).
// Do not edit by hand; see the script for what each table holds and how it was measured.
#include "unicode_tables.h"

namespace sd::unicode::tables {

${table('Range', 'kLetters', letters.map(([a, b]) => `{${hex(a)},${hex(b)}}`), 8)}
${table('Range', 'kNumbers', numbers.map(([a, b]) => `{${hex(a)},${hex(b)}}`), 8)}
${table('Range', 'kDecimalDigits', digits.map(([a, b]) => `{${hex(a)},${hex(b)}}`), 8)}
${table('CaseRun', 'kLowercaseRuns', caseRuns.map((x) => `{${hex(x.first)},${hex(x.last)},${x.delta},${x.stride}}`), 6)}
${table('Expansion', 'kLowercaseExpansions', expanding.map(([c, l]) => `{${hex(c)},{${l.map(hex).join(',')}}}`), 4)}
${table('Decomposition', 'kDecompositions', decompositionEntries, 8)}
${table('char32_t', 'kDecompositionPool', pool.map(hex), 14)}
${table('Composition', 'kCompositions', compositions.map(([a, b, c]) => `{${hex(a)},${hex(b)},${hex(c)}}`), 6)}
${table('ClassRun', 'kCombiningClasses', classRuns.map(([a, b, k]) => `{${hex(a)},${hex(b)},${k}}`), 8)}
} // namespace sd::unicode::tables
`;

if (process.argv.includes('--check')) {
  const current = readFileSync(outPath, 'utf8');
  if (current !== text) {
    console.error(`${outPath} is not what this script generates with Node ${process.version}`);
    process.exit(1);
  }
  console.log(`${outPath} is up to date`);
} else {
  writeFileSync(outPath, text);
  console.log(
    `wrote ${outPath}: ${text.length} bytes; ${letters.length} letter, ${numbers.length} number, ` +
      `${digits.length} digit ranges; ${caseRuns.length} case runs, ${expanding.length} expansions; ` +
      `${decompositions.length} decompositions (${pool.length} code points), ${compositions.length} compositions, ` +
      `${classRuns.length} class runs (${r} classes)`,
  );
}
