// Scalar float32 replicas of the avx_mathfun log and sincos that torch.randn's AVX2 kernel uses.
#pragma once

namespace ddt::detail {

/// Natural log as avx_mathfun's log256_ps computes it, lane for lane (NaN for x <= 0).
float cephes_logf(float x);
/// Sine and cosine as avx_mathfun's sincos256_ps computes them, lane for lane.
void cephes_sincosf(float x, float* s, float* c);

}  // namespace ddt::detail
