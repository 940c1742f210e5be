// The sampler's time grid: torch.linspace(0, 1 - last_step, N) in float32, then 1, then shifted,
// rounded exactly as torch's CPU kernels round it (the strict guidance-interval test compares
// these very float32 values, so they must be bit-identical to the Python side's).

#include <cmath>

#include "ddt/runtime.h"
#include "torch_cpu.h"

namespace ddt {

namespace {

// torch's linspace kernel: the first half counts up from start, the second half down from end,
// `start + step * i` / `end - step * (N - 1 - i)` in float; the AVX2 build fuses each into one FMA.
std::vector<float> linspace(float start, float end, int steps) {
  if (steps == 1) return {start};  // torch fills a single point with start
  const float step = (end - start) / static_cast<float>(steps - 1);
  const bool fused = detail::torch_kernels() == detail::TorchKernels::Avx2;
  const int halfway = steps / 2;
  std::vector<float> out(steps);
  for (int i = 0; i < steps; ++i) {
    if (i < halfway) {
      const float k = static_cast<float>(i);
      out[i] = fused ? std::fma(step, k, start) : start + step * k;
    } else {
      const float k = static_cast<float>(steps - i - 1);
      out[i] = fused ? std::fma(-step, k, end) : end - step * k;
    }
  }
  return out;
}

}  // namespace

std::vector<float> timesteps(int num_steps, std::optional<double> last_step, double timeshift) {
  if (num_steps < 1 || num_steps > kMaxSteps) {
    throw Error("steps must be between 1 and 10,000 (got " + std::to_string(num_steps) + "); the official sampler uses 250");
  }
  const double last = !last_step || num_steps == 1 ? 1.0 / num_steps : *last_step;
  // t = cat([linspace(0, 1 - last, N), [1.0]]) in float32; then t / (t + (1 - t) * shift),
  // one rounding per tensor operation (this file is compiled with -ffp-contract=off)
  std::vector<float> t = linspace(0.0f, static_cast<float>(1.0 - last), num_steps);
  t.push_back(1.0f);
  const float shift = static_cast<float>(timeshift);  // torch casts the Python scalar to the tensor's float32
  for (float& v : t) {
    float rest = 1.0f - v;
    rest *= shift;
    rest += v;
    v /= rest;
  }
  return t;
}

}  // namespace ddt
