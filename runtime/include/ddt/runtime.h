// ddt-runtime: sample DDT latents from a `ddt-export build` folder in C++, without Python.
//
//   ddt::Pipeline pipe = ddt::Pipeline::open("engines/tiny");   // LibTorch backend
//   ddt::GenerateOptions opts;
//   opts.seed = 0;
//   opts.schedule.sharing_ratio = 0.75;                          // DP over the stored calibration
//   ddt::Result r = pipe.generate({1, 7}, opts);                 // r.latents: (2, C, H, W) float32
//
// The build folder's manifest.json is the only contract: tensor names, shapes, the latent
// shape, the null class, the sampler defaults and the calibrated similarity matrices all come
// from it. The sampling loop mirrors `ddt_export.sampler.sample` line for line, so for the same
// build, labels, noise and schedule the C++ and Python runtimes give the same latents.
//
// Every failure is a ddt::Error whose message is one line naming the problem and the fix.
// This header pulls in neither LibTorch nor TensorRT.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ddt {

/// Bad input or an unusable build folder: one line naming the problem and the fix.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A dense float32 array in C order (latents, noise, similarity matrices).
struct Array {
  std::vector<int64_t> shape;
  std::vector<float> data;

  int64_t numel() const;
};

/// Reads a .npy of float32 or float64 (converted to float32), C order.
Array read_npy(const std::string& path);
/// Writes float32 C-order .npy (format 1.0, as numpy.save), through a temporary file and a rename.
void write_npy(const std::string& path, const Array& array);

/// The official EulerSampler's knobs; a build's defaults come from manifest["sampler"].
struct SamplerSettings {
  int num_steps = 250;
  double guidance = 1.0;
  double interval_min = 0.0;  // guidance applies iff interval_min < t < interval_max (strict)
  double interval_max = 1.0;
  double timeshift = 1.0;
  std::optional<double> last_step;  // empty: 1 / num_steps, as the official sampler

  void validate() const;
};

/// Which steps run the encoder. Neither field set: every step (no sharing).
struct Schedule {
  std::optional<std::vector<int>> recompute;  // explicit steps: start at 0, strictly increasing
  std::optional<double> sharing_ratio;        // fraction of steps that reuse the state, in [0, 1)
  std::string method = "dp";                  // with sharing_ratio: "dp" (stored calibration) or "uniform"
};

struct GenerateOptions {
  std::optional<uint64_t> seed;  // noise = torch.randn on a CPU generator seeded so [default 0]
  std::optional<Array> noise;    // or this noise, (B, C, H, W)
  // Overrides of the build's sampler defaults.
  std::optional<int> num_steps;
  std::optional<double> guidance, interval_min, interval_max, timeshift, last_step;
  Schedule schedule;
  std::function<void(int)> progress;  // called after each step with its index
};

/// Where the time of one generate() went (wall clock, seconds).
struct Timing {
  double loop_seconds = 0;    // the whole sampling loop
  double encode_seconds = 0;  // inside the encoder calls
  double decode_seconds = 0;  // inside the decoder calls
  int encode_calls = 0;
  int decode_calls = 0;
};

struct Result {
  Array latents;               // (B, C, H, W) float32 at t = 1
  std::vector<int> recompute;  // the steps where the encoder ran
  SamplerSettings settings;
  Timing timing;

  double sharing_ratio() const;
};

/// A build folder opened with one backend: "libtorch" (CPU), or "tensorrt" where compiled in.
class Pipeline {
 public:
  static Pipeline open(const std::string& build_dir, const std::string& backend = "libtorch");

  /// Latents for `labels` (class indices); options as above.
  Result generate(const std::vector<int64_t>& labels, const GenerateOptions& options = {}) const;

  const std::string& name() const;
  const std::string& backend() const;
  int64_t num_classes() const;
  int64_t null_class() const;
  std::vector<int64_t> latent_shape() const;  // (C, H, W)
  const SamplerSettings& defaults() const;
  /// The recompute steps a run would use (explicit, uniform, or DP over the stored calibration).
  std::vector<int> schedule(int num_steps, const Schedule& schedule) const;

  Pipeline(Pipeline&&) noexcept;
  Pipeline& operator=(Pipeline&&) noexcept;
  ~Pipeline();

 private:
  struct Impl;
  explicit Pipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Backends this library was compiled with, e.g. {"libtorch"} or {"libtorch", "tensorrt"}.
std::vector<std::string> backends();

/// LibTorch's intra-op CPU threads for the libtorch backend (as torch.set_num_threads).
void set_cpu_threads(int threads);

// ---- the pieces the loop is made of (mirrors of ddt_export.sampler / ddt_export.schedules) ----

/// The N + 1 float32 time points: torch.linspace(0, 1 - last_step, N), then 1, then shifted.
std::vector<float> timesteps(int num_steps, std::optional<double> last_step = std::nullopt, double timeshift = 1.0);
/// Noise as the official app draws it: torch.randn((B, C, H, W)) on a CPU generator seeded with `seed`.
Array seeded_noise(int64_t batch, const std::vector<int64_t>& shape, uint64_t seed);

std::vector<int> check_recompute(const std::vector<int>& steps, int num_steps);
double check_ratio(double ratio);
int refresh_rate(double ratio);                  // R = round(1 / (1 - r)), half to even, at least 1
std::vector<int> uniform_schedule(int num_steps, double ratio);  // i % R == 0
int dp_budget(int num_steps, double ratio);      // K = max(1, N // R)
/// The statistical DP: K recompute steps minimising the summed dissimilarity of reused states.
std::vector<int> dp_schedule(const Array& similarity, int budget);
/// An explicit list, a sharing ratio by uniform or DP (needs `similarity` for num_steps), or every step.
std::vector<int> resolve_schedule(int num_steps, const Schedule& schedule, const Array* similarity);

}  // namespace ddt
