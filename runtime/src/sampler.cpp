// The flow-matching loop (Euler or the official Adams multistep sampler), line for line the loop
// of ddt_export/sampler.py.
//
// Semantics follow the official samplers (sharing_sampling.py, adam_sampling.py): t runs from 0
// (noise) to 1 (data); the CFG batch is [uncond; cond]; guidance applies iff lo < t < hi
// (strict), else the same formula with w = 1, which is the conditional velocity alone: there the
// graphs run only the conditional half (cfg_halves), unless full_cfg asks for the official full
// batch; s is reused between recompute steps; Adams keeps the guided velocities of the last
// `order` steps. The solver is data (solvers.h): per-step t, dt and multistep coefficients,
// Euler being the one-coefficient case. All arithmetic is float32, one rounding per operation
// (this file is compiled with -ffp-contract=off: no fused multiply-add), so the update rounds
// exactly as torch's and numpy's elementwise kernels do.

#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "manifest.h"
#include "solvers.h"
#include "text.h"

namespace ddt {

namespace {

/// 10000 -> "10,000", as Python's f"{n:,}".
std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n);
  for (int i = static_cast<int>(digits.size()) - 3; i > (digits[0] == '-' ? 1 : 0); i -= 3) digits.insert(i, ",");
  return digits;
}

/// sampler.py::SamplerSettings._validate_solver: which sampler, and its order.
void validate_solver(const SamplerSettings& s) {
  if (s.sampler != "euler" && s.sampler != "adams") {
    throw Error("unknown sampler " + detail::string_repr(s.sampler) + "; choose euler or adams");
  }
  const std::string most = std::to_string(detail::kMaxOrder);
  if (s.order < 1 || s.order > detail::kMaxOrder) {
    throw Error("order must be from 1 to " + most + " (got " + std::to_string(s.order) + "); the official Adams sampler goes to " +
                most);
  }
  if (s.sampler == "euler" && s.order != 1) {
    throw Error("order " + std::to_string(s.order) + " is for the Adams sampler (Euler is order 1); add --sampler adams");
  }
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
  validate_solver(*this);
}

namespace detail {

std::vector<double> guidance_scales(const SamplerSettings& settings, const Steps& steps) {
  const float lo = static_cast<float>(settings.interval_min), hi = static_cast<float>(settings.interval_max);
  std::vector<double> scales(settings.num_steps);
  for (int i = 0; i < settings.num_steps; ++i) scales[i] = lo < steps.t[i] && steps.t[i] < hi ? settings.guidance : 1.0;
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

namespace {

/// The guided velocity into `guided`: v = vu + w (vc - vu) without temporaries, or vc where w = 1.
void guide(std::vector<float>& guided, const float* vu, const float* vc, bool both, double scale) {
  const size_t n = guided.size();
  if (both) {
    const float w = static_cast<float>(scale);  // numpy: a Python float times a float32 array is float32
    for (size_t k = 0; k < n; ++k) {
      guided[k] = vc[k];
      guided[k] -= vu[k];
      guided[k] *= w;
      guided[k] += vu[k];
    }
  } else {  // w = 1: v = vc
    std::copy(vc, vc + n, guided.begin());
  }
}

}  // namespace

void advance(std::vector<float>& x, std::vector<std::vector<float>>& history, std::vector<std::vector<float>>& work, int i,
             const std::vector<float>& coefficients, float dt) {
  const size_t n = x.size();
  const int slots = static_cast<int>(history.size());
  if (slots == 1) {  // Euler: x += v dt
    std::vector<float>& v = history[0];
    for (size_t e = 0; e < n; ++e) v[e] *= dt;
    for (size_t e = 0; e < n; ++e) x[e] += v[e];
    return;
  }
  std::vector<float>& acc = work[0];
  std::vector<float>& term = work[1];
  const int k = static_cast<int>(coefficients.size());
  for (int j = 0; j < k; ++j) {
    std::vector<float>& target = j == 0 ? acc : term;
    const std::vector<float>& v = history[(i - k + 1 + j) % slots];
    const float c = coefficients[j];
    for (size_t e = 0; e < n; ++e) target[e] = v[e] * c;
    if (j) {
      for (size_t e = 0; e < n; ++e) acc[e] += term[e];
    }
  }
  for (size_t e = 0; e < n; ++e) acc[e] *= dt;
  for (size_t e = 0; e < n; ++e) x[e] += acc[e];
}

std::vector<float> sample(Runner& runner, const std::vector<float>& noise, const std::vector<int64_t>& labels,
                          int64_t null_class, const SamplerSettings& settings, const std::vector<int>& recompute,
                          const std::function<void(int)>& callback, bool full_cfg) {
  const size_t B = labels.size();
  const size_t n = noise.size();  // B * C * H * W
  const Steps steps = plan_steps(settings);  // t, dt and coefficients per step
  const std::vector<double> scales = guidance_scales(settings, steps);
  const CfgHalves halves = cfg_halves(scales, recompute, full_cfg);
  std::vector<float> x(noise);  // B C H W, updated in place
  const int slots = steps.history();
  std::vector<std::vector<float>> history(slots, std::vector<float>(n));  // k x (B C H W) guided v (a ring)
  std::vector<std::vector<float>> work(slots > 1 ? 2 : 0, std::vector<float>(n));  // Adams' two sums
  int64_t* y = runner.y();  // [uncond; cond]
  std::fill(y, y + B, null_class);
  std::copy(labels.begin(), labels.end(), y + B);
  const float* vu = runner.v();  // views into the decoder's output buffer
  const float* vc = runner.v() + n;
  for (int i = 0; i < settings.num_steps; ++i) {
    const auto enc = halves.encode_both.find(i);
    const bool decode_both = halves.decode_both[i];
    const bool both = decode_both || (enc != halves.encode_both.end() && enc->second);  // does any graph read rows 0:B now?
    if (both) std::copy(x.begin(), x.end(), runner.x());
    std::copy(x.begin(), x.end(), runner.x() + n);
    if (enc != halves.encode_both.end()) {
      std::fill(runner.t(), runner.t() + 2 * B, steps.t[i]);
      runner.encode(!enc->second);  // s for this step; reused until the next recompute step
    }
    runner.decode(!decode_both);
    guide(history[i % slots], vu, vc, decode_both, scales[i]);
    advance(x, history, work, i, steps.coefficients[i], steps.dt[i]);
    if (callback) callback(i);
  }
  return x;
}

}  // namespace detail
}  // namespace ddt
