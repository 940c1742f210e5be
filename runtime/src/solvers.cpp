// Per-step t, dt and multistep coefficients of the Euler and Adams samplers (mirrors
// ddt_export/solvers.py). The coefficients are evaluated as numpy evaluates the Python ones:
// the Lagrange numerator built from its roots as numpy.polynomial's fromroots pairs them
// (sorted roots, (u - r0)(u - r1), then times (u - r2)), integrated term by term (c_j / (j + 1)),
// evaluated by Horner at the step h, divided by the product of the node differences, normalised
// by their left-to-right sum, then rounded to float32. Every operation is one double rounding
// (this file is compiled with -ffp-contract=off), so the float32 weights equal Python's.

#include "solvers.h"

#include <algorithm>

namespace ddt::detail {

namespace {

/// Coefficients (constant term first) of prod_m (u - roots[m]), multiplied in numpy's pairing
/// (polyutils._fromroots with polymul = np.convolve); at most 3 roots (order 4).
std::vector<double> from_roots(std::vector<double> roots) {
  std::sort(roots.begin(), roots.end());
  if (roots.empty()) return {1.0};
  if (roots.size() == 1) return {-roots[0], 1.0};
  // (u - r0)(u - r1): convolve([-r0, 1], [-r1, 1])
  std::vector<double> c = {-roots[0] * -roots[1], -roots[0] * 1.0 + 1.0 * -roots[1], 1.0};
  if (roots.size() == 2) return c;
  // times (u - r2): convolve([c0, c1, c2], [-r2, 1]), each output a dot product in index order
  const double r = -roots[2];
  return {c[0] * r, c[0] * 1.0 + c[1] * r, c[1] * 1.0 + c[2] * r, c[2] * 1.0};
}

/// The integral from 0 to h of the polynomial `c` (polyint with lbnd 0, then polyval at h by Horner).
double integral(const std::vector<double>& c, double h) {
  std::vector<double> p(c.size() + 1, 0.0);  // p[0] = 0: the antiderivative vanishes at 0
  for (size_t j = 0; j < c.size(); ++j) p[j + 1] = c[j] / static_cast<double>(j + 1);
  double acc = p.back();
  for (size_t m = p.size() - 1; m-- > 0;) acc = p[m] + acc * h;
  return acc;  // minus its value at 0, which is exactly 0
}

}  // namespace

int Steps::history() const {
  size_t most = 1;
  for (const std::vector<float>& c : coefficients) most = std::max(most, c.size());
  return static_cast<int>(most);
}

std::vector<float> adams_coefficients(const std::vector<float>& grid, int i, int k) {
  const double a = grid[i], b = grid[i + 1];
  std::vector<double> nodes;  // oldest first, as the official pred_trajectory[-k:]
  for (int m = i - k + 1; m <= i; ++m) nodes.push_back(static_cast<double>(grid[m]) - a);
  const double h = b - a;
  std::vector<double> ints;
  for (size_t j = 0; j < nodes.size(); ++j) {
    std::vector<double> others;
    double denom = 1.0;
    bool first = true;
    for (size_t m = 0; m < nodes.size(); ++m) {
      if (m == j) continue;
      others.push_back(nodes[m]);
      const double d = nodes[j] - nodes[m];
      denom = first ? d : denom * d;  // np.prod, left to right
      first = false;
    }
    ints.push_back(integral(from_roots(others), h) / denom);
  }
  double total = 0.0;  // Python's sum(), left to right
  for (double v : ints) total += v;
  std::vector<float> out;
  for (double v : ints) out.push_back(static_cast<float>(v / total));
  return out;
}

Steps plan_steps(int num_steps, std::optional<double> last_step, double timeshift, const std::string& sampler, int order) {
  const std::vector<float> grid = timesteps(num_steps, last_step, timeshift);  // N + 1 float32
  Steps steps;
  for (int i = 0; i < num_steps; ++i) steps.dt.push_back(grid[i + 1] - grid[i]);  // float32, as the official timedeltas
  if (sampler == "euler") {
    steps.t.assign(grid.begin(), grid.end() - 1);
    steps.coefficients.assign(num_steps, {1.0f});
    return steps;
  }
  steps.t.assign(num_steps, 0.0f);
  for (int i = 1; i < num_steps; ++i) steps.t[i] = steps.t[i - 1] + steps.dt[i - 1];  // the official t_cur += dt, float32
  for (int i = 0; i < num_steps; ++i) steps.coefficients.push_back(adams_coefficients(grid, i, std::min(order, i + 1)));
  return steps;
}

Steps plan_steps(const SamplerSettings& settings) {
  return plan_steps(settings.num_steps, settings.last_step, settings.timeshift, settings.sampler, static_cast<int>(settings.order));
}

}  // namespace ddt::detail
