// The public API: open a build folder with a backend, check a run's inputs, generate (mirrors
// ddt_export/pipeline.py).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>

#include "backend.h"
#include "build_lock.h"
#include "finite.h"
#include "ddt/runtime.h"
#include "manifest.h"
#include "sampler.h"
#include "solvers.h"

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
  void encode(bool cond_only) override {
    const auto start = Clock::now();
    inner_.encode(cond_only);
    timing_.encode_seconds += std::chrono::duration<double>(Clock::now() - start).count();
    ++timing_.encode_calls;
    timing_.encode_cond_only_calls += cond_only;
  }
  void decode(bool cond_only) override {
    const auto start = Clock::now();
    inner_.decode(cond_only);
    timing_.decode_seconds += std::chrono::duration<double>(Clock::now() - start).count();
    ++timing_.decode_calls;
    timing_.decode_cond_only_calls += cond_only;
  }

 private:
  detail::Runner& inner_;
  Timing& timing_;
};

/// A diagnostic re-run's runner: stops at the first decoder call whose output (the rows it wrote)
/// is not finite, and says at which step (the loop calls the decoder once per step).
class FiniteWatch final : public detail::Runner {
 public:
  struct Stop {
    int step;
  };
  FiniteWatch(detail::Runner& inner, size_t half) : inner_(inner), half_(half) {}
  float* x() override { return inner_.x(); }
  float* t() override { return inner_.t(); }
  int64_t* y() override { return inner_.y(); }
  const float* v() override { return inner_.v(); }
  void encode(bool cond_only) override { inner_.encode(cond_only); }
  void decode(bool cond_only) override {
    inner_.decode(cond_only);
    const float* v = inner_.v();
    if (!detail::all_finite(cond_only ? v + half_ : v, cond_only ? half_ : 2 * half_)) throw Stop{calls_};
    ++calls_;
  }

 private:
  detail::Runner& inner_;
  size_t half_;
  int calls_ = 0;
};

/// The first step whose velocity is not finite, found by running the loop again with a check after
/// every decoder call (only after a run has blown up: a normal run checks its result alone), as
/// ddt_export's Pipeline.first_bad_step.
std::optional<int> first_bad_step(detail::Runner& runner, const std::vector<float>& noise, const std::vector<int64_t>& labels,
                                  int64_t null_class, const SamplerSettings& settings, const std::vector<int>& steps,
                                  bool full_cfg) {
  FiniteWatch watch(runner, noise.size());
  try {
    detail::sample(watch, noise, labels, null_class, settings, steps, nullptr, full_cfg);
  } catch (const FiniteWatch::Stop& stop) {
    return stop.step;
  }
  return std::nullopt;
}

}  // namespace

double Result::sharing_ratio() const { return 1.0 - static_cast<double>(recompute.size()) / settings.num_steps; }

std::vector<std::string> backends() {
  std::vector<std::string> out;
#ifdef DDT_WITH_OPENVINO
  out.push_back("openvino");
#endif
#ifdef DDT_WITH_LIBTORCH
  out.push_back("libtorch");
#endif
#ifdef DDT_WITH_TENSORRT
  out.push_back("tensorrt");
#endif
  return out;
}

namespace {

int g_default_threads = 0;  // set_cpu_threads

bool compiled_in(const std::string& backend) {
  const std::vector<std::string> all = backends();
  return std::find(all.begin(), all.end(), backend) != all.end();
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  return out;
}

/// "auto": the build's ONNX graphs on OpenVINO where compiled in, else its LibTorch modules.
std::string choose_backend(const detail::Manifest& m, const std::string& asked) {
  static const std::vector<std::string> known = {"openvino", "libtorch", "tensorrt"};
  if (asked != "auto" && std::find(known.begin(), known.end(), asked) == known.end()) {
    throw Error("unknown backend '" + asked + "'; choose auto, " + joined(known));
  }
  if (asked == "tensorrt" && !compiled_in("tensorrt")) {
    throw Error("this ddt-runtime was compiled without TensorRT; reconfigure with -DDDT_WITH_TENSORRT=ON where the "
                "TensorRT SDK is installed, or use --backend " + joined(backends()));
  }
  if (asked != "auto" && !compiled_in(asked)) {
    const std::string how = asked == "openvino" ? "point CMake at OpenVINO (the openvino wheel's cmake folder) in CMAKE_PREFIX_PATH"
                                                : "point CMake at LibTorch (torch.utils.cmake_prefix_path) in CMAKE_PREFIX_PATH";
    throw Error("this ddt-runtime was compiled without the " + asked + " backend; " + how + " and rebuild, or use --backend " +
                joined(backends()));
  }
  if (asked != "auto") return asked;
  if (compiled_in("openvino")) return "openvino";
  if (compiled_in("libtorch") && m.has("libtorch")) return "libtorch";
  if (compiled_in("libtorch")) {
    throw Error(m.root.string() + " has no LibTorch modules and this ddt-runtime has no OpenVINO to run its ONNX graphs; "
                "rebuild the folder with `ddt-export build --libtorch`, or the runtime with OpenVINO");
  }
  throw Error("this ddt-runtime was compiled without a CPU backend; point CMake at OpenVINO and rebuild");
}

}  // namespace

