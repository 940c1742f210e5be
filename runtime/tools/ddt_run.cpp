// ddt-run: sample latents from a build folder with the C++ runtime (the C++ twin of
// `ddt-export generate ... --save-latents`). Every input is checked before any work; bad input
// gets one line on stderr, `error: <problem and the fix>`, exit status 2, and nothing written.
// A result that is not finite is refused the same way, naming the setting that blew it up. The
// machine failing (a full disk, a read-only file system) is one line too, exit status 74
// (EX_IOERR, as ddt-export), and no partial file is left. Ctrl-C or SIGTERM is one line and exit
// status 130, as ddt-export, with no temporary file left.

#include <pthread.h>
#include <strings.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <climits>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "ddt/runtime.h"
#include "text.h"  // string_repr: Python's repr of an argument in a message

namespace fs = std::filesystem;

namespace {

const char* kUsage = R"(usage: ddt-run BUILD_DIR --labels 1,7 [options]

Sample latents with the Euler or Adams loop, CFG in its interval, and the encoder only at scheduled steps.

  --backend NAME        auto (default: openvino for the build's ONNX graphs), openvino, libtorch
                        or tensorrt, each where compiled in
  --inference-precision f32|bf16
                        openvino's precision [default: bf16 where the CPU has bf16 hardware]
  --labels A;B;...      class labels, one sample each (1 to 1024): ids (1,7), or ids and class names
                        separated by ';' ("seven;zero;3"), a name matching any of its class's synonyms,
                        case-insensitive; the null class (an id) samples unconditionally
  --seed N              noise seed: torch.randn on a CPU generator, as the Python CLI [default: 0]
  --noise FILE.npy      noise of shape (B, C, H, W) instead of --seed
  --steps N             sampling steps, 1 to 10000 [default: the build's]
  --cfg W               guidance scale
  --interval LO,HI      guidance interval (strict)
  --timeshift S         time shift of the grid, > 0
  --last-step L         last step of the grid, in (0, 1)
  --sampler euler|adams the official EulerSampler, or AdamLMSampler (Adams-Bashforth multistep, one
                        decoder call per step) [default: the build's]
  --order K             Adams order, 1 to 4 [default: 2 with --sampler adams; Euler is order 1]
  --recompute 0,3,6     explicit encoder steps
  --sharing-ratio R     fraction of steps that reuse the encoder's state, in [0, 1)
  --schedule dp|uniform with --sharing-ratio [default: dp, needs `ddt-export calibrate`]
  --full-cfg            run both CFG halves at every step, as the official sampler [default: only
                        the conditional half where guidance is off; the same latents, faster]
  --save-latents FILE   write the final latents (.npy, float32), atomically
  --threads N           CPU threads, 1 to 1024 [default: all cores]
  --json                print a JSON summary (labels, steps, sampler, order, schedule, timing) on stdout
  --help                this text
)";

constexpr int kMaxThreads = 1024;
constexpr int64_t kMaxNoiseValues = int64_t{1} << 28;  // cli.MAX_NOISE_VALUES: 1 GiB of float32, past 1,024 samples of the largest latent
constexpr int kIoError = 74;  // sysexits.h EX_IOERR, as ddt_export.errors.IO_ERROR: the machine failed, not the input
constexpr int kInterrupted = 130;  // ddt_export.errors.INTERRUPTED: Ctrl-C or SIGTERM

struct Usage : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string trimmed(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t") - a + 1);
}

/// A number in the one integer grammar (ddt::whole, labels.py's) within [lo, hi].
int64_t in_range(const std::string& number, const std::string& what, int64_t lo, int64_t hi) {
  const std::optional<int64_t> v = ddt::to_int64(number);
  if (!v || *v < lo || *v > hi) {
    throw ddt::Error(what + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) + " (got " + number + ")");
  }
  return *v;
}

/// A whole number in [lo, hi]: ASCII digits after an optional minus, no exponent, fraction or '_'.
int64_t parse_int(const std::string& text, const std::string& what, int64_t lo, int64_t hi) {
  return in_range(ddt::whole(text, what), what, lo, hi);
}

/// --order: any 64-bit value goes on to SamplerSettings::validate, which refuses it with Python's message; one
/// past 64 bits (Python reads any whole number) stands in as 1 until check_huge_order refuses it.
int64_t parse_order(const std::string& text) { return ddt::to_int64(ddt::whole(text, "--order")).value_or(1); }

/// --labels as ddt::split_labels reads it (the id grammar, ';' between labels when any is a name, no empty
/// entry), 1 to kMaxBatch entries; the names and the ids' range are checked once the build is open.
void check_labels_text(const std::string& text) {
  const size_t entries = ddt::split_labels(text, "--labels").size();
  const std::string most = std::to_string(ddt::kMaxBatch);
  if (entries > static_cast<size_t>(ddt::kMaxBatch)) throw ddt::Error("--labels has more than " + most + " entries; at most " + most);
  if (entries == 0) throw ddt::Error("give at least one label, e.g. --labels 1,7");
}

/// Comma-separated whole numbers in the grammar, each within [lo, hi], at most `max_items` of them.
std::vector<int64_t> parse_ints(const std::string& text, const std::string& what, int64_t lo, int64_t hi, size_t max_items) {
  const std::vector<std::string> numbers = ddt::whole_list(text, what);
  if (numbers.size() > max_items) {
    throw ddt::Error(what + " has more than " + std::to_string(max_items) + " entries; at most " + std::to_string(max_items));
  }
  std::vector<int64_t> out;
  for (const std::string& n : numbers) out.push_back(in_range(n, what + " entry", lo, hi));
  return out;
}

// ---------------------------------------------------------------- parse: argv -> options by name

/// The command line split into options (name -> value; "" for a flag) and positional arguments.
struct Args {
  std::map<std::string, std::string> opt;
  std::vector<std::string> positional;

  bool has(const std::string& name) const { return opt.count(name) > 0; }
  const std::string& at(const std::string& name) const { return opt.at(name); }
};

const std::map<std::string, bool> kKnown = {  // option -> takes a value
    {"--backend", true},   {"--inference-precision", true}, {"--labels", true},    {"--seed", true},
    {"--noise", true},     {"--steps", true},               {"--cfg", true},       {"--interval", true},
    {"--timeshift", true}, {"--last-step", true},           {"--recompute", true}, {"--sharing-ratio", true},
    {"--schedule", true},  {"--save-latents", true},        {"--threads", true},   {"--json", false},
    {"--full-cfg", false}, {"--help", false},               {"--sampler", true},   {"--order", true}};

/// `--name value`, `--name=value`, flags, positionals, and `--` before positionals only.
Args parse(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      for (++i; i < argc; ++i) args.positional.push_back(argv[i]);
      break;
    }
    if (arg.rfind("--", 0) != 0) {
      if (arg.size() > 1 && arg[0] == '-') throw Usage("no such option: " + arg);
      args.positional.push_back(arg);
      continue;
    }
    std::string value;
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    const auto it = kKnown.find(arg);
    if (it == kKnown.end()) throw Usage("no such option: " + arg);
    if (it->second && eq == std::string::npos) {
      if (i + 1 >= argc) throw Usage("option " + arg + " requires an argument");
      value = argv[++i];
    } else if (!it->second && eq != std::string::npos) {
      throw Usage("option " + arg + " takes no value");
    }
    args.opt[arg] = value;
  }
  return args;
}

