// The Euler flow-matching loop with CFG and encoder sharing (mirrors ddt_export.sampler.sample).
#pragma once

#include <functional>
#include <vector>

#include "backend.h"
#include "ddt/runtime.h"

namespace ddt::detail {

/// Integrates noise (B, C, H, W) at t = 0 to latents at t = 1; returns x (B, C, H, W).
std::vector<float> sample(Runner& runner, const std::vector<float>& noise, const std::vector<int64_t>& labels,
                          int64_t null_class, const SamplerSettings& settings, const std::vector<int>& recompute,
                          const std::function<void(int)>& callback);

}  // namespace ddt::detail
