#include "ops/fp16_convert.h"

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define SD_HAVE_F16C_PATH 1
#endif

namespace sd {

#ifdef SD_HAVE_F16C_PATH
namespace {

bool cpu_has_f16c() {
    static const bool f16c = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
    return f16c;
}

__attribute__((target("avx,f16c"))) void fp32_to_fp16_f16c(const float * x, ggml_fp16_t * y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i half = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128(reinterpret_cast<__m128i *>(y + i), half);
    }
    for (; i < n; ++i) y[i] = static_cast<ggml_fp16_t>(_cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT));
}

__attribute__((target("avx,f16c"))) void fp16_to_fp32_f16c(const ggml_fp16_t * x, float * y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(x + i))));
    }
    for (; i < n; ++i) y[i] = _cvtsh_ss(x[i]);
}

} // namespace

void fp32_to_fp16(const float * x, ggml_fp16_t * y, int64_t n) {
    if (cpu_has_f16c()) {
        fp32_to_fp16_f16c(x, y, n);
    } else {
        ggml_fp32_to_fp16_row(x, y, n);
    }
}

void fp16_to_fp32(const ggml_fp16_t * x, float * y, int64_t n) {
    if (cpu_has_f16c()) {
        fp16_to_fp32_f16c(x, y, n);
    } else {
        ggml_fp16_to_fp32_row(x, y, n);
    }
}
#else
void fp32_to_fp16(const float * x, ggml_fp16_t * y, int64_t n) { ggml_fp32_to_fp16_row(x, y, n); }
void fp16_to_fp32(const ggml_fp16_t * x, float * y, int64_t n) { ggml_fp16_to_fp32_row(x, y, n); }
#endif

} // namespace sd
