// A look at a shared library's ELF headers before it is loaded. dlopen() maps a truncated library
// and the process dies of SIGBUS when it touches the missing pages, so a cut-off download must be
// caught here; a binary for another machine gets a clearer message than the loader's.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

const MACHINES: Record<number, string> = { 3: 'ia32', 40: 'arm', 62: 'x64', 183: 'arm64', 21: 'ppc64', 22: 's390x', 243: 'riscv64', 258: 'loong64' };
const KNOWN_ARCHES = new Set(Object.values(MACHINES));
const PT_LOAD = 1;

function read(fd: number, position: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  const n = readSync(fd, buffer, 0, length, position);
  return buffer.subarray(0, n);
}

/** Why the ELF shared library at `path` cannot be loaded here, or undefined when it looks whole. Other formats are not checked. */
export function sharedObjectProblem(path: string): string | undefined {
  if (process.platform === 'darwin' || process.platform === 'win32') return undefined;
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    return (error as Error).message;
  }
  try {
    const size = fstatSync(fd).size;
    const header = read(fd, 0, 64);
    if (header.length < 52 || header.readUInt32BE(0) !== 0x7f454c46) return `not a shared library (no ELF header; ${size} bytes)`;
    const is64 = header[4] === 2;
    const littleEndian = header[5] === 1;
    if (header.length < (is64 ? 64 : 52)) return `truncated (${size} bytes)`;
    const u16 = (b: Buffer, at: number) => (littleEndian ? b.readUInt16LE(at) : b.readUInt16BE(at));
    const u32 = (b: Buffer, at: number) => (littleEndian ? b.readUInt32LE(at) : b.readUInt32BE(at));
    const word = (b: Buffer, at: number) => (is64 ? Number(littleEndian ? b.readBigUInt64LE(at) : b.readBigUInt64BE(at)) : u32(b, at));
    const machine = u16(header, 18);
    const built = MACHINES[machine];
    if (built !== undefined && KNOWN_ARCHES.has(process.arch) && built !== process.arch) {
      return `built for ${built}, this is ${process.arch}`;
    }
    if (is64 !== !(process.arch === 'ia32' || process.arch === 'arm')) return `a ${is64 ? 64 : 32}-bit library in a ${process.arch} process`;
    const [phoff, shoff] = [word(header, is64 ? 32 : 28), word(header, is64 ? 40 : 32)];
    const [phentsize, phnum] = [u16(header, is64 ? 54 : 42), u16(header, is64 ? 56 : 44)];
    const [shentsize, shnum] = [u16(header, is64 ? 58 : 46), u16(header, is64 ? 60 : 48)];
    let needed = Math.max(phoff + phentsize * phnum, shoff + shentsize * shnum);
    const table = read(fd, phoff, phentsize * phnum);
    if (table.length < phentsize * phnum) return `truncated (${size} bytes; its headers need ${needed})`;
    for (let i = 0; i < phnum; i++) {
      const entry = table.subarray(i * phentsize);
      if (u32(entry, 0) !== PT_LOAD) continue;
      const [offset, filesz] = is64 ? [word(entry, 8), word(entry, 32)] : [u32(entry, 4), u32(entry, 16)];
      needed = Math.max(needed, offset + filesz);
    }
    return needed > size ? `truncated (${size} bytes; it needs ${needed})` : undefined;
  } finally {
    closeSync(fd);
  }
}
