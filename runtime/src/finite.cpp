// Finite results only (finite.h; the messages are ddt_export/finite.py's, word for word).

#include "finite.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "sampler.h"
#include "solvers.h"
#include "text.h"

namespace ddt::detail {

namespace {

constexpr double kFloat32Max = std::numeric_limits<float>::max();
constexpr double kNoiseTypical = 100.0;     // |z| of standard normal noise never comes near this
constexpr double kGuidanceTypical = 100.0;  // the official samplers use 1 to ~10

bool steps_finite(const Steps& steps) {
  bool ok = all_finite(steps.t.data(), steps.t.size()) && all_finite(steps.dt.data(), steps.dt.size());
  for (const std::vector<float>& c : steps.coefficients) ok = ok && all_finite(c.data(), c.size());
  return ok;
}

}  // namespace

bool all_finite(const float* values, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(values[i])) return false;
  }
  return true;
}

void check_representable(const SamplerSettings& s) {
  if (std::fabs(s.guidance) > kFloat32Max) {
    throw Error("guidance scale " + g_text(s.guidance) + " does not fit in float32 (at most " + g_text(kFloat32Max, 3) +
                "); use e.g. --cfg 3");
  }
  if (s.last_step && 1.0f - static_cast<float>(*s.last_step) == 1.0f) {
    throw Error("last step " + g_text(*s.last_step) + " is below float32's resolution near t = 1; use at least 1e-7");
  }
  if (!steps_finite(plan_steps(s))) {
    throw Error("the time grid of " + std::to_string(s.num_steps) + " steps with timeshift " + g_text(s.timeshift) +
                " is not finite in float32 (" + s.sampler + "); use a timeshift nearer 1 (the official samplers use 1 to 3)");
  }
}

std::string blame(const SamplerSettings& s, const std::vector<float>& noise, std::optional<int> step) {
  const std::string n = std::to_string(s.num_steps);
  const std::string where = step ? " at step " + std::to_string(*step + 1) + " of " + n : "";
  float noise_max = 0.0f;
  for (float v : noise) noise_max = std::max(noise_max, std::fabs(v));  // the noise was checked finite
  if (noise_max > kNoiseTypical) {
    return "the result is not finite: the noise (values up to " + g_text(noise_max, 3) +
           "; standard normal noise stays within ~6) made the model's output overflow float32" + where +
           "; nothing was written. Give standard normal noise, or a --seed";
  }
  const std::vector<double> scales = guidance_scales(s, plan_steps(s));
  bool guided = false;
  for (int i = 0; i < s.num_steps && (!step || i <= *step); ++i) guided = guided || scales[i] != 1.0;
  if (guided && std::fabs(s.guidance) > kGuidanceTypical) {
    return "the result is not finite: guidance scale (--cfg) " + g_text(s.guidance) + " made the guided velocity overflow float32" +
           where + "; nothing was written. Use a guidance scale the model was trained for (the official samplers use 1 to ~10)";
  }
  const std::string t = step ? " (t = " + g_text(plan_steps(s).t[*step], 4) + ")" : "";
  const std::string last = s.last_step ? g_text(*s.last_step) : "default";
  return "the result is not finite: the model's output became nan/inf" + where + t + " with guidance " + g_text(s.guidance) +
         ", timeshift " + g_text(s.timeshift) + ", last step " + last + ", " + n + " steps (" + s.sampler +
         "); nothing was written. Try settings nearer the build's defaults (`ddt-export inspect BUILD`)";
}

}  // namespace ddt::detail