// ---------------------------------------------------------------- validate: every input, before any work

/// Everything a run needs, checked: what to open, how, what to generate, where the results go.
struct Options {
  std::string build_dir;
  std::string labels_text;      // --labels, read (split_labels) now and resolved against the build's names once open
  std::vector<int64_t> labels;  // the ids, once the build is open
  std::optional<std::string> huge_order;  // --order past 64 bits, refused once the build's settings are known
  ddt::OpenOptions open;
  ddt::GenerateOptions generate;
  std::optional<std::string> noise_file;
  std::optional<std::string> latents_file;
  bool json = false;
};

/// The two options that exclude each other, and the ones every run needs.
void check_shape_of_command(const Args& args) {
  if (args.positional.size() != 1) {
    throw Usage(args.positional.empty() ? "missing argument BUILD_DIR" : "got more than one BUILD_DIR");
  }
  if (!args.has("--labels")) throw Usage("missing option --labels");
  if (args.has("--seed") && args.has("--noise")) throw ddt::Error("give either --seed or --noise, not both");
  if (args.has("--recompute") && args.has("--sharing-ratio")) {
    throw ddt::Error("give either --recompute or --sharing-ratio, not both");
  }
}

/// --seed, --steps, --cfg, --interval, --timeshift, --last-step, --sampler, --order: the sampler's
/// overrides (their values are checked by SamplerSettings::validate, with the Python messages).
void parse_sampler(const Args& args, ddt::GenerateOptions& o) {
  if (args.has("--seed")) o.seed = ddt::check_seed(args.at("--seed"));
  if (args.has("--steps")) o.num_steps = static_cast<int>(parse_int(args.at("--steps"), "--steps", 1, ddt::kMaxSteps));
  if (args.has("--cfg")) o.guidance = ddt::decimal(args.at("--cfg"), "--cfg", "4.0");
  if (args.has("--interval")) {
    const std::string& text = args.at("--interval");
    const size_t comma = text.find(',');
    if (comma == std::string::npos || text.find(',', comma + 1) != std::string::npos) {
      throw ddt::Error("--interval takes LO,HI, e.g. 0.3,1.0 (got " + ddt::detail::string_repr(text) + ")");
    }
    o.interval_min = ddt::decimal(text.substr(0, comma), "--interval LO", "0.3");
    o.interval_max = ddt::decimal(text.substr(comma + 1), "--interval HI", "1.0");
  }
  if (args.has("--timeshift")) o.timeshift = ddt::decimal(args.at("--timeshift"), "--timeshift", "1.0");
  if (args.has("--last-step")) o.last_step = ddt::decimal(args.at("--last-step"), "--last-step", "0.04");
  if (args.has("--sampler")) o.sampler = args.at("--sampler");
  if (args.has("--order")) o.order = parse_order(args.at("--order"));
}

