// The public API: open a build folder with a backend, generate (mirrors ddt_export/pipeline.py).

#include <chrono>
#include <cmath>
#include <sstream>

#include "backend.h"
#include "ddt/runtime.h"
#include "manifest.h"
#include "sampler.h"

namespace ddt {

namespace {

using Clock = std::chrono::steady_clock;

std::string shape_text(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << (shape.size() == 1 ? ",)" : ")");
  return s.str();
}

/// Times the encoder and decoder calls of any runner; the loop itself stays a plain mirror.
class TimedRunner final : public detail::Runner {
 public:
  TimedRunner(detail::Runner& inner, Timing& timing) : inner_(inner), timing_(timing) {}
  float* x() override { return inner_.x(); }
  float* t() override { return inner_.t(); }
  int64_t* y() override { return inner_.y(); }
  const float* v() override { return inner_.v(); }
  void encode() override {
    const auto start = Clock::now();
    inner_.encode();
    timing_.encode_seconds += std::chrono::duration<double>(Clock::now() - start).count();
    ++timing_.encode_calls;
  }
  void decode() override {
    const auto start = Clock::now();
    inner_.decode();
    timing_.decode_seconds += std::chrono::duration<double>(Clock::now() - start).count();
    ++timing_.decode_calls;
  }

 private:
  detail::Runner& inner_;
  Timing& timing_;
};

}  // namespace

double Result::sharing_ratio() const { return 1.0 - static_cast<double>(recompute.size()) / settings.num_steps; }

std::vector<std::string> backends() {
#ifdef DDT_WITH_TENSORRT
  return {"libtorch", "tensorrt"};
#else
  return {"libtorch"};
#endif
}

struct Pipeline::Impl {
  detail::Manifest manifest;  // declared before backend: backends keep a reference to it
  std::string backend_name;
  std::unique_ptr<detail::Backend> backend;

  std::vector<int64_t> check_labels(const std::vector<int64_t>& labels) const {
    if (labels.empty()) throw Error("give at least one label, e.g. --labels 1,7");
    const int64_t hi = manifest.num_classes - 1;
    for (int64_t y : labels) {
      if (y < 0 || y > hi) {
        throw Error("label " + std::to_string(y) + " is outside [0, " + std::to_string(hi) + "] for this " +
                    std::to_string(manifest.num_classes) + "-class model");
      }
    }
    return labels;
  }

  std::vector<float> check_noise(const Array& noise, int64_t batch) const {
    std::vector<int64_t> want{batch};
    want.insert(want.end(), manifest.latent_shape.begin(), manifest.latent_shape.end());
    if (noise.shape != want) {
      if (noise.shape.size() == 4 && std::equal(noise.shape.begin() + 1, noise.shape.end(), want.begin() + 1)) {
        throw Error("noise has batch " + std::to_string(noise.shape[0]) + " but " + std::to_string(batch) +
                    " labels were given; give one label per noise sample");
      }
      throw Error("noise has shape " + shape_text(noise.shape) + ", expected " + shape_text(want) + " (batch, C, H, W)");
    }
    if (static_cast<int64_t>(noise.data.size()) != noise.numel()) throw Error("noise data does not match its shape");
    for (float v : noise.data) {
      if (!std::isfinite(v)) throw Error("noise holds inf or nan");
    }
    return noise.data;
  }
};

Pipeline::Pipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pipeline::Pipeline(Pipeline&&) noexcept = default;
Pipeline& Pipeline::operator=(Pipeline&&) noexcept = default;
Pipeline::~Pipeline() = default;

Pipeline Pipeline::open(const std::string& build_dir, const std::string& backend) {
  auto impl = std::make_unique<Impl>();
  impl->manifest = detail::read_manifest(build_dir);
  impl->backend_name = backend;
  if (backend == "libtorch") {
    impl->backend = detail::open_libtorch(impl->manifest);
  } else if (backend == "tensorrt") {
#ifdef DDT_WITH_TENSORRT
    impl->backend = detail::open_tensorrt(impl->manifest);
#else
    throw Error("this ddt-runtime was compiled without TensorRT; reconfigure with -DDDT_WITH_TENSORRT=ON where the "
                "TensorRT SDK is installed, or use --backend libtorch");
#endif
  } else {
    throw Error("unknown backend '" + backend + "'; choose libtorch or tensorrt");
  }
  return Pipeline(std::move(impl));
}

const std::string& Pipeline::name() const { return impl_->manifest.name; }
const std::string& Pipeline::backend() const { return impl_->backend_name; }
int64_t Pipeline::num_classes() const { return impl_->manifest.num_classes; }
int64_t Pipeline::null_class() const { return impl_->manifest.null_class; }
std::vector<int64_t> Pipeline::latent_shape() const { return impl_->manifest.latent_shape; }
const SamplerSettings& Pipeline::defaults() const { return impl_->manifest.sampler; }

std::vector<int> Pipeline::schedule(int num_steps, const Schedule& s) const {
  if (s.sharing_ratio) check_ratio(*s.sharing_ratio);
  const bool wants_dp = !s.recompute && s.method == "dp" && s.sharing_ratio && *s.sharing_ratio > 0;
  std::optional<Array> sim;
  if (wants_dp) {
    sim = impl_->manifest.similarity(num_steps);
    if (!sim) {
      const std::string dir = impl_->manifest.root.string();
      throw Error("no calibration for " + std::to_string(num_steps) + " steps in " + dir + "; run `ddt-export calibrate " +
                  dir + " --steps " + std::to_string(num_steps) + "` once, or use the uniform schedule");
    }
  }
  return resolve_schedule(num_steps, s, sim ? &*sim : nullptr);
}

Result Pipeline::generate(const std::vector<int64_t>& labels_in, const GenerateOptions& o) const {
  const std::vector<int64_t> labels = impl_->check_labels(labels_in);
  const int64_t B = static_cast<int64_t>(labels.size());
  SamplerSettings settings = impl_->manifest.sampler;  // the build's defaults, overridden
  if (o.num_steps) settings.num_steps = *o.num_steps;
  if (o.guidance) settings.guidance = *o.guidance;
  if (o.interval_min) settings.interval_min = *o.interval_min;
  if (o.interval_max) settings.interval_max = *o.interval_max;
  if (o.timeshift) settings.timeshift = *o.timeshift;
  if (o.last_step) settings.last_step = *o.last_step;
  settings.validate();
  if (o.seed && o.noise) throw Error("give either a seed or noise, not both");
  const std::vector<float> noise = o.noise ? impl_->check_noise(*o.noise, B)
                                           : seeded_noise(B, impl_->manifest.latent_shape, o.seed.value_or(0)).data;
  const std::vector<int> steps = schedule(settings.num_steps, o.schedule);

  Result result;
  result.recompute = steps;
  result.settings = settings;
  std::unique_ptr<detail::Runner> runner = impl_->backend->runner(2 * B);
  TimedRunner timed(*runner, result.timing);
  const auto start = Clock::now();
  result.latents.data = detail::sample(timed, noise, labels, impl_->manifest.null_class, settings, steps, o.progress);
  result.timing.loop_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.latents.shape = {B};
  result.latents.shape.insert(result.latents.shape.end(), impl_->manifest.latent_shape.begin(),
                              impl_->manifest.latent_shape.end());
  return result;
}

}  // namespace ddt
