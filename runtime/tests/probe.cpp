// ddt_runtime_probe: prints the runtime's own numbers for tests/runtime to compare with torch and
// hashlib. Reads commands from stdin, one per line, and answers each with one line:
//   grid N LAST|none SHIFT   the N + 1 time points, as float32 bit patterns (8 hex digits each)
//   randn SEED D0 D1 ...     seeded_noise((D0), (D1, ...), SEED) as float32 bit patterns
//   sha256 PATH              the file's sha256, hex
//   kernels                  which torch kernel build the numbers follow: avx2 or default
//   lockpath PATH            the build folder's lock file (build_lock.h), or an empty line
//   lockshared PATH SECONDS  holds the folder's shared lock that long, then prints held or unheld
//   limits                   kMaxSteps kMaxBatch (ddt/runtime.h)
//   settings N GUIDANCE LO HI SHIFT LAST|none [SAMPLER ORDER]
//                            SamplerSettings::validate() on these values: ok, or error: <its message>;
//                            SAMPLER is the name's bytes in hex after an x ("x" is the empty name)
//   representable N GUIDANCE LO HI SHIFT LAST|none [SAMPLER ORDER]
//                            the same, then finite.h's check_representable (float32 can hold them)
//   whole_list TEXT          ddt::whole_list(TEXT, "--labels"): ok and the numbers, comma-separated, or error: <message>
//   seed TEXT                ddt::check_seed(TEXT): ok N, or error: <message>; TEXT as SAMPLER above
//   decimal WHAT EXAMPLE TEXT ddt::decimal(TEXT, WHAT, EXAMPLE): ok and the double's 64 bits (16 hex digits), or
//                            error: <message>; WHAT, EXAMPLE and TEXT as SAMPLER above
//   labels NAMES TEXT        ddt::resolve_labels(ddt::split_labels(TEXT, "--labels"), names, "--labels"): ok and the
//                            ids, comma-separated, or error: <message>; NAMES is the path (hex, as TEXT) of a JSON
//                            list of lines, or none (a build without names)
//   labellist NAMES ITEMS    the same for a list (ITEMS: a JSON list of strings, hex): label_entry and
//                            resolve_labels one element at a time, as Pipeline::label_ids, what "labels"
//   classnames K NAMES       ddt::check_class_names(the lines, K, "NAMES"): ok and the lines as Python's
//                            json.dumps(separators=(",", ":")), or error: <message>
//   closest NAMES TEXT K     ClassNames::closest(TEXT, K): the ids, comma-separated
//   pyjson TEXT              the JSON document TEXT as Python's json.dumps(sort_keys=True, separators=(",", ":"))
//   floatrepr BITS           the double with these 64 bits (hex) as Python's repr
//   steps N LAST|none SHIFT SAMPLER ORDER
//                            solvers.h plan_steps: t (N), dt (N), then every step's coefficients, as
//                            float32 bit patterns on one line

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include "ddt/runtime.h"
#include "build_lock.h"
#include "finite.h"
#include "text.h"
#include "sha256.h"
#include "solvers.h"
#include "torch_cpu.h"

namespace {

void print_bits(const std::vector<float>& values) {
  std::string line;
  line.reserve(values.size() * 9);
  char buf[16];
  for (float v : values) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    std::snprintf(buf, sizeof buf, "%08x ", u);
    line += buf;
  }
  std::cout << line << "\n";
}

/// A double as Python's repr writes it (nan, inf, 5e-324 included: no range error for subnormals).
double number(std::istream& in) {
  std::string text;
  in >> text;
  return std::strtod(text.c_str(), nullptr);
}

/// "x" then the bytes in hex ("x" alone is the empty text): any text, spaces and newlines included.
std::string hex_text(std::istream& in) {
  std::string word, out;
  in >> word;
  for (size_t i = 1; i + 1 < word.size(); i += 2) out += static_cast<char>(std::stoi(word.substr(i, 2), nullptr, 16));
  return out;
}

void validate_settings(std::istream& in, bool representable) {
  ddt::SamplerSettings s;
  long long steps;
  in >> steps;
  s.num_steps = static_cast<int>(std::max<long long>(std::min<long long>(steps, INT_MAX), INT_MIN));
  s.guidance = number(in);
  s.interval_min = number(in);
  s.interval_max = number(in);
  s.timeshift = number(in);
  std::string last;
  in >> last;
  if (last != "none") s.last_step = std::strtod(last.c_str(), nullptr);
  if (in >> std::ws && !in.eof()) {
    s.sampler = hex_text(in);
    long long order;
    in >> order;
    s.order = order;
  }
  s.validate();
  if (representable) ddt::detail::check_representable(s);
  std::cout << "ok\n";
}

/// A JSON list of class-name lines from the file whose path is the next hex word, or nothing for "none".
std::optional<std::vector<std::string>> names_file(std::istream& in) {
  const std::string word = (in >> std::ws, std::string(1, static_cast<char>(in.peek())));
  if (word == "n") {
    std::string none;
    in >> none;
    return std::nullopt;
  }
  std::ifstream file(hex_text(in));
  return nlohmann::json::parse(file).get<std::vector<std::string>>();
}

std::string joined(const std::vector<std::string>& ids) {
  std::string out;
  for (const std::string& n : ids) out += (out.empty() ? "" : ",") + n;
  return out;
}