/// --recompute, --sharing-ratio, --schedule: which steps run the encoder.
void parse_schedule(const Args& args, ddt::Schedule& schedule) {
  if (args.has("--recompute")) {
    std::vector<int> steps;
    for (int64_t s : parse_ints(args.at("--recompute"), "--recompute", 0, ddt::kMaxSteps - 1, ddt::kMaxSteps)) {
      steps.push_back(static_cast<int>(s));
    }
    if (steps.empty()) throw ddt::Error("--recompute needs at least step 0, e.g. --recompute 0,3,6");
    schedule.recompute = steps;
  }
  if (args.has("--sharing-ratio")) {
    schedule.sharing_ratio = ddt::check_ratio(ddt::decimal(args.at("--sharing-ratio"), "--sharing-ratio", "0.75"));
  }
  if (args.has("--schedule")) {
    schedule.method = args.at("--schedule");
    if (!args.has("--sharing-ratio")) {  // alone it would be silently ignored (cli.schedule_option)
      throw ddt::Error("--schedule " + schedule.method + " picks the encoder's steps for a --sharing-ratio; add e.g. --sharing-ratio 0.75");
    }
    if (schedule.method != "dp" && schedule.method != "uniform") {
      throw ddt::Error("unknown schedule '" + schedule.method + "'; choose dp or uniform");
    }
  }
}

/// --backend, --inference-precision, --threads.
ddt::OpenOptions parse_open(const Args& args) {
  ddt::OpenOptions open;
  if (args.has("--backend")) open.backend = args.at("--backend");
  if (args.has("--inference-precision")) {
    open.precision = args.at("--inference-precision");
    if (open.precision != "f32" && open.precision != "bf16" && open.precision != "fp32") {
      throw ddt::Error("unknown --inference-precision '" + open.precision + "'; choose f32 or bf16");
    }
  }
  if (args.has("--threads")) open.threads = static_cast<int>(parse_int(args.at("--threads"), "--threads", 1, kMaxThreads));
  return open;
}

/// --save-latents: a .npy file name where a file may be written (ddt::check_output_path: not inside a
/// build folder, no symlink loop, no over-long name, a writable real folder).
std::string check_latents_file(const std::string& path) {
  if (path.empty()) throw ddt::Error("--save-latents needs a file path, e.g. --save-latents latents.npy");
  ddt::check_output_path(path);
  const std::string suffix = fs::path(path).extension().string();
  if (suffix.size() != 4 || ::strcasecmp(suffix.c_str(), ".npy") != 0) {
    throw ddt::Error("--save-latents " + path + ": expected a .npy file name; give e.g. --save-latents out.npy");
  }
  return path;
}

/// Every number and list, then every path, before the build is opened (in this order: the
/// first bad input is the one reported).
Options validate(const Args& args) {
  check_shape_of_command(args);
  Options o;
  o.build_dir = args.positional[0];
  o.labels_text = args.at("--labels");
  check_labels_text(o.labels_text);
  parse_sampler(args, o.generate);
  if (args.has("--order")) {  // past 64 bits: refused once the build's sampler defaults are known (check_huge_order)
    const std::string order = ddt::whole(args.at("--order"), "--order");
    if (!ddt::to_int64(order)) o.huge_order = order;
  }
  parse_schedule(args, o.generate.schedule);
  o.generate.full_cfg = args.has("--full-cfg");
  o.open = parse_open(args);
  if (args.has("--save-latents")) o.latents_file = check_latents_file(args.at("--save-latents"));
  if (args.has("--noise")) {  // read now, as ddt-export generate: a bad file fails before the build is opened
    o.noise_file = args.at("--noise");
    o.generate.noise = ddt::read_npy(*o.noise_file, kMaxNoiseValues, "noise");
  }
  o.json = args.has("--json");
  return o;
}

