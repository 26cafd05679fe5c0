#pragma once
// SD_VECTOR_CLONES before a function with plain loops over arrays: on x86-64 Linux, GCC and
// clang compile it once per listed instruction set and pick the best at load time (ifunc), so
// that the portable build still vectorizes them with AVX-512 or AVX2 where the CPU has it.
// Elsewhere it compiles once for the build's baseline. Files using it are compiled with
// -fno-trapping-math (native/core/CMakeLists.txt), without which GCC leaves loops with a comparison
// or a float → int conversion scalar.
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define SD_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SD_VECTOR_CLONES
#endif
