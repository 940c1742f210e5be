// Finite results only (mirrors ddt_export/finite.py): settings float32 cannot hold are refused
// before any work, and a run whose latents are not finite is an Error naming the setting or input
// that blew up (the noise, the guidance scale, or the grid at the first step whose velocity went
// nan/inf), never latents written with exit 0.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "ddt/runtime.h"

namespace ddt::detail {

/// Refuses, before any work, a guidance scale beyond float32, a last step below float32's
/// resolution near t = 1, or a time grid (t, dt, coefficients) that is not finite in float32.
void check_representable(const SamplerSettings& settings);

bool all_finite(const float* values, size_t n);

/// Why a run's result is not finite, in one line (finite.py::blame): the noise, the guidance scale,
/// or the grid at `step` (0-based; empty where no step's velocity was caught non-finite).
std::string blame(const SamplerSettings& settings, const std::vector<float>& noise, std::optional<int> step);

}  // namespace ddt::detail
