// Where the native addon may be, in the order it is tried: an explicit SDNODE_ADDON, a source
// build (build/Release, made by `npm run build:native` or by the install script when no prebuilt
// binary fits), then the prebuilt binary for this platform (prebuilds/<platform>-<arch>, the
// layout prebuildify uses; node-gyp-build tries a local build first too).
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { currentLibc, platformTag, type Libc } from './platform.js';

/** Where the loaded addon came from: the file `SDNODE_ADDON` names, a source build (build/Release), or the prebuilt binary. */
export type BinarySource = 'SDNODE_ADDON' | 'source build' | 'prebuilt';

export interface AddonCandidate {
  path: string;
  source: BinarySource;
}

/** What `npm run prebuild` records beside a prebuilt binary (prebuilds/<tag>/build.json). */
export interface PrebuildManifest {
  platform: string;
  arch: string;
  libc?: Libc;
  /** The lowest Node-API version the addon needs. */
  napi: number;
  /** The package version it was built for. */
  version: string;
  ggmlCommit: string;
  /** The CPU variant modules beside the addon (ggml picks the best one at run time). */
  cpuVariants: string[];
}

export const ADDON_FILE = 'sd_node.node';
export const MANIFEST_FILE = 'build.json';

export function prebuildDir(root: string, tag: string = platformTag()): string {
  return join(root, 'prebuilds', tag);
}

export function addonCandidates(root: string, env: NodeJS.ProcessEnv = process.env): AddonCandidate[] {
  if (env.SDNODE_ADDON) return [{ path: resolve(env.SDNODE_ADDON), source: 'SDNODE_ADDON' }];
  return [
    { path: join(root, 'build', 'Release', ADDON_FILE), source: 'source build' },
    { path: join(prebuildDir(root), ADDON_FILE), source: 'prebuilt' },
  ];
}

/** Why a prebuilt binary cannot run here (read from its manifest), or undefined when it may. */
export function prebuildMismatch(dir: string): string | undefined {
  const file = join(dir, MANIFEST_FILE);
  if (!existsSync(file)) return undefined;
  let manifest: PrebuildManifest;
  try {
    manifest = JSON.parse(readFileSync(file, 'utf8')) as PrebuildManifest;
  } catch (error) {
    return `its ${MANIFEST_FILE} is unreadable (${(error as Error).message})`;
  }
  if (manifest.platform !== process.platform || manifest.arch !== process.arch) {
    return `it was built for ${manifest.platform}-${manifest.arch}`;
  }
  const libc = currentLibc();
  if (manifest.libc !== undefined && libc !== undefined && manifest.libc !== libc) {
    return `it was built for ${manifest.libc} and this system uses ${libc}`;
  }
  const napi = Number(process.versions.napi);
  if (Number.isFinite(napi) && napi < manifest.napi) {
    return `it needs Node-API ${manifest.napi} and this Node.js has ${napi}`;
  }
  return undefined;
}

export function readPrebuildManifest(dir: string): PrebuildManifest | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8')) as PrebuildManifest;
  } catch {
    return undefined;
  }
}
