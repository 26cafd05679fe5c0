// Loads sd_node.node once and describes what it exports. Everything else in lib/ reaches the
// native engine through `native()`.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { loadBinary, type BinaryAddon, type LoadedBinary } from './binary/load.js';
import type { TensorLike } from './tensor.js';

export interface NativeSystemInfo {
  version: string;
  ggmlVersion: string;
  ggmlCommit: string;
  backendDir: string;
  backends: string[];
  /** The module file each of `backends` was loaded from. */
  backendPaths: string[];
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

/** The core's scheduler table (native/core/sched/scheduler_catalog.cpp): the one source of scheduler names, A1111 names and override ranges. */
export interface NativeSchedulerCatalog {
  /** Our schedulers, in listing order: whether each takes useKarrasSigmas, has a begin index, and its model calls per step. */
  schedulers: Array<{ name: string; karrasSigmas: boolean; beginIndex: boolean; order: number }>;
  /** AUTOMATIC1111's names and the scheduler each stands for, in A1111's order. */
  a1111: Array<{ name: string; scheduler: string }>;
  /** The overrides createScheduler takes: the names a 'oneOf' takes, the inclusive range of an 'integer' or 'number'. */
  overrides: Array<{ name: string; type: 'oneOf' | 'boolean' | 'integer' | 'number'; values?: string[]; min?: number; max?: number }>;
}

export interface NativeAddon extends BinaryAddon {
  systemInfo(): NativeSystemInfo;
  listDevices(): NativeDevice[];
  deviceCheck(device: string, a: TensorLike, b: TensorLike, threads: number): Promise<TensorLike>;
  schedulerCatalog(): NativeSchedulerCatalog;
}

export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

let loaded: LoadedBinary<NativeAddon> | undefined;

function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
}

/** The loaded addon, loading it (and ggml's backends) on first use. */
export function native(): NativeAddon {
  loaded ??= loadBinary<NativeAddon>(packageRoot, packageVersion());
  return loaded.addon;
}

/** Which binary and GPU variants were loaded, and why others were not. */
export function loadedBinary(): LoadedBinary<NativeAddon> {
  native();
  return loaded!;
}