void set_cpu_threads(int threads) {
  if (threads < 1 || threads > 1024) throw Error("threads must be between 1 and 1024 (got " + std::to_string(threads) + ")");
  g_default_threads = threads;
}

struct Pipeline::Impl {
  detail::Manifest manifest;  // declared before backend: backends keep a reference to it
  std::string backend_name;
  std::unique_ptr<detail::Backend> backend;

  /// Class labels in [0, K); the null class itself is allowed and samples unconditionally.
  std::vector<int64_t> check_labels(const std::vector<int64_t>& labels) const {
    std::vector<std::string> numbers;
    for (int64_t y : labels) numbers.push_back(std::to_string(y));
    return check_labels(numbers);
  }

  /// The same for ids as whole() writes them: one past 64 bits (a 40-digit id) is named in full, as Python's.
  std::vector<int64_t> check_labels(const std::vector<std::string>& numbers) const {
    if (numbers.empty()) throw Error("give at least one label, e.g. --labels 1,7");
    if (static_cast<int64_t>(numbers.size()) > kMaxBatch) {
      throw Error(std::to_string(numbers.size()) + " labels in one call; at most " + std::to_string(kMaxBatch) +
                  " per call (use `ddt-export sample` for more)");
    }
    const int64_t hi = manifest.num_classes - 1;
    std::vector<int64_t> labels;
    for (const std::string& n : numbers) {
      const std::optional<int64_t> y = to_int64(n);
      if (!y || ((*y < 0 || *y > hi) && *y != manifest.null_class)) {
        throw Error("label " + n + " is outside [0, " + std::to_string(hi) + "] for this " +
                    std::to_string(manifest.num_classes) + "-class model (or " + std::to_string(manifest.null_class) +
                    ", the null class, for unconditional samples)");
      }
      labels.push_back(*y);
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
  OpenOptions options;
  options.backend = backend;
  return open(build_dir, options);
}

Pipeline Pipeline::open(const std::string& build_dir, const OpenOptions& options) {
  if (options.threads < 0 || options.threads > 1024) {
    throw Error("threads must be between 1 and 1024 (got " + std::to_string(options.threads) + ")");
  }
  if (!options.precision.empty() && options.precision != "f32" && options.precision != "fp32" && options.precision != "bf16") {
    throw Error("unknown inference precision '" + options.precision + "'; choose f32 or bf16");
  }
  auto impl = std::make_unique<Impl>();
  // Shared while the manifest is read and verified and the backend reads the graphs it verified,
  // as ddt_export's Pipeline.load: a rebuild swaps the folder under the exclusive lock, so this
  // reads the old build or the new one, never a half-swapped folder.
  const detail::SharedBuildLock lock(build_dir);
  impl->manifest = detail::read_manifest(build_dir);
  impl->backend_name = choose_backend(impl->manifest, options.backend);
  detail::BackendOptions bo{options.precision, options.threads > 0 ? options.threads : g_default_threads};
  try {
#ifdef DDT_WITH_OPENVINO
    if (impl->backend_name == "openvino") impl->backend = detail::open_openvino(impl->manifest, bo);
#endif
#ifdef DDT_WITH_LIBTORCH
    if (impl->backend_name == "libtorch") impl->backend = detail::open_libtorch(impl->manifest, bo);
#endif
#ifdef DDT_WITH_TENSORRT
    if (impl->backend_name == "tensorrt") impl->backend = detail::open_tensorrt(impl->manifest, bo);
#endif
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    const std::string what = e.what();
    throw Error("cannot open " + build_dir + " with the " + impl->backend_name + " backend: " + what.substr(0, what.find('\n')));
  }
  if (!impl->backend) throw Error("backend " + impl->backend_name + " is not compiled in");
  return Pipeline(std::move(impl));
}

const std::string& Pipeline::name() const { return impl_->manifest.name; }
const std::string& Pipeline::backend() const { return impl_->backend_name; }
const std::string& Pipeline::precision() const { return impl_->backend->precision(); }
int64_t Pipeline::num_classes() const { return impl_->manifest.num_classes; }
int64_t Pipeline::null_class() const { return impl_->manifest.null_class; }
std::vector<int64_t> Pipeline::latent_shape() const { return impl_->manifest.latent_shape; }
const SamplerSettings& Pipeline::defaults() const { return impl_->manifest.sampler; }
const ClassNames* Pipeline::class_names() const { return impl_->manifest.class_names ? &*impl_->manifest.class_names : nullptr; }

std::vector<int64_t> Pipeline::parse_labels(const std::string& text, const std::string& what) const {
  return impl_->check_labels(resolve_labels(split_labels(text, what), class_names(), what));
}

std::vector<int64_t> Pipeline::label_ids(const std::vector<std::string>& labels, const std::string& what) const {
  std::vector<std::string> ids;  // each label read and resolved in turn (class_names.label_ids)
  for (const std::string& label : labels) ids.push_back(resolve_labels({label_entry(label, what)}, class_names(), what).front());
  return impl_->check_labels(ids);
}

SamplerSettings Pipeline::settings(const GenerateOptions& o) const {
  SamplerSettings settings = impl_->manifest.sampler;  // the build's defaults, overridden
  if (o.num_steps) settings.num_steps = *o.num_steps;
  if (o.guidance) settings.guidance = *o.guidance;
  if (o.interval_min) settings.interval_min = *o.interval_min;
  if (o.interval_max) settings.interval_max = *o.interval_max;
  if (o.timeshift) settings.timeshift = *o.timeshift;
  if (o.last_step) settings.last_step = *o.last_step;
  if (o.sampler) {  // another sampler without an order takes its default order, as SamplerSettings.with_overrides
    if (!o.order && *o.sampler != settings.sampler) settings.order = *o.sampler == "adams" ? detail::kAdamsDefaultOrder : 1;
    settings.sampler = *o.sampler;
  }
  if (o.order) settings.order = *o.order;
  settings.validate();
  return settings;
}

std::vector<int> Pipeline::schedule(int num_steps, const Schedule& s) const {
  SamplerSettings settings = impl_->manifest.sampler;
  settings.num_steps = num_steps;
  settings.validate();
  return schedule(settings, s);
}

std::vector<int> Pipeline::schedule(const SamplerSettings& settings, const Schedule& s) const {
  if (s.sharing_ratio) check_ratio(*s.sharing_ratio);
  if (s.method != "dp" && s.method != "uniform") throw Error("unknown schedule '" + s.method + "'; choose dp or uniform");
  if (s.recompute && s.sharing_ratio) throw Error("give either a recompute list or a sharing ratio, not both");
  const bool wants_dp = !s.recompute && s.method == "dp" && s.sharing_ratio && *s.sharing_ratio > 0;
  std::optional<Array> sim;
  if (wants_dp) {
    sim = impl_->manifest.similarity(settings);  // measured under exactly these settings, sampler and order included
    if (!sim) {
      const std::string solver =
          settings.sampler == "euler" ? "" : ", sampler " + settings.sampler + " order " + std::to_string(settings.order);
      throw Error("no calibration for these sampler settings (" + std::to_string(settings.num_steps) + " steps, guidance " +
                  detail::number_text(settings.guidance) + ", interval " + detail::number_text(settings.interval_min) + "," +
                  detail::number_text(settings.interval_max) + ", timeshift " + detail::number_text(settings.timeshift) +
                  ", last step " + (settings.last_step ? detail::number_text(*settings.last_step) : std::string("1/N")) +
                  solver + ") in " + impl_->manifest.root.string() + "; run `" + impl_->manifest.calibrate_command(settings) +
                  "` once, or use the uniform schedule");
    }
  }
  return resolve_schedule(settings.num_steps, s, sim ? &*sim : nullptr);
}

Result Pipeline::generate(const std::vector<int64_t>& labels_in, const GenerateOptions& o) const {
  // every input checked before any work: labels, settings, noise, schedule
  const std::vector<int64_t> labels = impl_->check_labels(labels_in);
  const int64_t B = static_cast<int64_t>(labels.size());
  const SamplerSettings settings = this->settings(o);
  detail::check_representable(settings);
  if (o.seed && o.noise) throw Error("give either a seed or noise, not both");
  const std::vector<int> steps = schedule(settings, o.schedule);
  const std::vector<float> noise = o.noise ? impl_->check_noise(*o.noise, B)
                                           : seeded_noise(B, impl_->manifest.latent_shape, o.seed.value_or(0)).data;

  Result result;
  result.recompute = steps;
  result.settings = settings;
  const std::vector<double> scales = detail::guidance_scales(settings, detail::plan_steps(settings));
  const bool halves = detail::cfg_halves(scales, steps, o.full_cfg).any_cond_only();
  const auto setup = Clock::now();
  std::unique_ptr<detail::Runner> runner = impl_->backend->runner(2 * B, halves);
  result.timing.runner_seconds = std::chrono::duration<double>(Clock::now() - setup).count();
  TimedRunner timed(*runner, result.timing);
  const auto start = Clock::now();
  result.latents.data =
      detail::sample(timed, noise, labels, impl_->manifest.null_class, settings, steps, o.progress, o.full_cfg);
  result.timing.loop_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (!detail::all_finite(result.latents.data.data(), result.latents.data.size())) {  // before any caller writes them
    const std::optional<int> step =
        first_bad_step(*runner, noise, labels, impl_->manifest.null_class, settings, steps, o.full_cfg);
    throw Error(detail::blame(settings, noise, step));
  }
  result.latents.shape = {B};
  result.latents.shape.insert(result.latents.shape.end(), impl_->manifest.latent_shape.begin(),
                              impl_->manifest.latent_shape.end());
  return result;
}

}  // namespace ddt
