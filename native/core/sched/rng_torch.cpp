// PyTorch's CPU generator and randn; see sdcore/rng.h for what is reproduced and why.
//
// Every floating-point operation below must round exactly where torch's compiled code rounds:
// fused multiply-adds are written as std::fma, everything else as separate operations, and
// the compiler must not fuse a multiply and an add on its own (contraction is switched off
// for this file; nothing here also relies on it being off, see the comments at each std::fma).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#elif defined(_MSC_VER)
#pragma fp_contract(off)
#endif
#if defined(__FAST_MATH__)
#error "rng_torch.cpp must be compiled without -ffast-math: it reproduces torch's rounding exactly"
#endif

#include "sdcore/rng.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "sdcore/error.h"

namespace sd {

// ---------------------------------------------------------------------------------------------
// MT19937

void Mt19937::seed_with(uint32_t seed) {
    state_[0] = seed;
    for (int i = 1; i < kStateSize; ++i) {
        const uint32_t prev = state_[i - 1];
        state_[i] = 1812433253u * (prev ^ (prev >> 30)) + static_cast<uint32_t>(i);
    }
    index_ = kStateSize;
}

void Mt19937::twist() {
    constexpr int kShift = 397;
    for (int i = 0; i < kStateSize; ++i) {
        const uint32_t y = (state_[i] & 0x80000000u) | (state_[(i + 1) % kStateSize] & 0x7fffffffu);
        state_[i] = state_[(i + kShift) % kStateSize] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    index_ = 0;
}

uint32_t Mt19937::next() {
    if (index_ >= kStateSize) twist();
    uint32_t y = state_[index_++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

// ---------------------------------------------------------------------------------------------
// The float32 Box-Muller kernels for 16 values at a time.

namespace {

uint32_t bits_of(float x) {
    uint32_t b;
    std::memcpy(&b, &x, sizeof b);
    return b;
}

float float_of(uint32_t b) {
    float x;
    std::memcpy(&x, &b, sizeof x);
    return x;
}

// Constants of torch's AVX2 kernel, as the float32 values its binary holds (Cephes' single
// precision log and sin/cos coefficients, rounded to float).
constexpr float kLogP0 = 0x1.204376p-4f;
constexpr float kLogP1 = -0x1.d7a37p-4f;
constexpr float kLogP2 = 0x1.de4a34p-4f;
constexpr float kLogP3 = -0x1.fcba9ep-4f;
constexpr float kLogP4 = 0x1.23d37ep-3f;
constexpr float kLogP5 = -0x1.555cap-3f;
constexpr float kLogP6 = 0x1.999d58p-3f;
constexpr float kLogP7 = -0x1.fffff8p-3f;
constexpr float kLogP8 = 0x1.555554p-2f;
constexpr float kLogQ1 = -0x1.bd0106p-13f;  // log(2) = Q2 - Q1, split for extra precision
constexpr float kLogQ2 = 0x1.63p-1f;
constexpr float kSqrtHalf = 0x1.6a09e6p-1f;
constexpr uint32_t kMinNormalBits = 0x00800000u;
constexpr uint32_t kExponentBits = 0x7f800000u;
constexpr float kTwoPi = 0x1.921fb6p+2f;    // float(2 pi)
constexpr float kFourOverPi = 0x1.45f306p+0f;
constexpr float kMinusPiOver4A = -0x1.92p-1f;  // -pi/4 = A + B + C, in three floats
constexpr float kMinusPiOver4B = -0x1.fb4p-13f;
constexpr float kMinusPiOver4C = -0x1.4442d2p-25f;
constexpr float kCosP0 = 0x1.99eb9cp-16f;
constexpr float kCosP1 = -0x1.6c0c34p-10f;
constexpr float kCosP2 = 0x1.55554ap-5f;
constexpr float kSinP0 = -0x1.9943f2p-13f;
constexpr float kSinP1 = 0x1.11073cp-7f;
constexpr float kSinP2 = -0x1.555546p-3f;

// Natural log of u in (0, 1], as torch's AVX2 kernel computes it: u = m * 2^k with m in
// [sqrt(1/2), sqrt(2)), log(u) = k log(2) + log(m), log(1 + x) by a degree-9 polynomial.
float log_like_torch_avx2(float u) {
    if (!(u > 0.0f)) return float_of(0xffffffffu);  // torch ORs an all-ones mask in: a NaN
    const float clamped = u > float_of(kMinNormalBits) ? u : float_of(kMinNormalBits);
    const uint32_t b = bits_of(clamped);
    const int32_t exponent = static_cast<int32_t>(b >> 23) - 127;
    const float m = float_of((b & ~kExponentBits) | bits_of(0.5f));  // in [0.5, 1)
    float e = static_cast<float>(exponent) + 1.0f;
    const bool small = m < kSqrtHalf;
    e = e - (small ? 1.0f : 0.0f);
    float x = m + -1.0f;
    x = x + (small ? m : 0.0f);  // 2m - 1 when m < sqrt(1/2), else m - 1 (both exact)
    const float z = x * x;
    float y = kLogP0;
    // torch's binary fuses each step of the polynomial.
    y = std::fma(y, x, kLogP1);
    y = std::fma(y, x, kLogP2);
    y = std::fma(y, x, kLogP3);
    y = std::fma(y, x, kLogP4);
    y = std::fma(y, x, kLogP5);
    y = std::fma(y, x, kLogP6);
    y = std::fma(y, x, kLogP7);
    y = std::fma(y, x, kLogP8);
    const float e_q1 = e * kLogQ1;
    y = x * y;
    y = std::fma(y, z, e_q1);    // y * z + e * Q1, fused
    y = std::fma(-z, 0.5f, y);   // y - z / 2, fused (z / 2 is exact anyway)
    x = x + y;
    return std::fma(e, kLogQ2, x);  // x + e * Q2, fused
}

// sin and cos of theta in [0, 2 pi) as torch's AVX2 kernel computes them: reduce by the
// multiple of pi/4 (even octant) in extended precision, then one polynomial for each.
void sincos_like_torch_avx2(float theta, float & sin_out, float & cos_out) {
    const uint32_t theta_bits = bits_of(theta);
    const float ax = float_of(theta_bits & 0x7fffffffu);
    uint32_t sign_sin = theta_bits & 0x80000000u;
    const float scaled = ax * kFourOverPi;
    // cvttps2dq: truncation; out-of-range values give INT32_MIN (not reached for theta < 2 pi).
    const int32_t truncated = (scaled < 2147483648.0f) ? static_cast<int32_t>(scaled)
                                                       : std::numeric_limits<int32_t>::min();
    const uint32_t j1 = static_cast<uint32_t>(truncated) + 1u;
    const uint32_t j = j1 & ~1u;
    const float yf = static_cast<float>(static_cast<int32_t>(j));
    sign_sin ^= (j1 & 4u) << 29;
    const bool first_poly_for_cos = (j1 & 2u) == 0;
    const uint32_t sign_cos = (~(j - 2u) & 4u) << 29;
    float x = std::fma(yf, kMinusPiOver4A, ax);  // each step fused in torch's binary
    x = std::fma(kMinusPiOver4B, yf, x);
    x = std::fma(yf, kMinusPiOver4C, x);
    const float z = x * x;
    const float half_z = z * 0.5f;
    float c = std::fma(kCosP0, z, kCosP1);
    c = std::fma(c, z, kCosP2);
    c = z * c;
    c = std::fma(z, c, -half_z);  // z * c - z / 2, fused
    c = c + 1.0f;
    float s = std::fma(kSinP0, z, kSinP1);
    s = std::fma(s, z, kSinP2);
    s = z * s;
    s = std::fma(x, s, x);  // x + x * s, fused
    // Select with masks and subtractions exactly as torch does (this decides signed zeros).
    const float s_sel = first_poly_for_cos ? s : 0.0f;
    const float c_sel = first_poly_for_cos ? 0.0f : c;
    const float c_rest = c - c_sel;
    const float s_rest = s - s_sel;
    const float sin_v = s_sel + c_sel;
    const float cos_v = s_rest + c_rest;
    sin_out = float_of(bits_of(sin_v) ^ sign_sin);
    cos_out = float_of(bits_of(cos_v) ^ sign_cos);
}

void normal_fill_16_avx2(float * data, float mean, float stdv) {
    for (int j = 0; j < 8; ++j) {
        const float u1 = 1.0f - data[j];
        const float u2 = data[j + 8];
        const float radius = std::sqrt(log_like_torch_avx2(u1) * -2.0f);
        const float theta = kTwoPi * u2;
        float s, c;
        sincos_like_torch_avx2(theta, s, c);
        const float n1 = radius * c;
        const float n2 = radius * s;
        data[j] = std::fma(n1, stdv, mean);  // fused in torch's binary
        data[j + 8] = std::fma(n2, stdv, mean);
    }
}

// torch's portable kernel: the C library's float log/cos/sin, theta rounded from double.
void normal_fill_16_scalar(float * data, float mean, float stdv) {
    constexpr double kPi = 3.14159265358979323846;
    for (int j = 0; j < 8; ++j) {
        const float u1 = 1.0f - data[j];
        const float u2 = data[j + 8];
        const float radius = std::sqrt(-2.0f * std::log(u1));
        const float theta = static_cast<float>(2.0 * kPi * static_cast<double>(u2));
        const float c = std::cos(theta);
        const float s = std::sin(theta);
        const float n1 = radius * c;
        const float n2 = radius * s;
        const float a = n1 * stdv;
        const float b = n2 * stdv;
        data[j] = a + mean;
        data[j + 8] = b + mean;
    }
}

} // namespace

// ---------------------------------------------------------------------------------------------
// TorchCpuGenerator

TorchCpuGenerator::TorchCpuGenerator(uint64_t seed, TorchNormalKernel kernel) : kernel_(kernel) {
    manual_seed(seed);
}

void TorchCpuGenerator::manual_seed(uint64_t seed) {
    seed_ = seed;
    engine_.seed_with(static_cast<uint32_t>(seed & 0xffffffffu));
    next_double_normal_.reset();
}

uint32_t TorchCpuGenerator::random() { return engine_.next(); }

uint64_t TorchCpuGenerator::random64() {
    const uint64_t high = engine_.next();
    const uint64_t low = engine_.next();
    return (high << 32) | low;
}

float TorchCpuGenerator::uniform_float() {
    return static_cast<float>(random() & 0xffffffu) * 0x1p-24f;
}

double TorchCpuGenerator::uniform_double() {
    return static_cast<double>(random64() & ((uint64_t{1} << 53) - 1)) * 0x1p-53;
}

double TorchCpuGenerator::normal_double() {
    constexpr double kPi = 3.14159265358979323846;
    const double mean = 0.0;
    const double stdv = 1.0;
    double value;
    if (next_double_normal_) {
        value = *next_double_normal_;
        next_double_normal_.reset();
    } else {
        const double u1 = uniform_double();
        const double u2 = uniform_double();
        const double r = std::sqrt(-2.0 * std::log1p(-u2));
        const double theta = 2.0 * kPi * u1;
        next_double_normal_ = r * std::sin(theta);
        value = r * std::cos(theta);
    }
    const double scaled = value * stdv;  // torch applies mean and std even when they are 0 and 1
    return scaled + mean;
}

void TorchCpuGenerator::randn(float * out, int64_t n) {
    if (n < 0) throw RangeError("randn: negative element count");
    if (n < 16) {
        for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(normal_double());
        return;
    }
    void (*fill16)(float *, float, float) =
        kernel_ == TorchNormalKernel::kAvx2 ? normal_fill_16_avx2 : normal_fill_16_scalar;
    const float mean = 0.0f;
    const float stdv = 1.0f;
    for (int64_t i = 0; i < n; ++i) out[i] = uniform_float();
    for (int64_t i = 0; i + 16 <= n; i += 16) fill16(out + i, mean, stdv);
    if (n % 16 != 0) {
        float * tail = out + n - 16;
        for (int i = 0; i < 16; ++i) tail[i] = uniform_float();
        fill16(tail, mean, stdv);
    }
}

HostTensor TorchCpuGenerator::randn(const std::vector<int64_t> & shape) {
    for (int64_t d : shape) {
        if (d < 0) throw RangeError("randn: negative dimension in shape");
    }
    HostTensor tensor(shape);
    randn(tensor.data.data(), static_cast<int64_t>(tensor.data.size()));
    return tensor;
}

HostTensor torch_randn(const std::vector<int64_t> & shape, uint64_t seed, TorchNormalKernel kernel) {
    TorchCpuGenerator generator(seed, kernel);
    return generator.randn(shape);
}

TorchNormalKernel torch_normal_kernel_from_name(const std::string & name) {
    if (name == "avx2") return TorchNormalKernel::kAvx2;
    if (name == "scalar") return TorchNormalKernel::kScalar;
    throw RangeError("Expected kernel to be one of avx2, scalar");
}

const char * torch_normal_kernel_name(TorchNormalKernel kernel) {
    return kernel == TorchNormalKernel::kAvx2 ? "avx2" : "scalar";
}

void check_draw_shape(const std::vector<int64_t> & shape) {
    double count = 1;
    for (int64_t d : shape) {
        if (d < 1 || d > kMaxDrawElements) throw RangeError("Expected shape to hold positive integers");
        count *= static_cast<double>(d);
    }
    if (count > static_cast<double>(kMaxDrawElements)) {
        throw RangeError("Expected at most " + std::to_string(kMaxDrawElements) + " values in a draw");
    }
}

} // namespace sd
