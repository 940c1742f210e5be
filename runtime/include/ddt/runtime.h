// ddt-runtime's public API: sample DDT latents from a `ddt-export build` folder in C++, without Python.
//
//   ddt::Pipeline pipe = ddt::Pipeline::open("engines/tiny");   // the build's ONNX graphs on OpenVINO
//   ddt::GenerateOptions opts;
//   opts.seed = 0;
//   opts.schedule.sharing_ratio = 0.75;                          // DP over the stored calibration
//   ddt::Result r = pipe.generate({1, 7}, opts);                 // r.latents: (2, C, H, W) float32
//
// The build folder's manifest.json is the only contract: tensor names, shapes, the latent
// shape, the null class, the sampler defaults and the calibrated similarity matrices all come
// from it. The sampling loop (Euler, or the official Adams-Bashforth multistep sampler of order
// 1-4) mirrors `ddt_export.sampler.sample` line for line, so for the same build, labels, noise,
// sampler and schedule the C++ and Python runtimes give the same latents.
//
// Every failure is a ddt::Error whose message is one line naming the problem and the fix.
// This header pulls in none of OpenVINO, LibTorch or TensorRT.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ddt {

/// Bounds on a run, as the Python runtime's (ddt_export.sampler.MAX_STEPS / MAX_BATCH).
constexpr int kMaxSteps = 10000;    // sampling steps (the official sampler runs 250)
constexpr int64_t kMaxBatch = 1024;  // labels per generate() call (the CFG batch is twice it)

/// Bad input or an unusable build folder: one line naming the problem and the fix.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The machine failed while reading or writing (a full disk or quota, a read-only or failing file
/// system): one line naming the path and the reason, as every Error. ddt-run exits 74 (EX_IOERR)
/// for it, as ddt-export does, so scripts can tell "fix the machine" from "fix the input".
class IoError : public Error {
 public:
  using Error::Error;
};

/// A dense float32 array in C order (latents, noise, similarity matrices).
struct Array {
  std::vector<int64_t> shape;
  std::vector<float> data;

  int64_t numel() const;
};

/// Reads a .npy of float32 or float64 (converted to float32), C order, of at most `max_values` values
/// (checked in the header, before the data is read). The file must be a regular file (a FIFO or a
/// device is refused without blocking); `what` names it in messages, e.g. "--noise".
Array read_npy(const std::string& path, int64_t max_values = int64_t{1} << 31, const std::string& what = "");
/// Writes float32 C-order .npy (format 1.0, as numpy.save), through a uniquely named temporary file
/// in the same folder and a rename: readers see the old file or the whole new one, and a failure
/// (an IoError for the machine's, such as a full disk) leaves no partial file behind.
void write_npy(const std::string& path, const Array& array);
/// Throws unless a file can be written at `path`: not a folder, no name over 255 bytes, no symlink
/// loop, in an existing folder that is writable and on a real, writable filesystem (not /proc, /sys
/// or /dev), and not inside a ddt-export build folder, which only `ddt-export build` and `calibrate`
/// write (symlinks and '..' resolved first, as ddt_export/files.py). Touches nothing; call it before
/// the work whose result goes there.
void check_output_path(const std::string& path);

/// The one integer grammar of labels, step lists and seeds (ddt_export/labels.py): ASCII digits after
/// at most one '-', with spaces or tabs around it, at most 40 characters; no '+', '_', digits of other
/// scripts or spaces inside. Returns the number as Python's int() writes it ("007" is "7", "-0" is
/// "0"), or throws an Error naming `what`.
std::string whole(const std::string& text, const std::string& what, const std::string& example = "1");
/// Comma-separated whole numbers (blank text: none); an empty entry ("1,,2", "1,") is refused.
std::vector<std::string> whole_list(const std::string& text, const std::string& what, const std::string& example = "1,7");
/// A number as whole() returns it, as an int64_t where it fits.
std::optional<int64_t> to_int64(const std::string& number);
/// A seed in that grammar, 0 to 2^64 - 1 (torch would read -1 as 2^64 - 1: refused, not wrapped).
uint64_t check_seed(const std::string& text, const std::string& what = "--seed");
/// The float side of that grammar (ddt_export/decimals.py): ASCII, an optional '-', digits with an optional
/// fraction ("0.75", "1.", ".5") and exponent ("1e-3", "1E+30"), spaces or tabs around; no '+', '_', hex or
/// other scripts' digits. inf, nan and values past float64 ("1e400") are refused as not finite; one below
/// its range ("1e-400") reads as 0, as float() reads it. Throws an Error naming `what` with decimals.py's words.
double decimal(const std::string& text, const std::string& what, const std::string& example = "0.5");

