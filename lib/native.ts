// Loads sd_node.node once and describes what it exports. Everything else in lib/ reaches the
// native engine through `native()`.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { StableDiffusionError } from './errors.js';
import type { TensorLike } from './tensor.js';

export interface NativeSystemInfo {
  version: string;
  ggmlVersion: string;
  ggmlCommit: string;
  backendDir: string;
  backends: string[];
  cpuFeatures: Record<string, string>;
  defaultThreads: number;
}

export interface NativeDevice {
  name: string;
  description: string;
  type: 'cpu' | 'gpu' | 'igpu' | 'accel' | 'unknown';
  backend: string;
  memoryFree: number;
  memoryTotal: number;
}

export interface NativeAddon {
  init(backendDir: string): void;
  systemInfo(): NativeSystemInfo;
  listDevices(): NativeDevice[];
  deviceCheck(device: string, a: TensorLike, b: TensorLike, threads: number): Promise<TensorLike>;
}

export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Where the addon may be, in order: an explicit path, a prebuilt binary, a local build. */
export function addonCandidates(): string[] {
  const candidates: string[] = [];
  if (process.env.SDNODE_ADDON) candidates.push(resolve(process.env.SDNODE_ADDON));
  candidates.push(join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`, 'sd_node.node'));
  candidates.push(join(packageRoot, 'build', 'Release', 'sd_node.node'));
  return candidates;
}

let loaded: NativeAddon | undefined;

export function native(): NativeAddon {
  if (loaded) return loaded;
  const candidates = addonCandidates();
  const path = candidates.find((p) => existsSync(p));
  if (path === undefined) {
    throw new StableDiffusionError(
      'ERR_NATIVE_MISSING',
      `The native addon is not built (looked for ${candidates.join(', ')}). Run \`npm run build:native\`.`,
    );
  }
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (cause) {
    throw new StableDiffusionError('ERR_NATIVE_MISSING', `The native addon at ${path} could not be loaded: ${String(cause)}`, {
      path,
      cause,
    });
  }
  // ggml's backends (each CPU variant, Vulkan, CUDA) are modules in the addon's folder.
  addon.init(dirname(path));
  loaded = addon;
  return addon;
}
