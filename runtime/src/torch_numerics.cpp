// The two sets of numbers the Python side takes from torch's own CPU kernels, taken from the
// same kernels here so that they are bit-identical: the time grid (torch.linspace rounds
// differently in its vectorised and scalar parts, and the strict guidance-interval test needs
// the very same float32 t) and seeded noise (torch.randn on a seeded CPU generator).

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "ddt/runtime.h"

namespace ddt {

std::vector<float> timesteps(int num_steps, std::optional<double> last_step, double timeshift) {
  if (num_steps < 1) throw Error("steps must be >= 1 (got " + std::to_string(num_steps) + ")");
  const double last = !last_step || num_steps == 1 ? 1.0 / num_steps : *last_step;
  // t = cat([linspace(0, 1 - last, N), [1.0]]) in float32; then t / (t + (1 - t) * shift)
  at::Tensor t = at::cat({at::linspace(0.0, 1.0 - last, num_steps, at::kFloat), at::ones({1}, at::kFloat)});
  t = (t / (t + (1 - t) * timeshift)).contiguous();
  const float* p = t.data_ptr<float>();
  return std::vector<float>(p, p + t.numel());
}

Array seeded_noise(int64_t batch, const std::vector<int64_t>& shape, uint64_t seed) {
  std::vector<int64_t> full{batch};
  full.insert(full.end(), shape.begin(), shape.end());
  // torch.Generator("cpu").manual_seed(seed) == a CPUGeneratorImpl constructed with that seed
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor noise = at::randn(full, gen, at::TensorOptions().dtype(at::kFloat)).contiguous();
  const float* p = noise.data_ptr<float>();
  return Array{full, std::vector<float>(p, p + noise.numel())};
}

}  // namespace ddt
