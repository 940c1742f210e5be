// ddt-run: sample latents from a build folder with the C++ runtime (the C++ twin of
// `ddt-export generate ... --save-latents`). Errors: one line on stderr, exit 2.

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "ddt/runtime.h"

namespace {

const char* kUsage = R"(usage: ddt-run BUILD_DIR --labels 1,7 [options]

Sample latents with the Euler loop, CFG in its interval, and the encoder only at scheduled steps.

  --backend NAME        libtorch (default) or tensorrt (when compiled in)
  --labels A,B,...      class labels, one sample each (required)
  --seed N              noise seed: torch.randn on a CPU generator, as the Python CLI [default: 0]
  --noise FILE.npy      noise of shape (B, C, H, W) instead of --seed
  --steps N             sampling steps [default: the build's]
  --cfg W               guidance scale
  --interval LO,HI      guidance interval (strict)
  --timeshift S         time shift of the grid
  --last-step L         last step of the grid, in (0, 1)
  --recompute 0,3,6     explicit encoder steps
  --sharing-ratio R     fraction of steps that reuse the encoder's state, in [0, 1)
  --schedule dp|uniform with --sharing-ratio [default: dp, needs `ddt-export calibrate`]
  --save-latents FILE   write the final latents (.npy, float32)
  --threads N           LibTorch CPU threads [default: all cores]
  --json                print a JSON summary (schedule, timing) on stdout
  --help                this text
)";

struct Usage : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::vector<int64_t> parse_ints(const std::string& text, const std::string& what) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    if (item.find_first_not_of(' ') == std::string::npos) continue;
    size_t used = 0;
    try {
      out.push_back(std::stoll(item, &used));
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || item.find_first_not_of(' ', used) != std::string::npos) {
      throw ddt::Error(what + " must be comma-separated integers, e.g. 1,7 (got '" + text + "')");
    }
  }
  return out;
}

double parse_double(const std::string& text, const std::string& what) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size()) throw ddt::Error(what + " must be a number (got '" + text + "')");
  return v;
}

int64_t parse_int(const std::string& text, const std::string& what) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size()) throw ddt::Error(what + " must be an integer (got '" + text + "')");
  return v;
}

