#pragma once
// PyTorch's CPU random generator, reproduced bit for bit: TorchCpuGenerator(seed).randn(out, n)
// fills `out` with what torch.randn(n, generator=torch.Generator().manual_seed(seed)) gives on
// a CPU, and successive calls give what successive torch.randn calls on one torch.Generator
// give (diffusers draws its latents, then its noise, from one generator).
//
// What torch does (ATen's CPU generator, as of torch 2.x):
//   - The engine is MT19937. A 64-bit seed is truncated to its low 32 bits and fed to the
//     standard MT19937 initialisation (so seeds s and s + 2^32 give the same numbers).
//   - A float uniform in [0, 1) is (one 32-bit draw & 0xFFFFFF) * 2^-24. A double uniform is
//     (random64 & (2^53 - 1)) * 2^-53, where random64 is two 32-bit draws, the first one in
//     the high half.
//   - randn on a contiguous float32 tensor of n >= 16 elements first draws n float uniforms,
//     then applies Box-Muller in blocks of 16: element j and j + 8 of a block (j < 8) become
//     r*cos(theta) and r*sin(theta) with r = sqrt(-2 log(1 - u_j)), theta = 2 pi u_{j+8}. When
//     n is not a multiple of 16 the last 16 elements are redrawn (16 new uniforms) and
//     transformed again, overwriting the tail of the previous blocks.
//   - On a CPU with AVX2 (any x86-64 of the last decade; AVX-512 machines use the same kernel)
//     that transform is torch's AVX2 kernel: single-precision Cephes-style log and sincos
//     polynomials, compiled with fused multiply-adds at particular places. This file computes
//     the same operations in scalar code, each rounding where torch's binary rounds (std::fma
//     where it fuses), so the bits are the same. Without AVX2 (other CPUs, torch's "default"
//     capability) torch uses the C library's logf/cosf/sinf instead: TorchNormalKernel::kScalar
//     does that, and matches when the C library is the same as torch's.
//   - n < 16 elements are drawn one at a time in double precision: two double uniforms u1, u2,
//     r = sqrt(-2 log1p(-u2)), theta = 2 pi u1, the value r cos(theta) is returned and
//     r sin(theta) is kept in the generator for the next such draw (manual_seed clears it;
//     draws of 16 or more elements neither use nor clear it). Each value is rounded to float.
//
// Not thread-safe: one generator must be used by one thread at a time.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sdcore/tensor.h"

namespace sd {

// The standard 32-bit Mersenne Twister (the same stream as std::mt19937 for a 32-bit seed).
class Mt19937 {
public:
    static constexpr int kStateSize = 624;

    explicit Mt19937(uint32_t seed = 5489u) { seed_with(seed); }

    void seed_with(uint32_t seed);
    uint32_t next();

private:
    void twist();

    std::array<uint32_t, kStateSize> state_{};
    int index_ = kStateSize;
};

// Which of torch's float32 Box-Muller kernels (for 16 or more elements) to reproduce.
enum class TorchNormalKernel {
    kAvx2,    // torch on x86-64 CPUs with AVX2 (and AVX-512): the default
    kScalar,  // torch's portable kernel (no AVX2, e.g. ATEN_CPU_CAPABILITY=default, ARM)
};

TorchNormalKernel torch_normal_kernel_from_name(const std::string & name);  // "avx2", "scalar"; sd::RangeError otherwise
const char * torch_normal_kernel_name(TorchNormalKernel kernel);

// The most values one draw through the addon may produce (4 GiB of float32).
constexpr int64_t kMaxDrawElements = int64_t(1) << 30;
// Throws sd::RangeError unless every dimension is at least 1 and the product at most kMaxDrawElements.
void check_draw_shape(const std::vector<int64_t> & shape);

class TorchCpuGenerator {
public:
    explicit TorchCpuGenerator(uint64_t seed = 67280421310721ull,
                               TorchNormalKernel kernel = TorchNormalKernel::kAvx2);

    // As torch.Generator.manual_seed: restarts the engine and forgets the cached normal.
    void manual_seed(uint64_t seed);
    uint64_t initial_seed() const { return seed_; }
    TorchNormalKernel kernel() const { return kernel_; }

    // The engine's raw draws: torch's random() and random64().
    uint32_t random();
    uint64_t random64();
    // Uniform [0, 1) as torch's uniform_real_distribution<float> / <double> draws it.
    float uniform_float();
    double uniform_double();
    // One standard normal as torch's normal_distribution<double> gives it (uses and sets the cache).
    double normal_double();

    // As torch.randn on a contiguous float32 tensor of n elements (n >= 0).
    void randn(float * out, int64_t n);
    HostTensor randn(const std::vector<int64_t> & shape);

private:
    uint64_t seed_;
    TorchNormalKernel kernel_;
    Mt19937 engine_;
    std::optional<double> next_double_normal_;
};

// torch.randn(shape, generator=torch.Generator().manual_seed(seed)) on a CPU.
HostTensor torch_randn(const std::vector<int64_t> & shape, uint64_t seed,
                       TorchNormalKernel kernel = TorchNormalKernel::kAvx2);

} // namespace sd