/// labels, labellist, classnames, closest: class_names.cpp, against ddt_export/class_names.py.
void class_names_command(const std::string& cmd, std::istream& in) {
  if (cmd == "classnames") {
    int64_t k;
    in >> k;
    const std::vector<std::string> lines = ddt::check_class_names(names_file(in).value(), k, "NAMES");
    std::cout << "ok " << ddt::detail::python_json(nlohmann::json(lines)) << "\n";
    return;
  }
  const std::optional<std::vector<std::string>> lines = names_file(in);
  const std::optional<ddt::ClassNames> names = lines ? std::optional<ddt::ClassNames>(ddt::ClassNames(*lines)) : std::nullopt;
  const ddt::ClassNames* known = names ? &*names : nullptr;
  if (cmd == "labels") {
    const std::vector<std::string> ids = ddt::resolve_labels(ddt::split_labels(hex_text(in), "--labels"), known, "--labels");
    std::cout << "ok " << joined(ids) << "\n";
  } else if (cmd == "labellist") {
    std::vector<std::string> ids;
    for (const std::string& item : nlohmann::json::parse(hex_text(in)).get<std::vector<std::string>>()) {
      ids.push_back(ddt::resolve_labels({ddt::label_entry(item, "labels")}, known, "labels").front());
    }
    std::cout << "ok " << joined(ids) << "\n";
  } else {
    const std::string text = hex_text(in);
    size_t k;
    in >> k;
    std::vector<std::string> ids;
    for (int64_t i : names.value().closest(text, k)) ids.push_back(std::to_string(i));
    std::cout << joined(ids) << "\n";
  }
}

void print_steps(std::istream& in) {
  int n, order;
  std::string last, sampler;
  double shift;
  in >> n >> last >> shift >> sampler >> order;
  std::optional<double> l;
  if (last != "none") l = std::stod(last);
  const ddt::detail::Steps steps = ddt::detail::plan_steps(n, l, shift, sampler, order);
  std::vector<float> all(steps.t);
  all.insert(all.end(), steps.dt.begin(), steps.dt.end());
  for (const std::vector<float>& c : steps.coefficients) all.insert(all.end(), c.begin(), c.end());
  print_bits(all);
}

}  // namespace

int main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    try {
      if (cmd == "grid") {
        int n;
        std::string last;
        double shift;
        in >> n >> last >> shift;
        std::optional<double> l;
        if (last != "none") l = std::stod(last);
        print_bits(ddt::timesteps(n, l, shift));
      } else if (cmd == "randn") {
        uint64_t seed;
        int64_t batch;
        in >> seed >> batch;
        std::vector<int64_t> shape;
        for (int64_t d; in >> d;) shape.push_back(d);
        print_bits(ddt::seeded_noise(batch, shape, seed).data);
      } else if (cmd == "sha256") {
        std::string path;
        std::getline(in >> std::ws, path);
        std::cout << ddt::detail::sha256_file(path) << "\n";
      } else if (cmd == "lockpath") {
        std::string path;
        std::getline(in >> std::ws, path);
        std::cout << ddt::detail::lock_path(path).string() << "\n";
      } else if (cmd == "lockshared") {
        std::string path;
        double seconds;
        in >> path >> seconds;
        const ddt::detail::SharedBuildLock lock(path);
        std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
        std::cout << (lock.held() ? "held" : "unheld") << std::endl;
      } else if (cmd == "limits") {
        std::cout << ddt::kMaxSteps << " " << ddt::kMaxBatch << "\n";
      } else if (cmd == "steps") {
        print_steps(in);
      } else if (cmd == "settings" || cmd == "representable") {
        validate_settings(in, cmd == "representable");
      } else if (cmd == "whole_list") {
        const std::vector<std::string> numbers = ddt::whole_list(hex_text(in), "--labels");
        std::string joined;
        for (const std::string& n : numbers) joined += (joined.empty() ? "" : ",") + n;
        std::cout << "ok " << joined << "\n";
      } else if (cmd == "pyjson") {
        std::cout << ddt::detail::python_json(nlohmann::json::parse(hex_text(in))) << "\n";
      } else if (cmd == "floatrepr") {
        uint64_t bits;
        in >> std::hex >> bits;
        double v;
        std::memcpy(&v, &bits, sizeof v);
        std::cout << ddt::detail::float_repr(v) << "\n";
      } else if (cmd == "decimal") {
        const std::string what = hex_text(in), example = hex_text(in);
        const double v = ddt::decimal(hex_text(in), what, example);
        uint64_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        char buf[24];
        std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(bits));
        std::cout << "ok " << buf << "\n";
      } else if (cmd == "seed") {
        const uint64_t seed = ddt::check_seed(hex_text(in));
        std::cout << "ok " << seed << "\n";
      } else if (cmd == "labels" || cmd == "labellist" || cmd == "classnames" || cmd == "closest") {
        class_names_command(cmd, in);
      } else if (cmd == "kernels") {
        std::cout << (ddt::detail::torch_kernels() == ddt::detail::TorchKernels::Avx2 ? "avx2" : "default") << "\n";
      } else {
        std::cout << "error: unknown command " << cmd << "\n";
      }
    } catch (const std::exception& e) {
      std::cout << "error: " << e.what() << "\n";
    }
  }
  return 0;
}
