// log and sincos in float32, operation for operation as the AVX2 polynomials (Cephes' logf and
// sinf/cosf via Julien Pommier's avx_mathfun) that torch.randn's AVX2 kernel evaluates, so that
// seeded noise is bit-identical to torch's. The vector code is written as separate multiplies
// and adds, but GCC builds torch's AVX2 kernels with -mfma and contracts each multiply whose
// only use is an add into a fused multiply-add (the first multiply in statement order, where an
// add has two): those are the std::fma calls here. Every other step is one float operation with
// one rounding (this file is compiled with -ffp-contract=off); masks are bit patterns, as in the
// vector code.

#include "cephes_float.h"

#include <cmath>
#include <cstdint>
#include <cstring>

namespace ddt::detail {

namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float masked(float v, bool keep) { return from_bits(keep ? bits(v) : 0u); }  // _mm256_and_ps with a compare mask

// Cephes' coefficients, rounded to float as the vector constants are.
constexpr float kSqrtHalf = static_cast<float>(0.707106781186547524);
constexpr float kLogP[9] = {static_cast<float>(7.0376836292E-2),  static_cast<float>(-1.1514610310E-1),
                            static_cast<float>(1.1676998740E-1),  static_cast<float>(-1.2420140846E-1),
                            static_cast<float>(1.4249322787E-1),  static_cast<float>(-1.6668057665E-1),
                            static_cast<float>(2.0000714765E-1),  static_cast<float>(-2.4999993993E-1),
                            static_cast<float>(3.3333331174E-1)};
constexpr float kLogQ1 = static_cast<float>(-2.12194440e-4);
constexpr float kLogQ2 = static_cast<float>(0.693359375);
constexpr float kMinusDP1 = static_cast<float>(-0.78515625);
constexpr float kMinusDP2 = static_cast<float>(-2.4187564849853515625e-4);
constexpr float kMinusDP3 = static_cast<float>(-3.77489497744594108e-8);
constexpr float kSinP[3] = {static_cast<float>(-1.9515295891E-4), static_cast<float>(8.3321608736E-3),
                            static_cast<float>(-1.6666654611E-1)};
constexpr float kCosP[3] = {static_cast<float>(2.443315711809948E-005), static_cast<float>(-1.388731625493765E-003),
                            static_cast<float>(4.166664568298827E-002)};
constexpr float kFourOverPi = static_cast<float>(1.27323954473516);

}  // namespace

float cephes_logf(float x) {
  const bool invalid = x <= 0.0f;
  const float min_normal = from_bits(0x00800000u);
  x = x > min_normal ? x : min_normal;  // _mm256_max_ps(x, min): the second operand unless x is larger
  int32_t exponent = static_cast<int32_t>(bits(x) >> 23);
  x = from_bits((bits(x) & ~0x7f800000u) | bits(0.5f));  // mantissa in [0.5, 1)
  exponent -= 0x7f;
  float e = static_cast<float>(exponent);
  e = e + 1.0f;
  const bool below = x < kSqrtHalf;
  float tmp = masked(x, below);
  x = x - 1.0f;
  e = e - masked(1.0f, below);
  x = x + tmp;
  const float z = x * x;
  float y = kLogP[0];
  for (int i = 1; i < 9; ++i) y = std::fma(y, x, kLogP[i]);  // y = y * x; y = y + p[i]
  y = y * x;
  tmp = e * kLogQ1;
  y = std::fma(y, z, tmp);         // y = y * z; y = y + e * q1
  y = std::fma(-z, 0.5f, y);       // y = y - z * 0.5
  x = x + y;
  x = std::fma(e, kLogQ2, x);      // x = x + e * q2
  return invalid ? from_bits(bits(x) | 0xffffffffu) : x;  // or-ed with an all-ones mask: NaN
}

void cephes_sincosf(float x, float* s, float* c) {
  uint32_t sign_sin = bits(x) & 0x80000000u;
  x = from_bits(bits(x) & 0x7fffffffu);
  float y = x * kFourOverPi;
  uint32_t j = static_cast<uint32_t>(static_cast<int32_t>(y));  // truncation, as _mm256_cvttps_epi32
  j = (j + 1u) & ~1u;
  y = static_cast<float>(static_cast<int32_t>(j));
  const uint32_t swap_sin = (j & 4u) << 29;
  const bool first_poly = (j & 2u) == 0u;
  x = std::fma(y, kMinusDP1, x);  // x = ((x - y DP1) - y DP2) - y DP3
  x = std::fma(y, kMinusDP2, x);
  x = std::fma(y, kMinusDP3, x);
  const uint32_t sign_cos = (~(j - 2u) & 4u) << 29;
  sign_sin ^= swap_sin;

  const float z = x * x;
  float yc = std::fma(kCosP[0], z, kCosP[1]);
  yc = std::fma(yc, z, kCosP[2]);
  yc = yc * z;
  const float half_z = z * 0.5f;
  yc = std::fma(yc, z, -half_z);  // y = y * z; y = y - z * 0.5
  yc = yc + 1.0f;

  float ys = std::fma(kSinP[0], z, kSinP[1]);
  ys = std::fma(ys, z, kSinP[2]);
  ys = ys * z;
  ys = std::fma(ys, x, x);  // y2 = y2 * x; y2 = y2 + x

  const float sin2 = masked(ys, first_poly);
  const float sin1 = masked(yc, !first_poly);
  ys = ys - sin2;
  yc = yc - sin1;
  *s = from_bits(bits(sin1 + sin2) ^ sign_sin);
  *c = from_bits(bits(yc + ys) ^ sign_cos);
}

}  // namespace ddt::detail
