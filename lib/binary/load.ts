// Loads the native addon: the first candidate binary that loads (addon-candidates.ts), then
// ggml's backends: every module in the binary's folder (the best CPU variant for this CPU) and
// the GPU packages that pass their checks (gpu-packages.ts). Says what it took and why.
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname } from 'node:path';

import { debugLog } from '../debug-log.js';
import { StableDiffusionError } from '../errors.js';
import { addonCandidates, prebuildMismatch, type BinarySource } from './addon-candidates.js';
import { chooseGpuVariants, type BackendLoader, type GpuVariant } from './gpu-packages.js';
import { registryName } from './platform.js';
import { sharedObjectProblem } from './shared-object-check.js';

interface ModuleLoad {
  path: string;
  backend: string;
  error: string;
}

/** The part of the addon that loading uses. */
export interface BinaryAddon extends BackendLoader {
  init(dir: string, modules: string[], unavailable: Record<string, string>): ModuleLoad[];
  listDevices(): { backend: string }[];
}

/** A candidate binary that was passed over, and why. */
export interface RejectedBinary {
  path: string;
  source: BinarySource;
  reason: string;
}

export interface LoadedBinary<A> {
  addon: A;
  /** The sd_node.node that was loaded. */
  path: string;
  source: BinarySource;
  /** Candidates tried before it, with the reason each was passed over. */
  rejected: RejectedBinary[];
  gpu: GpuVariant[];
}

export function loadBinary<A extends BinaryAddon>(root: string, version: string, env: NodeJS.ProcessEnv = process.env): LoadedBinary<A> {
  const rejected: RejectedBinary[] = [];
  const requireAddon = createRequire(import.meta.url);
  for (const candidate of addonCandidates(root, env)) {
    if (!existsSync(candidate.path)) continue;
    const mismatch = (candidate.source === 'prebuilt' ? prebuildMismatch(dirname(candidate.path)) : undefined) ?? damagedLibrary(candidate.path);
    if (mismatch !== undefined) {
      rejected.push({ ...candidate, reason: mismatch });
      continue;
    }
    let addon: A;
    try {
      addon = requireAddon(candidate.path) as A;
    } catch (error) {
      // dlopen's message starts with the path, which the report already names.
      rejected.push({ ...candidate, reason: firstLine(error).replace(`${candidate.path}: `, '') });
      continue;
    }
    const dir = dirname(candidate.path);
    const gpu = chooseGpuVariants({ root, version, addonPath: candidate.path, addonDir: dir, addon });
    const toLoad = gpu.filter((v) => v.status === 'loaded');
    const unavailable: Record<string, string> = {};
    for (const v of gpu) if (v.reason !== undefined) unavailable[v.backend] = v.reason;
    const results = addon.init(dir, toLoad.map((v) => v.modulePath!), unavailable);
    for (const variant of toLoad) {
      const result = results.find((r) => r.path === variant.modulePath);
      if (result === undefined || result.error !== '') {
        variant.status = 'failed';
        variant.reason = `${variant.package} could not be loaded: ${result?.error || 'no result'}`;
      }
    }
    for (const r of rejected) debugLog(`not using ${r.source} binary ${r.path}: ${r.reason}`);
    // What backend: 'auto' will take instead: a GPU backend only if it found a device.
    const present = new Set(addon.listDevices().map((d) => d.backend));
    const fallback = ['CUDA', 'Vulkan'].find((name) => present.has(name)) ?? 'the CPU';
    for (const v of gpu) {
      if (v.status === 'loaded' || v.status === 'built-in' || v.status === 'unsupported') continue;
      debugLog(`${registryName(v.backend)} variant not used: ${v.reason}; using ${fallback}`);
    }
    return { addon, path: candidate.path, source: candidate.source, rejected, gpu };
  }
  const tried = rejected.map((r) => `${r.source} ${r.path}: ${r.reason}`);
  const looked = addonCandidates(root, env).map((c) => c.path);
  throw new StableDiffusionError(
    rejected.length > 0 ? 'ERR_NATIVE_LOAD' : 'ERR_NATIVE_MISSING',
    rejected.length > 0
      ? `The native addon could not be loaded (${tried.join('; ')}). Reinstall the package, or build it from source: SDNODE_BUILD_FROM_SOURCE=1 npm rebuild stable-diffusion-node`
      : `The native addon is not built and no prebuilt binary exists for ${process.platform}-${process.arch} (looked for ${looked.join(', ')}). Build it: npm run build:native`,
    rejected.length > 0 ? { path: rejected[0]!.path } : {},
  );
}

// The addon and every library and module in its folder (ggml opens each CPU variant to score it):
// a truncated one would kill the process when loaded.
function damagedLibrary(addonPath: string): string | undefined {
  const dir = dirname(addonPath);
  const libraries = readdirSync(dir).filter((f) => /\.(node|so(\.\d+)*)$/.test(f));
  for (const file of [basename(addonPath), ...libraries.filter((f) => f !== basename(addonPath))]) {
    const problem = sharedObjectProblem(`${dir}/${file}`);
    if (problem !== undefined) return file === basename(addonPath) ? problem : `${file} is ${problem}`;
  }
  return undefined;
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}

/** `zen4` for ggml's libggml-cpu-zen4.so; undefined for a CPU backend built into one library. */
export function cpuVariantOf(modulePath: string): string | undefined {
  return /ggml-cpu-([A-Za-z0-9_]+)\.(so|dll|dylib)$/.exec(basename(modulePath))?.[1];
}