std::string json_list(const std::vector<int>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

int run(int argc, char** argv) {
  const std::map<std::string, bool> known = {  // option -> takes a value
      {"--backend", true},   {"--labels", true},    {"--seed", true},          {"--noise", true},
      {"--steps", true},     {"--cfg", true},       {"--interval", true},      {"--timeshift", true},
      {"--last-step", true}, {"--recompute", true}, {"--sharing-ratio", true}, {"--schedule", true},
      {"--save-latents", true}, {"--threads", true}, {"--json", false},       {"--help", false}};
  std::map<std::string, std::string> opt;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      positional.push_back(arg);
      continue;
    }
    std::string value;
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    const auto it = known.find(arg);
    if (it == known.end()) throw Usage("no such option: " + arg);
    if (it->second && eq == std::string::npos) {
      if (i + 1 >= argc) throw Usage("option " + arg + " requires an argument");
      value = argv[++i];
    }
    opt[arg] = value;
  }
  if (opt.count("--help")) {
    std::cout << kUsage;
    return 0;
  }
  if (positional.size() != 1) throw Usage(positional.empty() ? "missing argument BUILD_DIR" : "got more than one BUILD_DIR");
  if (!opt.count("--labels")) throw Usage("missing option --labels");
  if (opt.count("--seed") && opt.count("--noise")) throw ddt::Error("give either --seed or --noise, not both");

  ddt::GenerateOptions o;
  const std::vector<int64_t> labels = parse_ints(opt["--labels"], "--labels");
  if (opt.count("--seed")) {
    const int64_t seed = parse_int(opt["--seed"], "--seed");
    if (seed < 0) throw ddt::Error("--seed must be >= 0 (got " + std::to_string(seed) + ")");
    o.seed = static_cast<uint64_t>(seed);
  }
  if (opt.count("--steps")) o.num_steps = static_cast<int>(parse_int(opt["--steps"], "--steps"));
  if (opt.count("--cfg")) o.guidance = parse_double(opt["--cfg"], "--cfg");
  if (opt.count("--interval")) {
    const std::string& text = opt["--interval"];
    const size_t comma = text.find(',');
    if (comma == std::string::npos || text.find(',', comma + 1) != std::string::npos) {
      throw ddt::Error("--interval takes LO,HI, e.g. 0.3,1.0 (got '" + text + "')");
    }
    o.interval_min = parse_double(text.substr(0, comma), "--interval LO");
    o.interval_max = parse_double(text.substr(comma + 1), "--interval HI");
  }
  if (opt.count("--timeshift")) o.timeshift = parse_double(opt["--timeshift"], "--timeshift");
  if (opt.count("--last-step")) o.last_step = parse_double(opt["--last-step"], "--last-step");
  if (opt.count("--recompute")) {
    std::vector<int> steps;
    for (int64_t s : parse_ints(opt["--recompute"], "--recompute")) steps.push_back(static_cast<int>(s));
    o.schedule.recompute = steps;
  }
  if (opt.count("--sharing-ratio")) o.schedule.sharing_ratio = parse_double(opt["--sharing-ratio"], "--sharing-ratio");
  if (opt.count("--schedule")) o.schedule.method = opt["--schedule"];
  if (opt.count("--threads")) ddt::set_cpu_threads(static_cast<int>(parse_int(opt["--threads"], "--threads")));

  if (opt.count("--save-latents")) {  // fail before sampling, not after
    const std::filesystem::path parent = std::filesystem::path(opt["--save-latents"]).parent_path();
    if (!parent.empty() && !std::filesystem::is_directory(parent)) {
      throw ddt::Error("cannot write " + opt["--save-latents"] + ": folder " + parent.string() + " does not exist");
    }
  }
  const std::string backend = opt.count("--backend") ? opt["--backend"] : "libtorch";
  ddt::Pipeline pipe = ddt::Pipeline::open(positional[0], backend);
  if (opt.count("--noise")) o.noise = ddt::read_npy(opt["--noise"]);
  const bool tty = isatty(fileno(stderr));
  const int total = o.num_steps.value_or(pipe.defaults().num_steps);
  if (tty) {
    o.progress = [total, &backend](int i) {
      std::cerr << "\rsampling (" << backend << ") " << i + 1 << "/" << total << std::flush;
      if (i + 1 == total) std::cerr << "\r\033[K";
    };
  }
  const ddt::Result r = pipe.generate(labels, o);
  std::cerr << labels.size() << " samples, " << r.settings.num_steps << " steps, encoder ran " << r.recompute.size()
            << " times (sharing ratio " << std::fixed << std::setprecision(2) << r.sharing_ratio() << ")\n"
            << std::defaultfloat;
  if (opt.count("--save-latents")) {
    ddt::write_npy(opt["--save-latents"], r.latents);
    std::cerr << "latents -> " << opt["--save-latents"] << "\n";
  } else {
    std::cerr << "nothing saved: pass --save-latents FILE.npy\n";
  }
  if (opt.count("--json")) {
    const ddt::Timing& t = r.timing;
    const double overhead = t.loop_seconds - t.encode_seconds - t.decode_seconds;
    std::cout << std::setprecision(9) << "{\"backend\": \"" << backend << "\", \"samples\": " << labels.size()
              << ", \"steps\": " << r.settings.num_steps << ", \"recompute\": " << json_list(r.recompute)
              << ", \"sharing_ratio\": " << r.sharing_ratio() << ", \"loop_seconds\": " << t.loop_seconds
              << ", \"encode_seconds\": " << t.encode_seconds << ", \"decode_seconds\": " << t.decode_seconds
              << ", \"encode_calls\": " << t.encode_calls << ", \"decode_calls\": " << t.decode_calls
              << ", \"overhead_seconds_per_step\": " << overhead / r.settings.num_steps << "}" << std::endl;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const Usage& e) {
    std::cerr << "error: " << e.what() << " (see `ddt-run --help`)\n";
    return 2;
  } catch (const ddt::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {  // a bug, not bad input: say so in one line
    std::string what = e.what();
    std::cerr << "internal error: " << what.substr(0, what.find('\n')) << " (please report it)\n";
    return 1;
  }
}
