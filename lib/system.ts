import { native } from './native.js';

export interface SystemInfo {
  /** This package's version. */
  version: string;
  ggml: { version: string; commit: string };
  /** ggml backends compiled and loaded, e.g. `['CPU']` or `['CPU', 'Vulkan']`. */
  backends: string[];
  /** SIMD features of the CPU variant ggml loaded for this CPU, e.g. `['AVX', 'AVX2', 'FMA']`. */
  cpuFeatures: string[];
  /** Threads used when `threads` is not given. */
  defaultThreads: number;
  /** The folder the addon and ggml's backend modules were loaded from. */
  nativeDir: string;
}

export type DeviceType = 'cpu' | 'gpu' | 'igpu' | 'accel' | 'unknown';

export interface DeviceInfo {
  /** ggml's device name, e.g. `CPU`, `Vulkan0`, `CUDA0`; accepted wherever a device is named. */
  name: string;
  description: string;
  type: DeviceType;
  /** The backend that drives it: `CPU`, `Vulkan`, `CUDA`, … */
  backend: string;
  /** Bytes; for the CPU, the host's free and total memory. */
  memoryFree: number;
  memoryTotal: number;
}

export function systemInfo(): SystemInfo {
  const info = native().systemInfo();
  return {
    version: info.version,
    ggml: { version: info.ggmlVersion, commit: info.ggmlCommit },
    backends: info.backends,
    cpuFeatures: Object.entries(info.cpuFeatures)
      .filter(([, value]) => value !== '0')
      .map(([name, value]) => (value === '1' ? name : `${name}=${value}`)),
    defaultThreads: info.defaultThreads,
    nativeDir: info.backendDir,
  };
}

export function listDevices(): DeviceInfo[] {
  return native().listDevices();
}