// ---------------------------------------------------------------- Ctrl-C and SIGTERM

// As ddt_export.errors.run: Ctrl-C or SIGTERM ends the run with one line and exit 130, leaving nothing
// half-written. Both signals are blocked in every thread (the backends' threads inherit the mask) and
// taken by one listener thread with sigwait, so nothing runs in a signal handler. The only file ddt-run
// creates is write_npy's temporary file, which exists only while g_writing is held: the listener takes
// g_writing first, so a write under way ends (renamed into place whole, or removed on failure) before
// the process does; a run still sampling has nothing on disk and simply ends.

std::mutex g_writing;      // held while the latents are written
pthread_t g_listener;      // the thread that takes the signals
bool g_on_tty = false;     // stderr is a terminal: clear the progress line first

[[noreturn]] void listen_for_interrupts(sigset_t signals) {
  int signum = 0;
  while (sigwait(&signals, &signum) != 0) {
  }
  g_writing.lock();  // never released: the process ends here
  const char kLine[] = "interrupted; nothing half-written was left behind\n";
  if (g_on_tty) (void)!::write(STDERR_FILENO, "\r\033[K", 4);
  (void)!::write(STDERR_FILENO, kLine, sizeof kLine - 1);
  ::_exit(kInterrupted);
}

/// A thread started before main (none is expected) has the signals unblocked: hand them to the listener.
void forward_interrupt(int signum) { ::pthread_kill(g_listener, signum); }

/// SIGINT (unless the shell started us with it ignored, as Python keeps it) and SIGTERM, to the listener.
void handle_interrupts() {
  sigset_t signals;
  sigemptyset(&signals);
  struct sigaction before {};
  if (::sigaction(SIGINT, nullptr, &before) == 0 && before.sa_handler != SIG_IGN) sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  g_on_tty = isatty(STDERR_FILENO);
  std::thread listener(listen_for_interrupts, signals);
  g_listener = listener.native_handle();
  listener.detach();
  struct sigaction forward {};
  forward.sa_handler = forward_interrupt;
  sigemptyset(&forward.sa_mask);
  for (int signum : {SIGINT, SIGTERM}) {
    if (sigismember(&signals, signum)) ::sigaction(signum, &forward, nullptr);
  }
}

// ---------------------------------------------------------------- open, generate, write outputs

/// The build opened with the chosen backend, and how long that took.
ddt::Pipeline open_build(const Options& o, double& seconds) {
  const auto start = std::chrono::steady_clock::now();
  ddt::Pipeline pipe = ddt::Pipeline::open(o.build_dir, o.open);
  seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return pipe;
}

/// An --order past 64 bits, refused as SamplerSettings.validate refuses it: a rule it checks first fails first
/// (order 1 stands in for it), else it is out of 1 to 4.
void check_huge_order(const ddt::Pipeline& pipe, const Options& o) {
  if (!o.huge_order) return;
  pipe.settings(o.generate);
  throw ddt::Error("order must be from 1 to 4 (got " + *o.huge_order + "); the official Adams sampler goes to 4");
}

/// The run itself: the noise file read, a progress line where stderr is a terminal.
ddt::Result generate(const ddt::Pipeline& pipe, Options& o) {
  if (isatty(fileno(stderr))) {
    const int total = o.generate.num_steps.value_or(pipe.defaults().num_steps);
    const std::string backend = pipe.backend();
    o.generate.progress = [total, backend](int i) {
      std::cerr << "\rsampling (" << backend << ") " << i + 1 << "/" << total << std::flush;
      if (i + 1 == total) std::cerr << "\r\033[K";
    };
  }
  return pipe.generate(o.labels, o.generate);
}