/// A build's class names (manifest `model.class_names`), ready for look-ups: one line per class 0 .. K-1,
/// "display name, synonym, ...". The rules are ddt_export/class_names.py's (its docstring is the contract both
/// runtimes implement): a name matches a class if it equals one of the class's synonyms after both are folded
/// (ASCII whitespace trimmed, A-Z mapped to a-z; nothing else, so "É" does not match "é").
class ClassNames {
 public:
  /// The lines as a manifest stores them; check_class_names() first for lines from elsewhere.
  explicit ClassNames(std::vector<std::string> lines);

  int64_t size() const { return static_cast<int64_t>(lines_.size()); }
  const std::string& line(int64_t id) const { return lines_.at(id); }
  const std::vector<std::string>& synonyms(int64_t id) const { return synonyms_.at(id); }
  const std::string& display(int64_t id) const { return synonyms_.at(id).front(); }  // the first synonym
  /// The class `name` names (rules R2-R6), or a one-line Error naming `what`: a name with ',' or ';' in it, a
  /// name over 200 characters, a name several classes share (listing their ids), or an unknown name (with the
  /// three closest classes).
  int64_t lookup(const std::string& name, const std::string& what = "--labels") const;
  /// The `k` classes nearest `name`: by the smallest Levenshtein distance (over Unicode code points) between
  /// the folded name and a folded synonym of the class, then by id (rule R6).
  std::vector<int64_t> closest(const std::string& name, size_t k = 3) const;

 private:
  std::vector<std::string> lines_;
  std::vector<std::vector<std::string>> synonyms_;
  std::map<std::string, std::vector<int64_t>> index_;  // folded synonym -> the classes that have it
};

/// Names lines checked against rules N1-N2 (one per class; each synonym 1 to 200 code points, no ';', no
/// control character, not in the integer grammar) and normalised (synonyms trimmed and joined with ", "), or
/// an Error starting with `where`, as `ddt-export build --class-names` and the manifest reader refuse them.
std::vector<std::string> check_class_names(const std::vector<std::string>& lines, int64_t num_classes, const std::string& where);

/// One label as written: an id in the integer grammar (`text` as whole() returns it) or a class name (`text`
/// trimmed of ASCII whitespace).
struct LabelEntry {
  bool is_id = false;
  std::string text;
};

/// A `--labels` text as entries (rules L1-L3): blank text is none; text without ';' whose ','-separated pieces
/// are all ids (or blank) is whole_list()'s id list, as before names; otherwise entries separated by ';'
/// ("golden retriever;tabby;7"), none of them blank.
std::vector<LabelEntry> split_labels(const std::string& text, const std::string& what = "--labels");
/// One label of a list (rule A1): trimmed, an id if in the integer grammar, else a name.
LabelEntry label_entry(const std::string& text, const std::string& what = "labels");
/// Entries as ids, as whole() writes them (names looked up in `names`; range not checked). With no names
/// (nullptr: a build made without them) a name is refused with the id grammar's message (rule R1).
std::vector<std::string> resolve_labels(const std::vector<LabelEntry>& entries, const ClassNames* names,
                                        const std::string& what = "--labels");

/// The official samplers' knobs (EulerSampler, AdamLMSampler), and which of the two runs; a
/// build's defaults come from manifest["sampler"].
struct SamplerSettings {
  int num_steps = 250;
  double guidance = 1.0;
  double interval_min = 0.0;  // guidance applies iff interval_min < t < interval_max (strict)
  double interval_max = 1.0;
  double timeshift = 1.0;
  std::optional<double> last_step;  // empty: 1 / num_steps, as the official sampler
  std::string sampler = "euler";    // or "adams": the official Adams-Bashforth multistep AdamLMSampler
  int64_t order = 1;                // Adams' order, 1 to 4 (Euler is order 1); 64 bits, so that an order
                                    // such as 99999999999 is refused with its own value, as in Python

  /// Steps in 1..kMaxSteps, every number finite, last step in (0, 1), timeshift > 0, LO <= HI,
  /// sampler euler or adams, order 1 to 4 and 1 for Euler (ddt_export.sampler's messages and order).
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
  /// "euler" or "adams"; a sampler other than the build's, given without an order, takes its
  /// default order (adams 2, euler 1), as ddt_export's SamplerSettings.with_overrides.
  std::optional<std::string> sampler;
  std::optional<int64_t> order;
  Schedule schedule;
  /// Run both CFG halves at every call, as the official sampler. Default (false): where guidance
  /// is off (w = 1, outside the interval) only the conditional half runs, since there
  /// v = vu + 1 (vc - vu) is vc; the latents agree within float rounding, and it is faster.
  bool full_cfg = false;
  std::function<void(int)> progress;  // called after each step with its index
};

