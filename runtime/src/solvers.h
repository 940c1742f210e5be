// The time grid's per-step quantities of each solver: Euler, and the official Adams-Bashforth
// multistep sampler (mirrors ddt_export/solvers.py; computed once per run, outside the loop).
//
// Both solvers step x += dt * sum_j c[i][j] v_(i-k+1+j) over the last k guided velocities;
// Euler is k = 1, c = 1. Euler's t at step i is the grid point t_i. Adams' t is the official
// float32 running sum t += dt from 0, and its coefficients are the integrals over [t_i, t_(i+1)]
// of the Lagrange basis through the last k = min(order, i + 1) grid points, each divided by
// their sum: computed in double on the shifted variable u = t - t_i, then rounded to float32.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ddt/runtime.h"

namespace ddt::detail {

constexpr int kMaxOrder = 4;           // the official pre_integral.py goes to order 4 (solvers.MAX_ORDER)
constexpr int kAdamsDefaultOrder = 2;  // AdamLMSampler's default (solvers.ADAMS_DEFAULT_ORDER)

/// What the loop needs per step i (solvers.py::Steps).
struct Steps {
  std::vector<float> t;   // (N): fed to the encoder and compared with the guidance interval
  std::vector<float> dt;  // (N): t_(i+1) - t_i on the grid, in float32
  std::vector<std::vector<float>> coefficients;  // step i: k_i weights of v_(i-k_i+1) .. v_i, oldest first

  /// How many past guided velocities the loop must keep.
  int history() const;
};

/// t, dt and coefficients of `sampler` ("euler" or "adams") at `order` on the grid (solvers.py::plan_steps).
Steps plan_steps(int num_steps, std::optional<double> last_step, double timeshift, const std::string& sampler = "euler",
                 int order = 1);
/// The same for these settings (SamplerSettings.steps()).
Steps plan_steps(const SamplerSettings& settings);

/// Weights of v at grid[i-k+1..i] for the step [grid[i], grid[i+1]], in double, rounded to float32
/// (solvers.py::adams_coefficients, operation for operation as numpy evaluates it).
std::vector<float> adams_coefficients(const std::vector<float>& grid, int i, int k);

}  // namespace ddt::detail
