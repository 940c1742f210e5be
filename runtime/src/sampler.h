// The flow-matching loop (Euler, or the official Adams multistep sampler) with CFG and encoder
// sharing (mirrors ddt_export.sampler.sample and advance).
#pragma once

#include <functional>
#include <map>
#include <vector>

#include "backend.h"
#include "ddt/runtime.h"
#include "solvers.h"

namespace ddt::detail {

/// w at each step: the guidance inside the strict interval lo < t < hi, else 1 (the official loops'
/// rule). The official loops compare a float32 t with the bounds, so the bounds round to float32
/// too; t is the sampler's own, steps.t (the grid point for Euler, the running sum for Adams).
/// (sampler.py::guidance_scales)
std::vector<double> guidance_scales(const SamplerSettings& settings, const Steps& steps);

/// Where the unconditional half of the CFG batch is needed (sampler.py::cfg_halves).
struct CfgHalves {
  std::map<int, bool> encode_both;  // recompute step -> the encoder runs both halves there
  std::vector<bool> decode_both;    // per step: the decoder runs both halves

  /// Some call runs the conditional half alone.
  bool any_cond_only() const;
};

/// The decoder needs the unconditional half wherever w != 1 (elsewhere v = vu + 1 (vc - vu) is vc).
/// The encoder at a recompute step r needs it iff some step in [r, next recompute) is guided, since
/// its state serves every one of them. `full_cfg`: both halves at every call, as the official sampler.
CfgHalves cfg_halves(const std::vector<double>& scales, const std::vector<int>& recompute, bool full_cfg);

/// x += dt * sum_j c_j v_(i-k+1+j), in place, in the official order of operations (each c_j v_j,
/// summed, times dt), one float32 rounding per operation (sampler.py::advance). history[m % size]
/// holds the guided v of step m. Euler (one slot) scales its v in place; Adams sums into the two
/// `work` buffers so that its history stays intact for the next steps.
void advance(std::vector<float>& x, std::vector<std::vector<float>>& history, std::vector<std::vector<float>>& work, int i,
             const std::vector<float>& coefficients, float dt);

/// Integrates noise (B, C, H, W) at t = 0 to latents at t = 1; returns x (B, C, H, W). Calls run
/// only the conditional half (rows B:2B) where guidance is off, unless `full_cfg`.
std::vector<float> sample(Runner& runner, const std::vector<float>& noise, const std::vector<int64_t>& labels,
                          int64_t null_class, const SamplerSettings& settings, const std::vector<int>& recompute,
                          const std::function<void(int)>& callback, bool full_cfg = false);

}  // namespace ddt::detail
