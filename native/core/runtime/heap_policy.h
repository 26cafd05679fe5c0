#pragma once

namespace sd {

// glibc serves blocks above its mmap threshold with their own mappings, returned to the OS on
// free, but it raises that threshold (up to 32 MiB) each time such a block is freed. From then
// on, compute buffers and tensors of up to that size come from the worker threads' malloc
// arenas, where freed ones stay resident: over a soak of tiny-model generations the process's
// anonymous memory swung by ~50 MB with the history of calls, and ~80 MB more stayed resident
// than with the threshold fixed. Fixing it at glibc's own default (128 KiB) turns the dynamic
// raise off. A MALLOC_MMAP_THRESHOLD_ in the environment is the user's choice and wins. Called
// once, when the backends load; a no-op but on glibc.
void keep_large_blocks_mapped();

} // namespace sd
