// What this machine is, in the terms prebuilt binaries are named by: `linux-x64` folders under
// prebuilds/ (prebuildify's layout), the C library they need, and the GPU packages that exist.

/** The GPU backends that ship as separate packages, in the order `backend: 'auto'` prefers them. */
export const GPU_BACKENDS = ['cuda', 'vulkan'] as const;
/** A GPU backend with its own optional package: `cuda` or `vulkan`. */
export type GpuBackend = (typeof GPU_BACKENDS)[number];

/** The scope of the GPU packages: `@stable-diffusion-node/linux-x64-cuda`, `…-vulkan`. */
export const GPU_PACKAGE_SCOPE = '@stable-diffusion-node';

/** `linux-x64`, `darwin-arm64`, …: the folder name under prebuilds/. */
export function platformTag(platform: string = process.platform, arch: string = process.arch): string {
  return `${platform}-${arch}`;
}

export type Libc = 'glibc' | 'musl';

/** Linux's C library (a glibc build does not load on musl, nor the other way round); undefined elsewhere. */
export function currentLibc(): Libc | undefined {
  if (process.platform !== 'linux') return undefined;
  // Node records the glibc it runs on in its report header; on musl the field is absent. The
  // report would otherwise resolve the host names of open sockets, which can take long.
  const report = process.report as (NodeJS.ProcessReport & { excludeNetwork?: boolean }) | undefined;
  if (report === undefined) return 'glibc';
  const excludeNetwork = report.excludeNetwork;
  report.excludeNetwork = true;
  try {
    const header = (report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
    return header?.glibcVersionRuntime ? 'glibc' : 'musl';
  } finally {
    report.excludeNetwork = excludeNetwork;
  }
}

/** The GPU package for `backend` on this platform, or undefined where none is published. */
export function gpuPackageName(backend: GpuBackend, platform: string = process.platform, arch: string = process.arch): string | undefined {
  // Built and published for linux-x64 (glibc) only so far; elsewhere GPU variants come from a source build.
  if (platform !== 'linux' || arch !== 'x64') return undefined;
  return `${GPU_PACKAGE_SCOPE}/${platformTag(platform, arch)}-${backend}`;
}

/** The file name of ggml's backend module for `backend` (what a GPU package holds). */
export function backendModuleFile(backend: string, platform: string = process.platform): string {
  if (platform === 'win32') return `ggml-${backend}.dll`;
  return `libggml-${backend}.${platform === 'darwin' ? 'dylib' : 'so'}`;
}

/** The driver library a backend's module needs before it can find a device. */
export function driverLibrary(backend: GpuBackend, platform: string = process.platform): string {
  if (backend === 'cuda') return platform === 'win32' ? 'nvcuda.dll' : 'libcuda.so.1';
  if (platform === 'win32') return 'vulkan-1.dll';
  return platform === 'darwin' ? 'libvulkan.1.dylib' : 'libvulkan.so.1';
}

/** The name ggml gives a backend's registry (what systemInfo().backends lists). */
export function registryName(backend: GpuBackend): string {
  return backend === 'cuda' ? 'CUDA' : 'Vulkan';
}
