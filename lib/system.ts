import { cpuVariantOf } from './binary/load.js';
import type { BinarySource } from './binary/addon-candidates.js';
import type { GpuVariant } from './binary/gpu-packages.js';
import { loadedBinary, native } from './native.js';

export type { BinarySource, GpuVariant };
export type { GpuVariantStatus } from './binary/gpu-packages.js';
export type { GpuBackend } from './binary/platform.js';

/** What `backend: 'auto'` runs on: a CUDA or Vulkan device when one is usable, else the CPU. */
export type Variant = 'cuda' | 'vulkan' | 'cpu';

/** What `systemInfo()` reports: this package, ggml, the binary and backends in use. */
export interface SystemInfo {
  /** This package's version. */
  version: string;
  /** The ggml this binary was built from. */
  ggml: {
    /** ggml's version. */
    version: string;
    /** The ggml commit it was built from. */
    commit: string;
  };
  /** ggml backends compiled and loaded, e.g. `['CPU']` or `['CPU', 'Vulkan']`. */
  backends: string[];
  /** SIMD features of the CPU variant ggml loaded for this CPU, e.g. `['AVX', 'AVX2', 'FMA']`. */
  cpuFeatures: string[];
  /** Threads used when `threads` is not given. */
  defaultThreads: number;
  /** The folder the addon and ggml's backend modules were loaded from. */
  nativeDir: string;
  /** The addon in use: a prebuilt binary, a source build, or the file SDNODE_ADDON names. */
  binary: {
    /** Where the addon came from. */
    source: BinarySource;
    /** The sd_node.node file loaded. */
    path: string;
  };
  /** The best variant available: `cuda` or `vulkan` when such a device is usable, else `cpu`. */
  variant: Variant;
  /** The CPU variant ggml chose for this CPU (`zen4`, `haswell`, `x64`, …); undefined when the CPU backend is built in (`--native-cpu`). */
  cpuVariant?: string;
  /** Each loaded backend and the module file it came from, e.g. `{ CPU: '…/libggml-cpu-zen4.so' }`. */
  modules: Record<string, string>;
  /** Each GPU backend's variant: loaded, or why not (not installed, no driver, no device, failed). */
  gpu: GpuVariant[];
}

/** ggml's device types: a CPU, a discrete or integrated GPU, an accelerator. */
export type DeviceType = 'cpu' | 'gpu' | 'igpu' | 'accel' | 'unknown';

/** A device ggml can use (`listDevices()`). */
export interface DeviceInfo {
  /** ggml's device name, e.g. `CPU`, `Vulkan0`, `CUDA0`; accepted wherever a device is named. */
  name: string;
  /** The device's description as its driver gives it (e.g. the GPU's or the CPU's name). */
  description: string;
  /** What kind of device it is. */
  type: DeviceType;
  /** The backend that drives it: `CPU`, `Vulkan`, `CUDA`, … */
  backend: string;
  /** Bytes; for the CPU, the host's free and total memory. */
  memoryFree: number;
  /** Bytes in all. */
  memoryTotal: number;
}

/**
 * Versions, the native binary and ggml backends in use, the CPU's features, and each GPU variant:
 * loaded, or why not. Loads the addon on first use.
 */
export function systemInfo(): SystemInfo {
  const info = native().systemInfo();
  const binary = loadedBinary();
  const modules = Object.fromEntries(info.backends.map((name, i) => [name, info.backendPaths[i] ?? '']));
  const devices = listDevices();
  const variant: Variant = devices.some((d) => d.backend === 'CUDA') ? 'cuda' : devices.some((d) => d.backend === 'Vulkan') ? 'vulkan' : 'cpu';
  const cpuVariant = modules.CPU ? cpuVariantOf(modules.CPU) : undefined;
  return {
    version: info.version,
    ggml: { version: info.ggmlVersion, commit: info.ggmlCommit },
    backends: info.backends,
    cpuFeatures: Object.entries(info.cpuFeatures)
      .filter(([, value]) => value !== '0')
      .map(([name, value]) => (value === '1' ? name : `${name}=${value}`)),
    defaultThreads: info.defaultThreads,
    nativeDir: info.backendDir,
    binary: { source: binary.source, path: binary.path },
    variant,
    ...(cpuVariant !== undefined && { cpuVariant }),
    modules,
    gpu: binary.gpu.map((v) => ({ ...v })),
  };
}

/** Every device ggml can use, with its free and total memory now. */
export function listDevices(): DeviceInfo[] {
  return native().listDevices();
}
