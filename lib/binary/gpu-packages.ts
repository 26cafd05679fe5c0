// GPU variants as optional packages (@stable-diffusion-node/linux-x64-cuda, …-vulkan), each
// holding one ggml backend module built from the same ggml as the main package. A module is
// used only when its driver library loads and a child process has loaded it and found a device:
// a broken driver or module can take down the process that loads it, and that must not be ours.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import { debugEnabled } from '../debug-log.js';
import { backendModuleFile, driverLibrary, GPU_BACKENDS, gpuPackageName, registryName, type GpuBackend } from './platform.js';

/** What happened to one GPU backend's variant when the addon was loaded. */
export type GpuVariantStatus =
  | 'loaded' // its package's module is loaded and found a device
  | 'built-in' // the main binary's folder has this backend's module (a source build with --vulkan/--cuda)
  | 'not-installed' // no package for it is installed
  | 'no-driver' // its driver library (libcuda.so.1, libvulkan.so.1) does not load
  | 'no-device' // the module loads but finds no device
  | 'failed' // the package is broken, of another version, or its module does not load
  | 'unsupported'; // no such package is published for this platform

/** One GPU backend's variant: which package provides it, and whether it is used (`systemInfo().gpu`). */
export interface GpuVariant {
  /** The GPU backend. */
  backend: GpuBackend;
  /** The package that provides it here, e.g. `@stable-diffusion-node/linux-x64-cuda`. */
  package?: string;
  /** The module file that was (or would have been) loaded. */
  modulePath?: string;
  /** Loaded, built in, or why not. */
  status: GpuVariantStatus;
  /** Why it is not used, in words (also what ERR_BACKEND_UNAVAILABLE says). */
  reason?: string;
  /** Devices the module found, by ggml's names (`CUDA0`, `Vulkan0`). */
  devices?: string[];
}

/** The part of the addon that loading uses. */
export interface BackendLoader {
  probeLibrary(name: string): string;
}

interface ModuleLoad {
  path: string;
  backend: string;
  error: string;
}

interface ProbeOutcome {
  results?: ModuleLoad[];
  devices?: { name: string; backend: string }[];
  crash?: string;
}

// Runs in a child: loads the main addon and the given modules, prints what loaded and the devices.
const PROBE_SOURCE = `
const [addonPath, dir, ...modules] = process.argv.slice(1);
const addon = require(addonPath);
const results = addon.init(dir, modules, {});
const devices = addon.listDevices().map((d) => ({ name: d.name, backend: d.backend }));
process.stdout.write('\\n' + JSON.stringify({ results, devices }) + '\\n');
`;

const PROBE_TIMEOUT_MS = 120_000;

function probeInChild(addonPath: string, dir: string, modules: string[]): ProbeOutcome {
  const child = spawnSync(process.execPath, ['-e', PROBE_SOURCE, addonPath, dir, ...modules], {
    encoding: 'utf8',
    timeout: PROBE_TIMEOUT_MS,
    stdio: ['ignore', 'pipe', 'pipe'],
    windowsHide: true,
  });
  // What the backends said while they looked for devices is shown where the parent's would be.
  if (debugEnabled() && child.stderr) process.stderr.write(child.stderr);
  const last = child.stdout?.trim().split('\n').pop() ?? '';
  if (child.status === 0 && last.startsWith('{')) {
    try {
      return JSON.parse(last) as ProbeOutcome;
    } catch {
      // reported as a crash below
    }
  }
  const said = (child.stderr ?? '').trim().split('\n').filter(Boolean).pop();
  const how = child.error ? child.error.message : child.signal ? `was killed by ${child.signal}` : `exited with code ${child.status}`;
  return { crash: `a test load in a child process ${how}${said ? `: ${said}` : ''}` };
}

/** A GPU package's folder if it is installed where the main package can require it. */
function resolvePackage(root: string, name: string): string | undefined {
  try {
    return dirname(createRequire(join(root, 'package.json')).resolve(`${name}/package.json`));
  } catch {
    return undefined;
  }
}

function packageVersion(dir: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

/**
 * Decides which GPU modules to load beside the main addon: finds each backend's package, checks
 * its version and driver, then test-loads the survivors in a child process. Returns a variant per
 * GPU backend; the `loaded` ones (status set by the caller after the real load) carry `modulePath`.
 */
export function chooseGpuVariants(options: {
  root: string;
  version: string;
  addonPath: string;
  addonDir: string;
  addon: BackendLoader;
}): GpuVariant[] {
  const { root, version, addonPath, addonDir, addon } = options;
  const variants: GpuVariant[] = [];
  const toProbe: GpuVariant[] = [];
  for (const backend of GPU_BACKENDS) {
    const builtIn = join(addonDir, backendModuleFile(backend));
    if (existsSync(builtIn)) {
      variants.push({ backend, modulePath: builtIn, status: 'built-in' });
      continue;
    }
    const name = gpuPackageName(backend);
    if (name === undefined) {
      variants.push({ backend, status: 'unsupported', reason: `no prebuilt ${backend} variant exists for ${process.platform}-${process.arch} (build from source with SDNODE_${backend.toUpperCase()}=1)` });
      continue;
    }
    const dir = resolvePackage(root, name);
    if (dir === undefined) {
      variants.push({ backend, package: name, status: 'not-installed', reason: `install ${name} (npm install ${name})` });
      continue;
    }
    const modulePath = join(dir, backendModuleFile(backend));
    const variant: GpuVariant = { backend, package: name, modulePath, status: 'failed' };
    variants.push(variant);
    const theirs = packageVersion(dir);
    if (theirs !== version) {
      variant.reason = `${name}@${theirs ?? '?'} does not match stable-diffusion-node@${version} (install ${name}@${version})`;
    } else if (!existsSync(modulePath)) {
      variant.reason = `${name} has no ${backendModuleFile(backend)} (reinstall it)`;
    } else {
      const driverError = addon.probeLibrary(driverLibrary(backend));
      if (driverError === '') {
        toProbe.push(variant);
      } else {
        variant.status = 'no-driver';
        variant.reason = `no ${registryName(backend)} driver found (${driverError})`;
      }
    }
  }
  if (toProbe.length > 0) {
    const outcome = probeInChild(addonPath, addonDir, toProbe.map((v) => v.modulePath!));
    if (outcome.crash !== undefined && toProbe.length > 1) {
      // One of them took the child down: try each alone to tell which.
      for (const variant of toProbe) judge(variant, probeInChild(addonPath, addonDir, [variant.modulePath!]));
    } else {
      for (const variant of toProbe) judge(variant, outcome);
    }
  }
  return variants;
}

function judge(variant: GpuVariant, outcome: ProbeOutcome): void {
  if (outcome.crash !== undefined) {
    variant.status = 'failed';
    variant.reason = `${variant.package} could not be loaded: ${outcome.crash}`;
    return;
  }
  const result = outcome.results?.find((r) => r.path === variant.modulePath);
  if (result === undefined || result.error !== '') {
    variant.status = 'failed';
    variant.reason = `${variant.package} could not be loaded: ${result?.error || 'no result from the test load'}`;
    return;
  }
  const devices = (outcome.devices ?? []).filter((d) => d.backend === result.backend).map((d) => d.name);
  if (devices.length === 0) {
    variant.status = 'no-device';
    variant.reason = `the ${registryName(variant.backend)} module of ${variant.package} loads but finds no device (SDNODE_LOG=debug shows what it found)`;
    return;
  }
  variant.status = 'loaded';
  variant.devices = devices;
}