/// Where the time of one generate() went (wall clock, seconds).
struct Timing {
  double runner_seconds = 0;  // binding buffers for this batch, compiling the graphs on a batch's first use (OpenVINO)
  double loop_seconds = 0;    // the whole sampling loop
  double encode_seconds = 0;  // inside the encoder calls
  double decode_seconds = 0;  // inside the decoder calls
  int encode_calls = 0;
  int decode_calls = 0;
  int encode_cond_only_calls = 0;  // of those, the calls that ran only the conditional half (batch B)
  int decode_cond_only_calls = 0;
};

struct Result {
  Array latents;               // (B, C, H, W) float32 at t = 1
  std::vector<int> recompute;  // the steps where the encoder ran
  SamplerSettings settings;
  Timing timing;

  double sharing_ratio() const;
};

/// How to open a build.
struct OpenOptions {
  /// "auto": openvino for a build with ONNX graphs (when compiled in), else libtorch for a build
  /// with LibTorch modules; or "openvino", "libtorch", "tensorrt" (each where compiled in).
  std::string backend = "auto";
  /// OpenVINO's inference precision: "" (bf16 where the CPU has bf16 hardware, else f32), "f32" or "bf16".
  std::string precision;
  int threads = 0;  // CPU threads for openvino and libtorch; 0: the backend's default (all cores)
};

/// A build folder opened with one backend. Opening checks the manifest and every file's sha256.
class Pipeline {
 public:
  static Pipeline open(const std::string& build_dir, const OpenOptions& options);
  static Pipeline open(const std::string& build_dir, const std::string& backend = "auto");

  /// Latents for `labels` (class indices; label_ids() or parse_labels() for names); options as above.
  Result generate(const std::vector<int64_t>& labels, const GenerateOptions& options = {}) const;

  /// The build's class names, or nullptr for a build made without them (its labels are ids only).
  const ClassNames* class_names() const;
  /// Labels as generate() takes them, from a `--labels` text ("golden retriever;tabby;7", or "1,7"):
  /// split_labels, resolve_labels with the build's names, then checked as generate() checks them (at least
  /// one, at most kMaxBatch, each in [0, K) or the null class). Every failure is a one-line Error naming `what`.
  std::vector<int64_t> parse_labels(const std::string& text, const std::string& what = "--labels") const;
  /// The same for a list, one label per element, each an id ("207") or a name ("golden retriever").
  std::vector<int64_t> label_ids(const std::vector<std::string>& labels, const std::string& what = "labels") const;

  const std::string& name() const;
  const std::string& backend() const;
  /// The precision the backend computes in: "f32", or "bf16" for OpenVINO's bf16 inference.
  const std::string& precision() const;
  int64_t num_classes() const;
  int64_t null_class() const;
  std::vector<int64_t> latent_shape() const;  // (C, H, W)
  const SamplerSettings& defaults() const;
  /// The build's defaults with `options`' overrides, validated.
  SamplerSettings settings(const GenerateOptions& options) const;
  /// The recompute steps a run with these settings would use (explicit, uniform, or DP over the
  /// calibration stored for exactly these settings).
  std::vector<int> schedule(const SamplerSettings& settings, const Schedule& schedule) const;
  /// The same with the build's default settings at `num_steps` steps.
  std::vector<int> schedule(int num_steps, const Schedule& schedule) const;

  Pipeline(Pipeline&&) noexcept;
  Pipeline& operator=(Pipeline&&) noexcept;
  ~Pipeline();

 private:
  struct Impl;
  explicit Pipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Backends this library was compiled with, e.g. {"openvino"} or {"openvino", "libtorch"}.
std::vector<std::string> backends();

/// CPU threads for backends opened from now on without OpenOptions::threads (and LibTorch's
/// intra-op threads, as torch.set_num_threads, where the libtorch backend is compiled in).
void set_cpu_threads(int threads);

// ---- the pieces the loop is made of (mirrors of ddt_export.sampler / ddt_export.schedules) ----

/// The N + 1 float32 time points: torch.linspace(0, 1 - last_step, N), then 1, then shifted,
/// bit for bit as torch's CPU kernels compute them (no LibTorch).
std::vector<float> timesteps(int num_steps, std::optional<double> last_step = std::nullopt, double timeshift = 1.0);
/// Noise as the official app draws it: torch.randn((B, C, H, W)) on a CPU generator seeded with
/// `seed`, bit for bit (torch's mt19937 and CPU normal kernel, reimplemented; no LibTorch).
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
