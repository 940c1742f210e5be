// Seeded noise bit for bit as torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed),
// dtype=float32): torch's mt19937 and its CPU normal kernel, reimplemented without LibTorch.
//
// torch.randn on the CPU: below 16 values, one Box-Muller pair in double per two values (the
// second one cached in the generator); from 16 values on, all values first drawn as float
// uniforms, then transformed 16 at a time (8 pairs), the last 16 redrawn and redone when the
// size is not a multiple of 16. The transform is libm in torch's DEFAULT kernels and the
// avx_mathfun polynomials in its AVX2 ones (torch_cpu.h says which this machine runs).

#include <cmath>
#include <optional>
#include <random>

#include "cephes_float.h"
#include "ddt/runtime.h"
#include "torch_cpu.h"

namespace ddt {

namespace {

constexpr double kPi = 3.14159265358979323846;

/// at::CPUGeneratorImpl: a 32-bit mt19937 seeded with the low 32 bits of the seed (the standard
/// initialisation, as std::mt19937), plus the cached second value of a double Box-Muller pair.
struct TorchGenerator {
  explicit TorchGenerator(uint64_t seed) : engine(static_cast<uint32_t>(seed & 0xffffffffu)) {}
  std::mt19937 engine;
  std::optional<double> next_normal;

  uint32_t random() { return static_cast<uint32_t>(engine()); }
  uint64_t random64() {
    const uint64_t hi = random();
    const uint64_t lo = random();
    return (hi << 32) | lo;
  }
  float uniform_float() { return static_cast<float>(random() & 0xffffffu) * (1.0f / 16777216.0f); }
  double uniform_double() {
    return static_cast<double>(random64() & ((uint64_t{1} << 53) - 1)) * (1.0 / 9007199254740992.0);
  }
  /// at::normal_distribution<double>(0, 1)
  double normal() {
    if (next_normal) {
      const double v = *next_normal;
      next_normal.reset();
      return v * 1.0 + 0.0;
    }
    const double u1 = uniform_double();
    const double u2 = uniform_double();
    const double r = std::sqrt(-2.0 * std::log1p(-u2));
    const double theta = 2.0 * kPi * u1;
    next_normal = r * std::sin(theta);
    return r * std::cos(theta) * 1.0 + 0.0;
  }
};

// Box-Muller on 16 uniforms in place: pairs (j, j + 8), mean 0 and std 1 applied as an FMA.
void normal_16_avx2(float* d) {
  const float two_pi = static_cast<float>(2.0f * kPi);
  for (int j = 0; j < 8; ++j) {
    const float u1 = 1.0f - d[j];
    const float u2 = d[j + 8];
    const float radius = std::sqrt(-2.0f * detail::cephes_logf(u1));
    const float theta = two_pi * u2;
    float s, c;
    detail::cephes_sincosf(theta, &s, &c);
    d[j] = std::fma(radius * c, 1.0f, 0.0f);
    d[j + 8] = std::fma(radius * s, 1.0f, 0.0f);
  }
}

void normal_16_default(float* d) {
  for (int j = 0; j < 8; ++j) {
    const float u1 = 1.0f - d[j];
    const float u2 = d[j + 8];
    const float radius = std::sqrt(-2.0f * std::log(u1));
    const float theta = static_cast<float>(2.0f * kPi * static_cast<double>(u2));
    d[j] = std::fma(radius * std::cos(theta), 1.0f, 0.0f);
    d[j + 8] = std::fma(radius * std::sin(theta), 1.0f, 0.0f);
  }
}

}  // namespace

Array seeded_noise(int64_t batch, const std::vector<int64_t>& shape, uint64_t seed) {
  std::vector<int64_t> full{batch};
  full.insert(full.end(), shape.begin(), shape.end());
  int64_t n = 1;
  for (int64_t d : full) {
    if (d < 0) throw Error("noise shape has a negative dimension");
    n *= d;
  }
  Array out{full, std::vector<float>(static_cast<size_t>(n))};
  float* data = out.data.data();
  TorchGenerator gen(seed);
  if (n < 16) {
    for (int64_t i = 0; i < n; ++i) data[i] = static_cast<float>(gen.normal());
    return out;
  }
  void (*normal_16)(float*) =
      detail::torch_kernels() == detail::TorchKernels::Avx2 ? normal_16_avx2 : normal_16_default;
  for (int64_t i = 0; i < n; ++i) data[i] = gen.uniform_float();
  for (int64_t i = 0; i + 16 <= n; i += 16) normal_16(data + i);
  if (n % 16 != 0) {  // torch redraws and redoes the last 16
    float* tail = data + n - 16;
    for (int j = 0; j < 16; ++j) tail[j] = gen.uniform_float();
    normal_16(tail);
  }
  return out;
}

}  // namespace ddt