/// The `--json` summary: the run's class ids, steps, sampler and order, schedule and timing (the keys the tests and
/// benchmarks read).
nlohmann::ordered_json summary(const ddt::Pipeline& pipe, const Options& o, const ddt::Result& r, double open_seconds) {
  const ddt::Timing& t = r.timing;
  const double overhead = t.loop_seconds - t.encode_seconds - t.decode_seconds;
  return {{"backend", pipe.backend()},
          {"precision", pipe.precision()},
          {"samples", o.labels.size()},
          {"labels", o.labels},
          {"steps", r.settings.num_steps},
          {"sampler", r.settings.sampler},
          {"order", r.settings.order},
          {"recompute", r.recompute},
          {"sharing_ratio", r.sharing_ratio()},
          {"open_seconds", open_seconds},
          {"runner_seconds", t.runner_seconds},
          {"loop_seconds", t.loop_seconds},
          {"encode_seconds", t.encode_seconds},
          {"decode_seconds", t.decode_seconds},
          {"encode_calls", t.encode_calls},
          {"decode_calls", t.decode_calls},
          {"encode_cond_only_calls", t.encode_cond_only_calls},
          {"decode_cond_only_calls", t.decode_cond_only_calls},
          {"full_cfg", o.generate.full_cfg},
          {"overhead_seconds_per_step", overhead / r.settings.num_steps}};
}

/// The latents file (atomically), the two-line report on stderr, the JSON summary on stdout.
void write_outputs(const ddt::Pipeline& pipe, const Options& o, const ddt::Result& r, double open_seconds) {
  if (o.latents_file) {
    const std::lock_guard<std::mutex> hold(g_writing);  // an interrupt waits until the file is whole or removed
    ddt::write_npy(*o.latents_file, r.latents);
  }
  const std::string solver = r.settings.sampler == "euler" ? "" : " (adams, order " + std::to_string(r.settings.order) + ")";
  std::cerr << o.labels.size() << " samples, " << r.settings.num_steps << " steps" << solver << ", encoder ran " << r.recompute.size()
            << " times (sharing ratio " << std::fixed << std::setprecision(2) << r.sharing_ratio() << "), " << pipe.backend()
            << " " << pipe.precision() << (o.generate.full_cfg ? ", full CFG batch at every call" : "") << "\n"
            << std::defaultfloat;
  std::cerr << (o.latents_file ? "latents -> " + *o.latents_file : "nothing saved: pass --save-latents FILE.npy") << "\n";
  if (o.json) std::cout << summary(pipe, o, r, open_seconds).dump() << std::endl;
}

int run(int argc, char** argv) {
  const Args args = parse(argc, argv);
  if (args.has("--help")) {
    std::cout << kUsage;
    return 0;
  }
  Options options = validate(args);
  double open_seconds = 0;
  const ddt::Pipeline pipe = open_build(options, open_seconds);
  options.labels = pipe.parse_labels(options.labels_text);  // names need the build's names, ids its classes
  check_huge_order(pipe, options);
  const ddt::Result result = generate(pipe, options);
  write_outputs(pipe, options, result, open_seconds);
  return 0;
}

}  // namespace

/// An operating-system failure while reading or writing (ddt_export.errors.IO_ERRNOS: a full disk or
/// quota, a read-only or failing file system, too many open files, ...), as opposed to a bug.
bool machine_failure(const std::system_error& e) {
  static const int kErrnos[] = {ENOSPC, EDQUOT, EROFS, EIO, EMFILE, ENFILE, EFBIG, ENAMETOOLONG, ELOOP, EACCES, EPERM, ENOTDIR, EXDEV};
  if (e.code().category() != std::generic_category() && e.code().category() != std::system_category()) return false;
  for (int err : kErrnos) {
    if (e.code().value() == err) return true;
  }
  return false;
}

int main(int argc, char** argv) {
  std::signal(SIGXFSZ, SIG_IGN);  // past a file size limit, write() fails with EFBIG (one line, exit 74), as in Python
  try {
    handle_interrupts();
    return run(argc, argv);
  } catch (const Usage& e) {
    std::cerr << "error: " << e.what() << " (see `ddt-run --help`)\n";
    return 2;
  } catch (const ddt::IoError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kIoError;
  } catch (const ddt::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "error: out of memory; use fewer labels or steps\n";
    return 1;
  } catch (const std::system_error& e) {
    const std::string what = e.what();
    std::cerr << (machine_failure(e) ? "error: " : "internal error: ") << what.substr(0, what.find('\n'))
              << (machine_failure(e) ? "; fix the machine or the path, then run again\n" : " (please report it)\n");
    return machine_failure(e) ? kIoError : 1;
  } catch (const std::exception& e) {  // a bug, not bad input: say so in one line
    std::string what = e.what();
    std::cerr << "internal error: " << what.substr(0, what.find('\n')) << " (please report it)\n";
    return 1;
  }
}
