// Which sampling steps run the encoder: explicit lists, uniform sharing, and the statistical DP.
// Mirrors ddt_export/schedules.py (and through it the official DP): same values, same
// tie-breaks, same messages.

#include <cmath>
#include <limits>
#include <sstream>

#include "ddt/runtime.h"

namespace ddt {

namespace {

std::string list_text(const std::vector<int>& v, size_t limit = 1000) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < v.size() && i < limit; ++i) s << (i ? ", " : "") << v[i];
  s << "]";
  return s.str();
}

std::string num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace

std::vector<int> check_recompute(const std::vector<int>& steps, int num_steps) {
  if (steps.empty() || steps[0] != 0) {
    throw Error("recompute list must start at step 0 (got " + list_text(steps, 5) +
                "); the first step has no state to reuse");
  }
  for (size_t i = 1; i < steps.size(); ++i) {
    if (steps[i] <= steps[i - 1]) throw Error("recompute list must be strictly increasing (got " + list_text(steps) + ")");
  }
  if (steps.back() >= num_steps) {
    throw Error("recompute step " + std::to_string(steps.back()) + " is out of range for " + std::to_string(num_steps) +
                " steps (valid: 0.." + std::to_string(num_steps - 1) + ")");
  }
  return steps;
}

double check_ratio(double ratio) {
  if (!(ratio >= 0.0 && ratio < 1.0)) {
    throw Error("sharing ratio must be in [0, 1) (got " + num(ratio) + "); 0 runs the encoder at every step");
  }
  return ratio;
}

int refresh_rate(double ratio) {
  // Python's round() rounds half to even; nearbyint in the default rounding mode does the same.
  return std::max(1, static_cast<int>(std::nearbyint(1.0 / (1.0 - check_ratio(ratio)))));
}

std::vector<int> uniform_schedule(int num_steps, double ratio) {
  const int R = refresh_rate(ratio);
  std::vector<int> steps;
  for (int i = 0; i < num_steps; i += R) steps.push_back(i);  // i % R == 0
  return steps;
}

int dp_budget(int num_steps, double ratio) { return std::max(1, num_steps / refresh_rate(ratio)); }

std::vector<int> dp_schedule(const Array& sim, int K) {
  if (sim.shape.size() != 2 || sim.shape[0] != sim.shape[1] || sim.shape[0] < 1) {
    throw Error("similarity must be a square N x N matrix");
  }
  for (float v : sim.data) {
    if (!std::isfinite(v)) throw Error("similarity must hold finite floating-point values");
  }
  const int N = static_cast<int>(sim.shape[0]);
  if (K < 1 || K > N) {
    throw Error("budget must be between 1 and the number of steps " + std::to_string(N) + " (got " + std::to_string(K) + ")");
  }
  // E[i][j] = sum over m = j..i of (1 - sim[m][j]): the cost of steps j..i reusing the state of
  // step j. 1 - sim in float32 (the matrix's dtype), the sums in double, as the official lists.
  std::vector<double> E(static_cast<size_t>(N) * N, 0.0);
  for (int i = 0; i < N; ++i) {
    for (int j = 0; j <= i; ++j) {
      const double err = static_cast<double>(1.0f - sim.data[static_cast<size_t>(i) * N + j]);
      E[static_cast<size_t>(i) * N + j] = (i > j ? E[static_cast<size_t>(i - 1) * N + j] : 0.0) + err;
    }
  }
  // C[k][i]: least cost of steps 0..i-1 with k states; P[k][i]: where its last segment starts.
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> C(K + 1, std::vector<double>(N + 1, inf));
  std::vector<std::vector<int>> P(K + 1, std::vector<int>(N + 1, -1));
  for (int i = 1; i <= N; ++i) {
    C[1][i] = E[static_cast<size_t>(i - 1) * N + 0];
    P[1][i] = 0;
  }
  for (int k = 2; k <= K; ++k) {
    for (int i = k; i <= N; ++i) {
      for (int j = k - 1; j <= i - 1; ++j) {
        const double value = C[k - 1][j] + E[static_cast<size_t>(i - 1) * N + j];
        if (value < C[k][i]) {  // strict: the first minimum, as the official loop
          C[k][i] = value;
          P[k][i] = j;
        }
      }
    }
  }
  std::vector<int> steps{N};
  for (int k = K; k >= 1; --k) steps.push_back(P[k][steps.back()]);
  std::vector<int> out(steps.rbegin(), steps.rend());
  out.pop_back();  // K steps starting at 0 (the trailing N is the sentinel)
  return out;
}

std::vector<int> resolve_schedule(int num_steps, const Schedule& s, const Array* sim) {
  if (s.recompute && s.sharing_ratio) throw Error("give either a recompute list or a sharing ratio, not both");
  if (s.recompute) return check_recompute(*s.recompute, num_steps);
  if (!s.sharing_ratio || check_ratio(*s.sharing_ratio) == 0.0) {
    std::vector<int> all(num_steps);
    for (int i = 0; i < num_steps; ++i) all[i] = i;
    return all;
  }
  if (s.method != "dp" && s.method != "uniform") throw Error("unknown schedule '" + s.method + "'; choose dp or uniform");
  if (s.method == "uniform") return uniform_schedule(num_steps, *s.sharing_ratio);
  if (sim == nullptr) {
    throw Error("DP schedule needs a similarity matrix for " + std::to_string(num_steps) +
                " steps; run `ddt-export calibrate BUILD --steps " + std::to_string(num_steps) + "` first");
  }
  if (sim->shape.size() != 2 || sim->shape[0] != num_steps) {
    throw Error("similarity matrix is for " + std::to_string(sim->shape.empty() ? 0 : sim->shape[0]) + " steps, not " +
                std::to_string(num_steps) + "; calibrate for " + std::to_string(num_steps) + " steps");
  }
  return dp_schedule(*sim, dp_budget(num_steps, *s.sharing_ratio));
}

}  // namespace ddt
