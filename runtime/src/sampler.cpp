// The Euler flow-matching loop, line for line the loop of ddt_export/sampler.py.
//
// Semantics follow the official sampler (sharing_sampling.py): t runs from 0 (noise) to 1
// (data); the CFG batch is [uncond; cond]; guidance applies iff lo < t < hi (strict), else the
// same formula with w = 1, which is the conditional velocity alone: there the graphs run only the
// conditional half (cfg_halves), unless full_cfg asks for the official full batch; s is reused
// between recompute steps. All arithmetic is float32, one rounding per operation (this file is
// compiled with -ffp-contract=off: no fused multiply-add), so the update rounds exactly as
// torch's and numpy's elementwise kernels do.

#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "manifest.h"

namespace ddt {

namespace {

/// 10000 -> "10,000", as Python's f"{n:,}".
std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n);
  for (int i = static_cast<int>(digits.size()) - 3; i > (digits[0] == '-' ? 1 : 0); i -= 3) digits.insert(i, ",");
  return digits;
}

}  // namespace

// The same checks, order and messages as ddt_export.sampler.SamplerSettings.validate
// (tests/runtime/test_cpp_limits.py holds both to the same answers on boundary values).
void SamplerSettings::validate() const {
  if (num_steps < 1 || num_steps > kMaxSteps) {
    throw Error("steps must be between 1 and " + with_commas(kMaxSteps) + " (got " + std::to_string(num_steps) +
                "); the official sampler uses 250");
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

std::vector<double> guidance_scales(const SamplerSettings& settings, const std::vector<float>& grid) {
  const float lo = static_cast<float>(settings.interval_min), hi = static_cast<float>(settings.interval_max);
  std::vector<double> scales(settings.num_steps);
  for (int i = 0; i < settings.num_steps; ++i) scales[i] = lo < grid[i] && grid[i] < hi ? settings.guidance : 1.0;
  return scales;
}

bool CfgHalves::any_cond_only() const {
  for (const auto& [step, both] : encode_both) {
    if (!both) return true;
  }
  return std::find(decode_both.begin(), decode_both.end(), false) != decode_both.end();
}

CfgHalves cfg_halves(const std::vector<double>& scales, const std::vector<int>& recompute, bool full_cfg) {
  CfgHalves out;
  for (double w : scales) out.decode_both.push_back(full_cfg || w != 1.0);
  std::vector<int> bounds(recompute);
  bounds.push_back(static_cast<int>(scales.size()));
  for (size_t j = 0; j + 1 < bounds.size(); ++j) {  // [r, next recompute)
    bool any = false;
    for (int i = bounds[j]; i < bounds[j + 1]; ++i) any = any || out.decode_both[i];
    out.encode_both[bounds[j]] = any;
  }
  return out;
}

std::vector<float> sample(Runner& runner, const std::vector<float>& noise, const std::vector<int64_t>& labels,
                          int64_t null_class, const SamplerSettings& settings, const std::vector<int>& recompute,
                          const std::function<void(int)>& callback, bool full_cfg) {
  const size_t B = labels.size();
  const size_t n = noise.size();  // B * C * H * W
  const std::vector<float> grid = timesteps(settings.num_steps, settings.last_step, settings.timeshift);  // N+1
  const std::vector<double> scales = guidance_scales(settings, grid);
  const CfgHalves halves = cfg_halves(scales, recompute, full_cfg);
  std::vector<float> x(noise);  // B C H W, updated in place
  std::vector<float> guided(n);  // B C H W scratch
  int64_t* y = runner.y();  // [uncond; cond]
  std::fill(y, y + B, null_class);
  std::copy(labels.begin(), labels.end(), y + B);
  const float* vu = runner.v();  // views into the decoder's output buffer
  const float* vc = runner.v() + n;
  for (int i = 0; i < settings.num_steps; ++i) {
    const float dt = grid[i + 1] - grid[i];  // float32 difference, as the official dt
    const auto enc = halves.encode_both.find(i);
    const bool decode_both = halves.decode_both[i];
    const bool both = decode_both || (enc != halves.encode_both.end() && enc->second);  // does any graph read rows 0:B now?
    if (both) std::copy(x.begin(), x.end(), runner.x());
    std::copy(x.begin(), x.end(), runner.x() + n);
    if (enc != halves.encode_both.end()) {
      std::fill(runner.t(), runner.t() + 2 * B, grid[i]);
      runner.encode(!enc->second);  // s for this step; reused until the next recompute step
    }
    runner.decode(!decode_both);
    if (decode_both) {  // v = vu + w (vc - vu), then x += v dt, one rounding per op
      const float w = static_cast<float>(scales[i]);  // numpy: a Python float times a float32 array is float32
      for (size_t k = 0; k < n; ++k) {
        guided[k] = vc[k];
        guided[k] -= vu[k];
        guided[k] *= w;
        guided[k] += vu[k];
      }
    } else {  // w = 1: v = vc
      std::copy(vc, vc + n, guided.begin());
    }
    for (size_t k = 0; k < n; ++k) {
      guided[k] *= dt;
      x[k] += guided[k];
    }
    if (callback) callback(i);
  }
  return x;
}

}  // namespace detail
}  // namespace ddt
