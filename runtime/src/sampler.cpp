// The Euler flow-matching loop, line for line the loop of ddt_export/sampler.py.
//
// Semantics follow the official sampler (sharing_sampling.py): t runs from 0 (noise) to 1
// (data); the CFG batch is [uncond; cond]; guidance applies iff lo < t < hi (strict), else the
// same formula with w = 1; s is reused between recompute steps. All arithmetic is float32, one
// rounding per operation (this file is compiled with -ffp-contract=off: no fused multiply-add),
// so the update rounds exactly as torch's and numpy's elementwise kernels do.

#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "manifest.h"

namespace ddt {

void SamplerSettings::validate() const {
  if (num_steps < 1 || num_steps > kMaxSteps) {
    throw Error("steps must be between 1 and 10,000 (got " + std::to_string(num_steps) + "); the official sampler uses 250");
  }
  const std::pair<const char*, std::optional<double>> knobs[] = {{"guidance scale", guidance},
                                                                 {"guidance interval low end", interval_min},
                                                                 {"guidance interval high end", interval_max},
                                                                 {"timeshift", timeshift},
                                                                 {"last step", last_step}};
  for (const auto& [what, v] : knobs) {
    if (v && !std::isfinite(*v)) throw Error(std::string(what) + " must be a finite number (got " + detail::number_text(*v) + ")");
  }
  if (last_step && !(*last_step > 0 && *last_step < 1)) {
    throw Error("last step must be in (0, 1) (got " + detail::number_text(*last_step) + ")");
  }
  if (!(timeshift > 0)) throw Error("timeshift must be > 0 (got " + detail::number_text(timeshift) + ")");
  if (interval_min > interval_max) {
    throw Error("guidance interval " + detail::number_text(interval_min) + "," + detail::number_text(interval_max) +
                " is reversed; give LO,HI with LO <= HI");
  }
}

namespace detail {

std::vector<float> sample(Runner& runner, const std::vector<float>& noise, const std::vector<int64_t>& labels,
                          int64_t null_class, const SamplerSettings& settings, const std::vector<int>& recompute,
                          const std::function<void(int)>& callback) {
  const size_t B = labels.size();
  const size_t n = noise.size();  // B * C * H * W
  const std::vector<float> grid = timesteps(settings.num_steps, settings.last_step, settings.timeshift);  // N+1
  const std::set<int> refresh(recompute.begin(), recompute.end());
  std::vector<float> x(noise);  // B C H W, updated in place
  std::vector<float> guided(n);  // B C H W scratch
  int64_t* y = runner.y();  // [uncond; cond]
  std::fill(y, y + B, null_class);
  std::copy(labels.begin(), labels.end(), y + B);
  const float* vu = runner.v();  // views into the decoder's output buffer
  const float* vc = runner.v() + n;
  // The official loop compares a float32 t with the bounds, so the bounds round to float32 too.
  const float lo = static_cast<float>(settings.interval_min), hi = static_cast<float>(settings.interval_max);
  for (int i = 0; i < settings.num_steps; ++i) {
    const float dt = grid[i + 1] - grid[i];  // float32 difference, as the official dt
    std::copy(x.begin(), x.end(), runner.x());
    std::copy(x.begin(), x.end(), runner.x() + n);
    if (refresh.count(i)) {
      std::fill(runner.t(), runner.t() + 2 * B, grid[i]);
      runner.encode();  // s for this step; reused until the next recompute step
    }
    runner.decode();
    const float w = lo < grid[i] && grid[i] < hi ? static_cast<float>(settings.guidance) : 1.0f;
    for (size_t k = 0; k < n; ++k) {  // v = vu + w (vc - vu), then x += v dt, one rounding per op
      guided[k] = vc[k];
      guided[k] -= vu[k];
      guided[k] *= w;
      guided[k] += vu[k];
      guided[k] *= dt;
      x[k] += guided[k];
    }
    if (callback) callback(i);
  }
  return x;
}

}  // namespace detail
}  // namespace ddt
