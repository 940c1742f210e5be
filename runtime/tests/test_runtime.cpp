// Unit tests of the C++ runtime's own pieces (registered with CTest): the time grid, seeded
// noise, schedules (DP against brute force and the official tie-breaks), .npy round trips,
// SHA-256 test vectors, manifest errors and calibration lookup, the loop's protocol against a
// fake backend, and manifest.json against its JSON Schema. Golden values come from the Python
// package, torch and FIPS 180-4 (tests/runtime/ checks the whole chain, and the grid and noise
// over many more cases).
//
//   ddt_runtime_tests [--schema ddt_export/manifest.schema.json] [--manifest BUILD_DIR]...
//
// With --schema, the schema is checked against what the manifest reader requires, and every
// --manifest build folder's real manifest.json must conform to it (tests/runtime passes the
// session's builds: fp32, int8, with LibTorch modules, calibrated); without, those tests are skipped.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "ddt/runtime.h"
#include "manifest.h"
#include "sampler.h"
#include "json_schema.h"
#include "sha256.h"

namespace fs = std::filesystem;

namespace {

int g_failed = 0, g_passed = 0;

#define CHECK(cond)                                                                    \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::cerr << __FILE__ << ":" << __LINE__ << ": CHECK failed: " #cond << "\n";    \
      throw std::runtime_error("check failed");                                        \
    }                                                                                  \
  } while (0)

/// `fn` must throw ddt::Error whose one-line message contains `needle`.
void expect_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
  } catch (const ddt::Error& e) {
    const std::string msg = e.what();
    if (msg.find(needle) == std::string::npos || msg.find('\n') != std::string::npos) {
      std::cerr << "unexpected message: " << msg << " (wanted '" << needle << "')\n";
      throw std::runtime_error("wrong message");
    }
    return;
  }
  std::cerr << "no ddt::Error thrown (wanted '" << needle << "')\n";
  throw std::runtime_error("no error");
}

void run(const char* name, const std::function<void()>& test) {
  try {
    test();
    ++g_passed;
    std::cout << "PASS " << name << "\n";
  } catch (const std::exception& e) {
    ++g_failed;
    std::cout << "FAIL " << name << ": " << e.what() << "\n";
  }
}

fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("ddt_runtime_tests_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

// ---------------------------------------------------------------- time grid and noise

void test_timesteps_match_python() {
  // ddt_export.sampler.timesteps(12, 0.05, 1.5), bit for bit (== the official torch grid)
  const std::vector<float> want = {0x0.0p+0f,        0x1.e5a424p-5f, 0x1.f479d4p-4f, 0x1.832f1ep-3f, 0x1.0a8544p-2f,
                                   0x1.585a9ep-2f,   0x1.ab9ab8p-2f, 0x1.026dcap-1f, 0x1.3264cap-1f, 0x1.6615fcp-1f,
                                   0x1.9df51ep-1f,   0x1.da895ep-1f, 0x1.0p+0f};
  CHECK(ddt::timesteps(12, 0.05, 1.5) == want);
  // the 256 config: 250 steps, last step 0.04, no shift; indices around torch's vector/scalar seams
  const std::vector<float> t = ddt::timesteps(250, 0.04, 1.0);
  CHECK(t.size() == 251);
  const std::pair<int, float> golden[] = {{0, 0x0.0p+0f},         {1, 0x1.f9567cp-9f},   {7, 0x1.ba2bacp-6f},
                                          {8, 0x1.f9567cp-6f},    {9, 0x1.1c40a6p-5f},   {15, 0x1.d9c114p-5f},
                                          {16, 0x1.f9567cp-5f},   {17, 0x1.0c75f2p-4f},  {100, 0x1.8acb9p-2f},
                                          {124, 0x1.e98bc8p-2f},  {125, 0x1.ed7e74p-2f}, {126, 0x1.f1712p-2f},
                                          {200, 0x1.8acb9p-1f},   {248, 0x1.e98bc8p-1f}, {249, 0x1.eb851ep-1f},
                                          {250, 0x1.0p+0f}};
  for (const auto& [i, v] : golden) CHECK(t[i] == v);
  // last_step defaults to 1 / N; one step is [0, 1]
  CHECK(ddt::timesteps(4) == std::vector<float>({0.0f, 0.25f, 0.5f, 0.75f, 1.0f}));
  CHECK(ddt::timesteps(1, 0.3, 2.0) == std::vector<float>({0.0f, 1.0f}));
}

void test_seeded_noise_matches_torch() {
  // torch.randn((2, 4, 8, 8), generator=torch.Generator("cpu").manual_seed(0))
  const ddt::Array n = ddt::seeded_noise(2, {4, 8, 8}, 0);
  CHECK((n.shape == std::vector<int64_t>{2, 4, 8, 8}) && n.data.size() == 512);
  const std::pair<int, float> golden[] = {{0, -0x1.20370ap+0f},   {1, -0x1.270114p+0f}, {15, -0x1.fa6cf8p-3f},
                                          {16, -0x1.5a4784p+0f},  {17, -0x1.b2288cp+0f}, {100, -0x1.4e815ap+1f},
                                          {511, -0x1.a94a9ep+0f}};
  for (const auto& [i, v] : golden) CHECK(n.data[i] == v);
  double sum = 0;
  for (float v : n.data) sum += v;
  CHECK(sum == 0x1.ffb2537d14p+4);
  // fewer than 16 values take torch's scalar path: torch.randn((1, 4, 2, 2), seed 7)
  const ddt::Array m = ddt::seeded_noise(1, {4, 2, 2}, 7);
  CHECK(m.data[0] == -0x1.a3e8acp-1f && m.data[3] == -0x1.636e7p+0f && m.data[15] == 0x1.17151p+0f);
}

// ---------------------------------------------------------------- schedules

double cost_of(const ddt::Array& sim, const std::vector<int>& steps) {
  const int N = static_cast<int>(sim.shape[0]);
  double total = 0;
  for (size_t s = 0; s < steps.size(); ++s) {
    const int j = steps[s], end = s + 1 < steps.size() ? steps[s + 1] : N;
    for (int m = j; m < end; ++m) total += static_cast<double>(1.0f - sim.data[m * N + j]);
  }
  return total;
}

void test_dp_matches_brute_force() {
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (int N = 1; N <= 9; ++N) {
    ddt::Array sim{{N, N}, std::vector<float>(N * N)};
    for (float& v : sim.data) v = u(rng);
    for (int K = 1; K <= N; ++K) {
      double best = std::numeric_limits<double>::infinity();
      for (unsigned mask = 0; mask < (1u << N); ++mask) {  // every K-subset that contains step 0
        if (!(mask & 1u) || __builtin_popcount(mask) != K) continue;
        std::vector<int> steps;
        for (int i = 0; i < N; ++i)
          if (mask & (1u << i)) steps.push_back(i);
        best = std::min(best, cost_of(sim, steps));
      }
      const std::vector<int> got = ddt::dp_schedule(sim, K);
      CHECK(static_cast<int>(got.size()) == K && got[0] == 0 && std::is_sorted(got.begin(), got.end()));
      CHECK(std::fabs(cost_of(sim, got) - best) <= 1e-9 * std::max(1.0, best));
    }
  }
}

void test_dp_ties_as_official() {
  // official_dp on matrices with exact ties: the first minimum wins
  const int N = 6;
  ddt::Array a{{N, N}, {}};
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < N; ++j) a.data.push_back(1.0f - 0.25f * std::abs(i - j));
  CHECK(ddt::dp_schedule(a, 2) == std::vector<int>({0, 3}));
  CHECK(ddt::dp_schedule(a, 3) == std::vector<int>({0, 2, 4}));
  CHECK(ddt::dp_schedule(a, 4) == std::vector<int>({0, 1, 2, 4}));
  ddt::Array b{{8, 8}, {}};
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j) b.data.push_back(1.0f - 0.125f * (((i - j) % 3 + 3) % 3));  // Python's (i - j) % 3
  CHECK(ddt::dp_schedule(b, 3) == std::vector<int>({0, 1, 3}));
  CHECK(ddt::dp_schedule(b, 6) == std::vector<int>({0, 1, 2, 3, 4, 6}));
  ddt::Array ones{{6, 6}, std::vector<float>(36, 1.0f)};
  CHECK(ddt::dp_schedule(ones, 3) == std::vector<int>({0, 1, 2}));
}

void test_uniform_and_budgets() {
  CHECK(ddt::refresh_rate(0.0) == 1 && ddt::refresh_rate(0.5) == 2 && ddt::refresh_rate(0.75) == 4);
  CHECK(ddt::refresh_rate(0.6) == 2);              // round(2.5) == 2: Python rounds half to even
  CHECK(ddt::refresh_rate(1.0 - 1.0 / 3.5) == 4);  // round(3.5) == 4
  CHECK(ddt::refresh_rate(0.87) == 8 && ddt::refresh_rate(0.83) == 6);
  CHECK(ddt::uniform_schedule(10, 0.75) == std::vector<int>({0, 4, 8}));
  CHECK(ddt::dp_budget(250, 0.75) == 62 && ddt::dp_budget(3, 0.87) == 1);
  ddt::Schedule none;
  CHECK(ddt::resolve_schedule(3, none, nullptr) == std::vector<int>({0, 1, 2}));
  ddt::Schedule zero;
  zero.sharing_ratio = 0.0;
  CHECK(ddt::resolve_schedule(3, zero, nullptr) == std::vector<int>({0, 1, 2}));
  ddt::Schedule uni;
  uni.sharing_ratio = 0.5;
  uni.method = "uniform";
  CHECK(ddt::resolve_schedule(5, uni, nullptr) == std::vector<int>({0, 2, 4}));
}

void test_schedule_errors() {
  expect_error([] { ddt::check_recompute({1, 2}, 5); }, "must start at step 0");
  expect_error([] { ddt::check_recompute({0, 3, 3}, 5); }, "strictly increasing");
  expect_error([] { ddt::check_recompute({0, 5}, 5); }, "recompute step 5 is out of range for 5 steps");
  expect_error([] { ddt::check_ratio(1.0); }, "sharing ratio must be in [0, 1)");
  expect_error([] { ddt::check_ratio(-0.1); }, "sharing ratio must be in [0, 1)");
  ddt::Schedule both;
  both.recompute = std::vector<int>{0};
  both.sharing_ratio = 0.5;
  expect_error([&] { ddt::resolve_schedule(4, both, nullptr); }, "not both");
  ddt::Schedule dp;
  dp.sharing_ratio = 0.5;
  expect_error([&] { ddt::resolve_schedule(4, dp, nullptr); }, "ddt-export calibrate BUILD --steps 4");
  ddt::Array sim{{3, 3}, std::vector<float>(9, 1.0f)};
  expect_error([&] { ddt::resolve_schedule(4, dp, &sim); }, "similarity matrix is for 3 steps, not 4");
  dp.method = "cosine";
  expect_error([&] { ddt::resolve_schedule(4, dp, &sim); }, "unknown schedule 'cosine'");
  expect_error([&] { ddt::dp_schedule(sim, 4); }, "budget must be between 1 and the number of steps 3");
  sim.data[4] = std::nanf("");
  expect_error([&] { ddt::dp_schedule(sim, 2); }, "finite");
}

// ---------------------------------------------------------------- npy

void test_npy_round_trip() {
  const fs::path dir = temp_dir("npy");
  for (const std::vector<int64_t>& shape : {std::vector<int64_t>{2, 4, 8, 8}, {5}, {3, 1}, {}}) {
    ddt::Array a{shape, {}};
    for (int64_t i = 0; i < a.numel(); ++i) a.data.push_back(0.5f * i - 3.25f);
    const std::string p = (dir / "a.npy").string();
    ddt::write_npy(p, a);
    CHECK(fs::file_size(p) % 64 == (a.data.size() * 4) % 64);  // header padded to 64 bytes, as numpy
    const ddt::Array b = ddt::read_npy(p);
    CHECK(b.shape == a.shape && b.data == a.data);
  }
  // a float64 file as numpy.save writes it (header by hand): values convert to float32
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
  header.append(64 - (10 + header.size() + 1) % 64, ' ');
  header += '\n';
  const double vals[2] = {1.5, -2.0};
  {
    std::ofstream out(dir / "d.npy", std::ios::binary);
    out.write("\x93NUMPY\x01\x00", 8);
    const char len[2] = {static_cast<char>(header.size()), 0};
    out.write(len, 2);
    out << header;
    out.write(reinterpret_cast<const char*>(vals), sizeof vals);
  }
  CHECK(ddt::read_npy((dir / "d.npy").string()).data == std::vector<float>({1.5f, -2.0f}));
  write_text(dir / "bad.npy", "not an array");
  expect_error([&] { ddt::read_npy((dir / "bad.npy").string()); }, "not a .npy file");
  expect_error([&] { ddt::read_npy((dir / "none.npy").string()); }, "No such file or directory");
  std::string fortran = header;
  fortran.replace(fortran.find("False"), 5, "True ");
  {
    std::ofstream out(dir / "f.npy", std::ios::binary);
    out.write("\x93NUMPY\x01\x00", 8);
    const char len[2] = {static_cast<char>(fortran.size()), 0};
    out.write(len, 2);
    out << fortran;
    out.write(reinterpret_cast<const char*>(vals), sizeof vals);
  }
  expect_error([&] { ddt::read_npy((dir / "f.npy").string()); }, "Fortran order");
  std::string ints = header;
  ints.replace(ints.find("<f8"), 3, "<i8");
  {
    std::ofstream out(dir / "i.npy", std::ios::binary);
    out.write("\x93NUMPY\x01\x00", 8);
    const char len[2] = {static_cast<char>(ints.size()), 0};
    out.write(len, 2);
    out << ints;
    out.write(reinterpret_cast<const char*>(vals), sizeof vals);
  }
  expect_error([&] { ddt::read_npy((dir / "i.npy").string()); }, "expected float32");
  expect_error([&] { ddt::write_npy((dir / "no" / "such" / "x.npy").string(), ddt::Array{{1}, {1.0f}}); }, "cannot write");
}

/// Files that are not regular files are refused without blocking (a FIFO with no writer would block a
/// plain open); a write that fails is an IoError (the machine's) and leaves no temporary file.
void test_npy_files_and_failures() {
  const fs::path dir = temp_dir("npy_files");
  CHECK(::mkfifo((dir / "fifo.npy").c_str(), 0600) == 0);
  expect_error([&] { ddt::read_npy((dir / "fifo.npy").string(), 100, "noise"); }, "is not a regular file (a pipe, device or socket)");
  expect_error([&] { ddt::read_npy("/dev/zero"); }, "/dev/zero is not a regular file");
  expect_error([&] { ddt::read_npy(dir.string(), 100, "noise"); }, "is a folder; give the file itself");
  fs::create_directory(dir / "ro");
  fs::permissions(dir / "ro", fs::perms::owner_read | fs::perms::owner_exec);
  bool io_error = false;
  try {
    ddt::write_npy((dir / (::geteuid() == 0 ? "no/such" : "ro") / "x.npy").string(), ddt::Array{{1}, {1.0f}});
  } catch (const ddt::IoError& e) {
    io_error = std::string(e.what()).find("nothing half-written was kept") != std::string::npos;
  }
  CHECK(io_error);
  fs::permissions(dir / "ro", fs::perms::owner_all);
  CHECK(fs::is_empty(dir / "ro"));
  for (int i = 0; i < 3; ++i) ddt::write_npy((dir / "x.npy").string(), ddt::Array{{2}, {1.0f, float(i)}});  // replaced each time
  CHECK(ddt::read_npy((dir / "x.npy").string()).data == std::vector<float>({1.0f, 2.0f}));
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++entries;
  CHECK(entries == 3);  // fifo.npy, ro, x.npy: no temporary file left
}

/// Output paths: never inside a build folder (through a link or '..' too), no symlink loop, no name
/// over 255 bytes, no system folder (files.py's check_output_file).
void test_output_paths() {
  const fs::path dir = temp_dir("outputs");
  fs::create_directories(dir / "b" / "sub");
  write_text(dir / "b" / "manifest.json", R"({"graphs": {}, "files": {}})");
  fs::create_directory_symlink(dir / "b", dir / "link");
  fs::create_symlink("loop", dir / "loop");
  for (const fs::path& p : {dir / "b" / "x.npy", dir / "b" / "sub" / "x.npy", dir / "link" / "x.npy", dir / "b" / ".." / "b" / "x.npy"}) {
    expect_error([&] { ddt::check_output_path(p.string()); }, "is inside the build folder " + (dir / "b").string());
  }
  expect_error([&] { ddt::check_output_path((dir / "loop").string()); }, "it is a symlink loop");
  expect_error([&] { ddt::check_output_path((dir / std::string(256, 'n')).string()); }, "a file or folder name of 256 bytes");
  expect_error([] { ddt::check_output_path("/dev/shm/x.npy"); }, "/dev/shm is a system folder");
  fs::create_directory(dir / "notabuild");
  write_text(dir / "notabuild" / "manifest.json", "[1, 2]");
  ddt::check_output_path((dir / "notabuild" / "x.npy").string());  // a manifest.json that is not a build's
  ddt::check_output_path((dir / "b" / ".." / "x.npy").string());  // beside the build, not inside it
}

// ---------------------------------------------------------------- manifest

/// A manifest of a tiny model; `files`: the entries of its "files" object (none by default).
std::string manifest_text(const std::string& extra = "", const std::string& files = "") {
  return R"({"format": 1, "name": "t", "files": {)" + files + R"(},
  "model": {"num_classes": 10, "null_class": 10, "latent_shape": [4, 8, 8]},
  "sampler": {"num_steps": 12, "guidance": 3.0, "interval_min": 0.3, "interval_max": 0.9, "timeshift": 1.5, "last_step": null},
  "graphs": {
    "encoder": {"file": "encoder.onnx",
      "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 4, 8, 8]},
                 {"name": "t", "dtype": "float32", "shape": ["batch"]},
                 {"name": "y", "dtype": "int64", "shape": ["batch"]}],
      "outputs": [{"name": "s", "dtype": "float32", "shape": ["batch", 16, 64]}]},
    "decoder": {"file": "decoder.onnx",
      "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 4, 8, 8]},
                 {"name": "s", "dtype": "float32", "shape": ["batch", 16, 64]}],
      "outputs": [{"name": "v", "dtype": "float32", "shape": ["batch", 4, 8, 8]}]}}
  )" + extra + "}";
}

/// `"name": {"sha256": ..., "bytes": ...}` entries for these files of `dir`, as a build lists them.
std::string file_entries(const fs::path& dir, const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) {
    out += (out.empty() ? "\"" : ", \"") + name + "\": {\"sha256\": \"" + ddt::detail::sha256_file((dir / name).string()) +
           "\", \"bytes\": " + std::to_string(fs::file_size(dir / name)) + "}";
  }
  return out;
}

/// manifest_text for a folder with stand-in graph files, listed and hashed with `more` files (every
/// path a manifest names must be one of its hashed files).
std::string build_text(const fs::path& dir, const std::string& extra = "", std::vector<std::string> more = {}) {
  write_text(dir / "encoder.onnx", "enc");
  write_text(dir / "decoder.onnx", "dec");
  more.insert(more.begin(), {"decoder.onnx", "encoder.onnx"});
  return manifest_text(extra, file_entries(dir, more));
}

void test_manifest_reads_defaults_and_roles() {
  const fs::path dir = temp_dir("manifest_ok");
  const std::string base = build_text(dir);
  write_text(dir / "manifest.json", base);
  const ddt::detail::Manifest m = ddt::detail::read_manifest(dir);
  CHECK(m.name == "t" && m.num_classes == 10 && m.null_class == 10);
  CHECK((m.latent_shape == std::vector<int64_t>{4, 8, 8}));
  CHECK(m.sampler.num_steps == 12 && m.sampler.guidance == 3.0 && m.sampler.interval_min == 0.3);
  CHECK(m.sampler.interval_max == 0.9 && m.sampler.timeshift == 1.5 && !m.sampler.last_step);
  const ddt::detail::Roles r = m.roles();
  CHECK(r.enc_y.name == "y" && r.dec_v.name == "v" && r.enc_s.concrete(6) == std::vector<int64_t>({6, 16, 64}));
  CHECK(!m.similarity(m.sampler));
  // last_step is optional (null by default, 1 / N), as in the schema
  std::string no_last = base;
  no_last.replace(no_last.find(", \"last_step\": null"), 19, "");
  write_text(dir / "manifest.json", no_last);
  CHECK(!ddt::detail::read_manifest(dir).sampler.last_step);
  // sampler and order are optional (euler and 1, as in the schema); an Adams build's are read
  CHECK(m.sampler.sampler == "euler" && m.sampler.order == 1);
  std::string adams = base;
  adams.replace(adams.find("\"last_step\": null"), 17, "\"last_step\": null, \"sampler\": \"adams\", \"order\": 3");
  write_text(dir / "manifest.json", adams);
  const ddt::detail::Manifest a = ddt::detail::read_manifest(dir);
  CHECK(a.sampler.sampler == "adams" && a.sampler.order == 3);
  std::string bad = adams;
  bad.replace(bad.find("\"adams\""), 7, "\"heun\"");
  write_text(dir / "manifest.json", bad);
  expect_error([&] { ddt::detail::read_manifest(dir); }, "its sampler defaults are invalid (unknown sampler 'heun'; choose euler or adams)");
  bad = adams;
  bad.replace(bad.find("\"order\": 3"), 10, "\"order\": 2.5");
  write_text(dir / "manifest.json", bad);
  expect_error([&] { ddt::detail::read_manifest(dir); }, "order must be a whole number from 1 to 4 (got 2.5)");
  bad = adams;
  bad.replace(bad.find("\"adams\""), 7, "\"euler\"");
  write_text(dir / "manifest.json", bad);
  expect_error([&] { ddt::detail::read_manifest(dir); }, "order 3 is for the Adams sampler (Euler is order 1); add --sampler adams");
}

void test_manifest_errors() {
  const fs::path root = temp_dir("manifest_bad");
  expect_error([&] { ddt::detail::read_manifest(root / "nothing"); }, "has no manifest.json: run `ddt-export build` to make one");
  expect_error([&] { ddt::detail::read_manifest(root); }, "it is not a ddt-export build");
  write_text(root / "manifest.json", "{not json");
  expect_error([&] { ddt::detail::read_manifest(root); }, "is not valid JSON");
  write_text(root / "manifest.json", R"({"format": 2})");
  expect_error([&] { ddt::detail::read_manifest(root); }, "manifest format 2, this version reads 1");
  write_text(root / "manifest.json", manifest_text());  // graphs name files the manifest does not hash
  expect_error([&] { ddt::detail::read_manifest(root); }, "graphs.decoder.file names 'decoder.onnx', which is not one of the build's hashed files");
  write_text(root / "decoder.onnx", "dec");
  std::string listed = manifest_text("", file_entries(root, {"decoder.onnx"}) + R"(, "encoder.onnx": {"sha256": "0", "bytes": 3})");
  write_text(root / "manifest.json", listed);
  expect_error([&] { ddt::detail::read_manifest(root); }, "encoder.onnx is missing; the build is incomplete");
  write_text(root / "encoder.onnx", "ab");
  expect_error([&] { ddt::detail::read_manifest(root); }, "encoder.onnx does not match its sha256 in the manifest");
  write_text(root / "encoder.onnx", "abc");  // the right size, the wrong content
  expect_error([&] { ddt::detail::read_manifest(root); }, "encoder.onnx does not match its sha256 in the manifest");
  listed.replace(listed.find("\"sha256\": \"0\""), 13,
                 "\"sha256\": \"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"");
  write_text(root / "manifest.json", listed);
  ddt::detail::read_manifest(root);  // sha256("abc"): accepted
  // paths stay inside the folder (manifest_schema's BuildPath), and a hand edit shows in the digest
  std::string outside = listed;
  outside.replace(outside.find("\"encoder.onnx\": {"), 14, "\"../encoder.onnx\"");
  write_text(root / "manifest.json", outside);
  expect_error([&] { ddt::detail::read_manifest(root); }, "files names '../encoder.onnx', which is not inside the build folder");
  for (const char* digest : {R"("digest": "0")", R"("digest": 7)"}) {
    write_text(root / "manifest.json", listed.substr(0, listed.rfind('}')) + ", " + digest + "}");
    expect_error([&] { ddt::detail::read_manifest(root); }, "was edited by hand (its digest no longer matches)");
  }
  std::string no_sampler = listed;
  no_sampler.replace(no_sampler.find("\"sampler\""), 9, "\"sampling\"");
  write_text(root / "manifest.json", no_sampler);
  expect_error([&] { ddt::detail::read_manifest(root); }, "manifest lacks 'sampler'");
  std::string bad_y = listed;
  bad_y.replace(bad_y.find("\"int64\""), 7, "\"int32\"");
  write_text(root / "manifest.json", bad_y);
  expect_error([&] { ddt::detail::read_manifest(root); }, "tensor y is int32, the runtime feeds int64");
  std::string bad_shape = listed;
  bad_shape.replace(bad_shape.rfind("[\"batch\", 4, 8, 8]"), 18, "[\"batch\", 4, 4, 4]");
  write_text(root / "manifest.json", bad_shape);
  expect_error([&] { ddt::detail::read_manifest(root); }, "tensor v has shape (batch, 4, 4, 4)");
  write_text(root / "manifest.json", listed);
  const std::vector<std::string> compiled = ddt::backends();
  if (std::find(compiled.begin(), compiled.end(), "libtorch") != compiled.end()) {
    expect_error([&] { ddt::Pipeline::open(root.string(), "libtorch"); }, "has no libtorch section; rebuild with `ddt-export build --libtorch`");
  }
  if (std::find(compiled.begin(), compiled.end(), "openvino") != compiled.end()) {
    expect_error([&] { ddt::Pipeline::open(root.string(), "openvino"); }, "encoder.onnx: OpenVINO cannot read it");
  }
  expect_error([&] { ddt::Pipeline::open(root.string(), "onnx"); }, "unknown backend 'onnx'");
  std::string bad_default = listed;
  bad_default.replace(bad_default.find("\"timeshift\": 1.5"), 16, "\"timeshift\": -1.0");
  write_text(root / "manifest.json", bad_default);
  expect_error([&] { ddt::detail::read_manifest(root); }, "its sampler defaults are invalid (timeshift must be > 0");
}

/// quantization.scheme.per_token.group_size (OpenVINO's DYNAMIC_QUANTIZATION_GROUP_SIZE for the per-token sites): read
/// where present, absent where quantization or per_token is absent or null, and checked as manifest.py checks it (a
/// strict integer >= 1) with its messages (tests/runtime/test_cpp_per_token.py holds them to Python's, edit for edit).
void test_manifest_reads_per_token_group() {
  const fs::path dir = temp_dir("per_token");
  const auto read_with = [&](const std::string& quantization) {
    write_text(dir / "manifest.json", build_text(dir, quantization.empty() ? "" : ", \"quantization\": " + quantization));
    return ddt::detail::read_manifest(dir).per_token_group;
  };
  const auto scheme = [](const std::string& per_token) {
    return R"({"graphs": {}, "scheme": {"element_type": "int8", "per_token": )" + per_token + "}}";
  };
  const auto group = [&](const std::string& value) {
    return scheme(R"({"weights": "int8", "activations": {}, "group_size": )" + value + "}");
  };
  CHECK(!read_with("") && !read_with("null") && !read_with(R"({"graphs": {}, "scheme": {"element_type": "int8"}})"));
  CHECK(!read_with(scheme("null")));
  CHECK(read_with(group("64")) == 64u && read_with(group("1")) == 1u);
  CHECK(read_with(group("18446744073709551615")) == std::numeric_limits<uint64_t>::max());  // Python's int has no bound; OpenVINO's is uint64
  const std::string at = "quantization.scheme.per_token.group_size: ";
  expect_error([&] { read_with(group("0")); }, at + "Input should be greater than or equal to 1 (got 0); the manifest is damaged");
  expect_error([&] { read_with(group("-64")); }, at + "Input should be greater than or equal to 1 (got -64)");
  for (const char* v : {"64.0", "\"64\"", "true", "null", "[64]"}) {
    expect_error([&] { read_with(group(v)); }, at + "Input should be a valid integer (got ");
  }
  expect_error([&] { read_with(group("64.0")); }, "(got 64.0);");
  expect_error([&] { read_with(group("true")); }, "(got True);");
  expect_error([&] { read_with(scheme(R"({"weights": "int8"})")); }, at + "Field required (got dict)");
  expect_error([&] { read_with(scheme("7")); }, "quantization.scheme.per_token: Input should be a valid dictionary or instance of PerTokenScheme (got 7)");
  expect_error([&] { read_with(R"({"graphs": {}})"); }, "quantization.scheme: Field required (got dict)");
  expect_error([&] { read_with(R"({"graphs": {}, "scheme": "int8"})"); }, "quantization.scheme: Input should be a valid dictionary or instance of QuantScheme (got 'int8')");
  expect_error([&] { read_with("\"int8\""); }, "quantization: Input should be a valid dictionary or instance of Quantization (got 'int8')");
}

// ---------------------------------------------------------------- the loop

/// A fake backend: s is (t, label) per row; v = 0.5 x + s.t - 0.01 s.label, so every step's
/// update depends on x, t, y and on which step computed s. A cond_only call touches rows B:2B
/// only, and rows 0:B of x are poisoned after every call so that a stale read shows up as nan.
class FakeRunner : public ddt::detail::Runner {
 public:
  explicit FakeRunner(size_t batch, size_t per) : per_(per), x_(batch * per), t_(batch), y_(batch), v_(batch * per), s_(batch * 2) {}
  float* x() override { return x_.data(); }
  float* t() override { return t_.data(); }
  int64_t* y() override { return y_.data(); }
  const float* v() override { return v_.data(); }
  void encode(bool cond_only) override {
    calls.emplace_back('e', cond_only);
    encoded_at.push_back(t_[t_.size() - 1]);
    for (size_t b = cond_only ? t_.size() / 2 : 0; b < t_.size(); ++b) {
      s_[2 * b] = t_[b];
      s_[2 * b + 1] = static_cast<float>(y_[b]);
    }
  }
  void decode(bool cond_only) override {
    calls.emplace_back('d', cond_only);
    ++decodes;
    const size_t half = x_.size() / 2;
    if (!cond_only) {
      for (size_t k = 0; k < half; ++k) halves_equal = halves_equal && x_[k] == x_[half + k];
    }
    for (size_t k = cond_only ? half : 0; k < x_.size(); ++k) {
      const size_t b = k / per_;
      v_[k] = 0.5f * x_[k] + s_[2 * b] - 0.01f * s_[2 * b + 1];
    }
    std::fill(x_.begin(), x_.begin() + half, std::nanf(""));  // the loop must write rows 0:B again before they are read
    if (cond_only) std::fill(v_.begin(), v_.begin() + half, std::nanf(""));  // and never read vu after a cond_only call
  }
  std::vector<std::pair<char, bool>> calls;  // ('e' or 'd', cond_only)
  std::vector<float> encoded_at;
  int decodes = 0;
  bool halves_equal = true;
  std::vector<int64_t> labels() const { return y_; }

 private:
  size_t per_;
  std::vector<float> x_, t_;
  std::vector<int64_t> y_;
  std::vector<float> v_, s_;
};

/// The integration written out independently: full CFG at every step, the official formula.
std::vector<float> fake_reference(const std::vector<float>& noise, const std::vector<int64_t>& labels, size_t per,
                                  const ddt::SamplerSettings& st, const std::vector<int>& recompute) {
  const std::vector<float> grid = ddt::timesteps(st.num_steps, st.last_step, st.timeshift);
  const float lo = static_cast<float>(st.interval_min), hi = static_cast<float>(st.interval_max);
  std::vector<float> want(noise);
  float s_t = 0;
  for (int i = 0; i < st.num_steps; ++i) {
    if (std::find(recompute.begin(), recompute.end(), i) != recompute.end()) s_t = grid[i];
    const float w = (grid[i] > lo && grid[i] < hi) ? static_cast<float>(st.guidance) : 1.0f;
    for (size_t k = 0; k < want.size(); ++k) {
      const float vu = 0.5f * want[k] + s_t - 0.01f * 10.0f;
      const float vc = 0.5f * want[k] + s_t - 0.01f * static_cast<float>(labels[k / per]);
      const float v = vu + w * (vc - vu);
      want[k] = want[k] + v * (grid[i + 1] - grid[i]);
    }
  }
  return want;
}

void test_loop_protocol_and_update() {
  const size_t B = 2, per = 3;
  ddt::SamplerSettings st;
  st.num_steps = 6;
  st.guidance = 2.5;
  st.interval_min = 0.2;
  st.interval_max = 0.7;
  st.timeshift = 1.3;
  const std::vector<float> noise = {0.1f, -0.2f, 0.3f, 1.0f, 0.5f, -1.5f};
  const std::vector<int64_t> labels = {3, 7};
  const std::vector<int> recompute = {0, 2, 5};
  const std::vector<float> grid = ddt::timesteps(6, std::nullopt, 1.3);
  const std::vector<float> want = fake_reference(noise, labels, per, st, recompute);
  for (const bool full_cfg : {false, true}) {
    FakeRunner fake(2 * B, per);
    std::vector<int> called;
    const std::vector<float> x =
        ddt::detail::sample(fake, noise, labels, 10, st, recompute, [&](int i) { called.push_back(i); }, full_cfg);
    CHECK(fake.encoded_at == std::vector<float>({grid[0], grid[2], grid[5]}));  // encoder only at recompute steps
    CHECK(fake.decodes == 6 && fake.halves_equal && called == std::vector<int>({0, 1, 2, 3, 4, 5}));
    CHECK(fake.labels() == std::vector<int64_t>({10, 10, 3, 7}));  // [uncond; cond]
    for (size_t k = 0; k < want.size(); ++k) CHECK(std::fabs(x[k] - want[k]) <= 1e-6f * (1 + std::fabs(want[k])));
    // the calls, as cfg_halves plans them (full_cfg: every call on both halves)
    const ddt::detail::CfgHalves h = ddt::detail::cfg_halves(ddt::detail::guidance_scales(st, ddt::detail::plan_steps(st)), recompute, full_cfg);
    std::vector<std::pair<char, bool>> plan;
    for (int i = 0; i < 6; ++i) {
      if (h.encode_both.count(i)) plan.emplace_back('e', !h.encode_both.at(i));
      plan.emplace_back('d', !h.decode_both[i]);
    }
    CHECK(fake.calls == plan);
    CHECK(h.any_cond_only() == !full_cfg);
  }
}

/// The case the skip can get wrong: a state computed at an unguided step and reused at guided ones
/// keeps its unconditional half; and guidance 1.0 runs only conditional halves.
void test_loop_reuses_a_state_across_the_interval_edge() {
  const size_t B = 1, per = 2;
  ddt::SamplerSettings st;
  st.num_steps = 8;
  st.guidance = 3.0;
  st.interval_min = 0.3;
  st.interval_max = 0.8;
  const std::vector<int> recompute = {0, 2, 6};  // step 2 (t = 0.25, unguided) serves steps 3..5 (guided)
  const ddt::detail::CfgHalves h = ddt::detail::cfg_halves(ddt::detail::guidance_scales(st, ddt::detail::plan_steps(st)), recompute, false);
  CHECK(!h.decode_both[2] && h.decode_both[3] && h.encode_both.at(2));  // the case occurs
  const std::vector<float> noise = {0.4f, -0.9f};
  FakeRunner fake(2 * B, per);
  const std::vector<float> x = ddt::detail::sample(fake, noise, {4}, 10, st, recompute, nullptr);
  const std::vector<float> want = fake_reference(noise, {4}, per, st, recompute);
  for (size_t k = 0; k < want.size(); ++k) CHECK(std::fabs(x[k] - want[k]) <= 1e-6f * (1 + std::fabs(want[k])));
  st.guidance = 1.0;
  FakeRunner one(2 * B, per);
  const std::vector<float> x1 = ddt::detail::sample(one, noise, {4}, 10, st, recompute, nullptr);
  for (const auto& [kind, cond_only] : one.calls) CHECK(cond_only);
  const std::vector<float> want1 = fake_reference(noise, {4}, per, st, recompute);
  for (size_t k = 0; k < want1.size(); ++k) CHECK(std::fabs(x1[k] - want1[k]) <= 1e-6f * (1 + std::fabs(want1[k])));
}

/// The Adams loop against the update written out independently: full CFG at every step, the
/// guided velocities of every step kept, x += dt * sum_j c_j v_(i-k+1+j) in the official order.
std::vector<float> fake_adams_reference(const std::vector<float>& noise, const std::vector<int64_t>& labels, size_t per,
                                        const ddt::SamplerSettings& st, const std::vector<int>& recompute) {
  const ddt::detail::Steps steps = ddt::detail::plan_steps(st);
  const float lo = static_cast<float>(st.interval_min), hi = static_cast<float>(st.interval_max);
  std::vector<float> x(noise);
  std::vector<std::vector<float>> vs;  // the guided v of every step
  float s_t = 0;
  for (int i = 0; i < st.num_steps; ++i) {
    if (std::find(recompute.begin(), recompute.end(), i) != recompute.end()) s_t = steps.t[i];
    const float w = (steps.t[i] > lo && steps.t[i] < hi) ? static_cast<float>(st.guidance) : 1.0f;
    std::vector<float> v(x.size());
    for (size_t k = 0; k < x.size(); ++k) {
      const float vu = 0.5f * x[k] + s_t - 0.01f * 10.0f;
      const float vc = 0.5f * x[k] + s_t - 0.01f * static_cast<float>(labels[k / per]);
      v[k] = vu + w * (vc - vu);
    }
    vs.push_back(v);
    const std::vector<float>& c = steps.coefficients[i];
    const int kk = static_cast<int>(c.size());
    for (size_t e = 0; e < x.size(); ++e) {
      float acc = vs[i - kk + 1][e] * c[0];
      for (int j = 1; j < kk; ++j) acc += vs[i - kk + 1 + j][e] * c[j];
      x[e] += acc * steps.dt[i];
    }
  }
  return x;
}

void test_adams_loop() {
  const size_t B = 2, per = 3;
  const std::vector<float> noise = {0.1f, -0.2f, 0.3f, 1.0f, 0.5f, -1.5f};
  const std::vector<int64_t> labels = {3, 7};
  for (int order = 1; order <= 4; ++order) {
    ddt::SamplerSettings st;
    st.num_steps = 9;
    st.guidance = 2.5;
    st.interval_min = 0.2;
    st.interval_max = 0.7;
    st.timeshift = 1.3;
    st.last_step = 0.05;
    st.sampler = "adams";
    st.order = order;
    const ddt::detail::Steps steps = ddt::detail::plan_steps(st);
    CHECK(steps.history() == order && steps.t[0] == 0.0f && steps.coefficients[0] == std::vector<float>({1.0f}));
    CHECK(steps.coefficients[8].size() == static_cast<size_t>(order));
    const std::vector<int> recompute = {0, 3, 4, 7};
    const std::vector<float> want = fake_adams_reference(noise, labels, per, st, recompute);
    for (const bool full_cfg : {false, true}) {
      FakeRunner fake(2 * B, per);
      const std::vector<float> x = ddt::detail::sample(fake, noise, labels, 10, st, recompute, nullptr, full_cfg);
      CHECK(fake.decodes == 9 && fake.halves_equal);
      CHECK(fake.encoded_at == std::vector<float>({steps.t[0], steps.t[3], steps.t[4], steps.t[7]}));  // the running sum
      for (size_t k = 0; k < want.size(); ++k) CHECK(std::fabs(x[k] - want[k]) <= 1e-6f * (1 + std::fabs(want[k])));
    }
  }
  // Euler is the one-coefficient case: t on the grid, every weight 1
  const ddt::detail::Steps euler = ddt::detail::plan_steps(6, std::nullopt, 1.3);
  const std::vector<float> grid = ddt::timesteps(6, std::nullopt, 1.3);
  CHECK(euler.history() == 1 && euler.t == std::vector<float>(grid.begin(), grid.end() - 1));
  for (int i = 0; i < 6; ++i) CHECK(euler.dt[i] == grid[i + 1] - grid[i] && euler.coefficients[i] == std::vector<float>({1.0f}));
}

/// The same cases as tests/test_cfg_skip.py::test_which_calls_need_the_unconditional_half.
void test_which_calls_need_the_unconditional_half() {
  using ddt::detail::cfg_halves;
  using Enc = std::map<int, bool>;
  using Dec = std::vector<bool>;
  const std::vector<double> scales = {1.0, 1.0, 2.0, 2.0, 1.0, 1.0};
  ddt::detail::CfgHalves h = cfg_halves(scales, {0, 3}, false);
  CHECK(h.encode_both == Enc({{0, true}, {3, true}}) && h.decode_both == Dec({false, false, true, true, false, false}));
  h = cfg_halves(scales, {0, 4}, false);
  CHECK(h.encode_both == Enc({{0, true}, {4, false}}) && h.decode_both == Dec({false, false, true, true, false, false}));
  // a state computed at an unguided step 1 serves guided steps 2 and 3: the encoder there runs both halves
  CHECK(cfg_halves(scales, {0, 1, 5}, false).encode_both == Enc({{0, false}, {1, true}, {5, false}}));
  h = cfg_halves({1.0, 1.0, 1.0, 1.0}, {0, 2}, false);  // guidance 1.0: never
  CHECK(h.encode_both == Enc({{0, false}, {2, false}}) && h.decode_both == Dec(4, false) && h.any_cond_only());
  h = cfg_halves(scales, {0, 3}, true);
  CHECK(h.encode_both == Enc({{0, true}, {3, true}}) && h.decode_both == Dec(6, true) && !h.any_cond_only());
  // the scales: strict interval, bounds rounded to float32 as the official loop compares float32 t
  ddt::SamplerSettings st;
  st.num_steps = 4;
  st.guidance = 2.0;
  st.interval_min = 0.25;  // t = 0.25 exactly: not inside
  st.interval_max = 0.75;  // t = 0.75 exactly: not inside
  CHECK(ddt::detail::guidance_scales(st, ddt::detail::plan_steps(st)) == std::vector<double>({1.0, 1.0, 2.0, 1.0}));
  st.interval_max = 0.5 + 1e-12;  // above t = 0.5 as a double, but 0.5 as float32: t = 0.5 is not inside
  CHECK(ddt::detail::guidance_scales(st, ddt::detail::plan_steps(st)) == std::vector<double>({1.0, 1.0, 1.0, 1.0}));
}

void test_settings_validation() {
  ddt::SamplerSettings s;
  s.num_steps = 0;
  expect_error([&] { s.validate(); }, "steps must be between 1 and 10,000 (got 0)");
  s.num_steps = 10001;
  expect_error([&] { s.validate(); }, "steps must be between 1 and 10,000 (got 10001)");
  s = {};
  s.guidance = std::nan("");
  expect_error([&] { s.validate(); }, "guidance scale must be a finite number (got nan)");
  s = {};
  s.interval_max = HUGE_VAL;
  expect_error([&] { s.validate(); }, "guidance interval high end must be a finite number (got inf)");
  s = {};
  s.last_step = -HUGE_VAL;
  expect_error([&] { s.validate(); }, "last step must be a finite number (got -inf)");
  s = {};
  s.last_step = 1.0;
  expect_error([&] { s.validate(); }, "last step must be in (0, 1)");
  s = {};
  s.timeshift = 0;
  expect_error([&] { s.validate(); }, "timeshift must be > 0");
  s = {};
  s.interval_min = 0.9;
  s.interval_max = 0.3;
  expect_error([&] { s.validate(); }, "guidance interval 0.9,0.3 is reversed");
  s = {};
  s.sampler = "heun";
  expect_error([&] { s.validate(); }, "unknown sampler 'heun'; choose euler or adams");
  s.sampler = "it's";
  expect_error([&] { s.validate(); }, "unknown sampler \"it's\"; choose");  // Python's repr
  s.sampler = "adams";
  s.order = 5;
  expect_error([&] { s.validate(); }, "order must be from 1 to 4 (got 5); the official Adams sampler goes to 4");
  s.order = 0;
  expect_error([&] { s.validate(); }, "order must be from 1 to 4 (got 0)");
  for (int order = 1; order <= 4; ++order) {
    s.order = order;
    s.validate();
  }
  s.sampler = "euler";
  s.order = 2;
  expect_error([&] { s.validate(); }, "order 2 is for the Adams sampler (Euler is order 1); add --sampler adams");
}

void test_sha256_vectors() {
  const auto hex = [](const std::string& text) {
    ddt::detail::Sha256 h;
    h.update(text.data(), text.size());
    return h.hexdigest();
  };
  CHECK(hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==  // 56 bytes: padding spills a block
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  ddt::detail::Sha256 split;  // the same message fed in uneven pieces
  const std::string msg = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  for (size_t i = 0; i < msg.size(); i += 7) split.update(msg.data() + i, std::min<size_t>(7, msg.size() - i));
  CHECK(split.hexdigest() == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(hex(std::string(1000000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  expect_error([] { ddt::detail::sha256_file("/nonexistent/file"); }, "cannot read /nonexistent/file");
  // the SHA-NI path (where the CPU has it) against the portable one, over lengths around block edges
  std::mt19937 rng(7);
  std::string data(70000, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  for (size_t len : {0, 1, 55, 56, 63, 64, 65, 127, 128, 129, 1000, 4096, 69999, 70000}) {
    ddt::detail::Sha256 hw(true), sw(false);
    hw.update(data.data(), len);
    sw.update(data.data(), len);
    CHECK(hw.hexdigest() == sw.hexdigest());
  }
  std::cout << "(sha256 on " << (ddt::detail::sha256_hardware() ? "SHA-NI" : "portable code") << ") ";
}

void test_calibration_found_by_settings() {
  const fs::path root = temp_dir("calibration");
  ddt::Array sim{{12, 12}, std::vector<float>(144, 1.0f)};
  ddt::write_npy((root / "a.npy").string(), sim);
  ddt::Array sim2{{12, 12}, std::vector<float>(144, 0.5f)};
  ddt::write_npy((root / "b.npy").string(), sim2);
  // keys say nothing true: "12" is calibrated at guidance 2, "other" at the build's defaults
  write_text(root / "manifest.json", build_text(root, R"(, "calibration": {
    "12": {"file": "a.npy", "sampler": {"num_steps": 12, "guidance": 2.0, "interval_min": 0.3, "interval_max": 0.9, "timeshift": 1.5, "last_step": null}},
    "other": {"file": "b.npy", "sampler": {"num_steps": 12, "guidance": 3, "interval_min": 0.3, "interval_max": 0.9, "timeshift": 1.5, "last_step": null}},
    "old": {"file": "a.npy"}})", {"a.npy", "b.npy"}));
  const ddt::detail::Manifest m = ddt::detail::read_manifest(root);
  ddt::SamplerSettings run = m.sampler;  // 12 steps, guidance 3.0 (the int 3 in JSON is the same number)
  CHECK(m.similarity(run) && m.similarity(run)->data[0] == 0.5f);
  run.guidance = 2.0;
  CHECK(m.similarity(run) && m.similarity(run)->data[0] == 1.0f);
  run.guidance = 2.0000001;
  CHECK(!m.similarity(run));
  run = m.sampler;
  run.last_step = 1.0 / 12;  // given explicitly is not "not given", even at the same value
  CHECK(!m.similarity(run));
  CHECK(m.calibrate_command(run) == "ddt-export calibrate " + root.string() + " --steps 12 --last-step 0.08333333333333333");
  run = m.sampler;
  run.num_steps = 10;
  CHECK(!m.similarity(run));
  run.guidance = 2;
  run.interval_min = 0.1;
  run.timeshift = 1.0;
  CHECK(m.calibrate_command(run) ==
        "ddt-export calibrate " + root.string() + " --steps 10 --cfg 2.0 --interval 0.1,0.9 --timeshift 1.0");
  // a matrix replaced after the build was opened (same size, other values) is refused when read, not used
  ddt::write_npy((root / "b.npy").string(), ddt::Array{{12, 12}, std::vector<float>(144, 0.75f)});
  expect_error([&] { m.similarity(m.sampler); }, "b.npy does not match its sha256 in the manifest");
}

/// Sampler and order are part of a calibration's key: an Euler matrix (an entry without them, or
/// with euler/1) never serves an Adams run, nor one Adams order another's.
void test_calibration_matches_sampler_and_order() {
  const fs::path root = temp_dir("calibration_adams");
  ddt::write_npy((root / "e.npy").string(), ddt::Array{{12, 12}, std::vector<float>(144, 1.0f)});
  ddt::write_npy((root / "a.npy").string(), ddt::Array{{12, 12}, std::vector<float>(144, 0.25f)});
  write_text(root / "manifest.json", build_text(root, R"(, "calibration": {
    "euler": {"file": "e.npy", "sampler": {"num_steps": 12, "guidance": 3.0, "interval_min": 0.3, "interval_max": 0.9, "timeshift": 1.5, "last_step": null}},
    "adams": {"file": "a.npy", "sampler": {"num_steps": 12, "guidance": 3.0, "interval_min": 0.3, "interval_max": 0.9, "timeshift": 1.5, "last_step": null, "sampler": "adams", "order": 3}}})", {"a.npy", "e.npy"}));
  const ddt::detail::Manifest m = ddt::detail::read_manifest(root);
  ddt::SamplerSettings run = m.sampler;
  CHECK(m.similarity(run) && m.similarity(run)->data[0] == 1.0f);  // absent: euler, order 1
  run.sampler = "adams";
  run.order = 3;
  CHECK(m.similarity(run) && m.similarity(run)->data[0] == 0.25f);
  run.order = 2;
  CHECK(!m.similarity(run));
  CHECK(m.calibrate_command(run) == "ddt-export calibrate " + root.string() + " --steps 12 --sampler adams --order 2");
  run.order = 1;  // Adams of order 1 is not Euler: another t (the running sum), another calibration
  CHECK(!m.similarity(run));
  CHECK(m.calibrate_command(run) == "ddt-export calibrate " + root.string() + " --steps 12 --sampler adams --order 1");
  // on an Adams build, an Euler run's command names Euler (its order 1 follows, as with_overrides)
  ddt::detail::Manifest adams_build = m;
  adams_build.sampler.sampler = "adams";
  adams_build.sampler.order = 2;
  CHECK(adams_build.calibrate_command(m.sampler) == "ddt-export calibrate " + root.string() + " --steps 12 --sampler euler");
  run.order = 2;
  CHECK(adams_build.calibrate_command(run) == "ddt-export calibrate " + root.string() + " --steps 12");
}

// ---------------------------------------------------------------- manifest.json against its JSON Schema

struct SchemaInputs {
  std::string schema;                  // --schema: ddt_export/manifest.schema.json
  std::vector<fs::path> manifests;     // --manifest: build folders whose manifest.json must conform
};
SchemaInputs g_inputs;

void skip(const char* why) { std::cout << "(skipped: " << why << ") "; }

/// The validator itself on every keyword of the subset, with the paths its messages name.
void test_schema_validator_keywords() {
  const ddt_test::SchemaValidator v(nlohmann::json::parse(R"({
    "$defs": {"Pos": {"type": "integer", "minimum": 1, "maximum": 9},
              "Item": {"type": "object", "properties": {"n": {"$ref": "#/$defs/Pos"}}, "required": ["n"],
                       "additionalProperties": false}},
    "type": "object", "title": "ignored", "description": "ignored",
    "properties": {
      "kind": {"enum": ["a", "b"], "type": "string", "default": "a"},
      "one": {"const": 1, "type": "integer"},
      "ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
      "name": {"type": "string", "minLength": 2, "pattern": "^[a-z]+$"},
      "maybe": {"anyOf": [{"type": "string"}, {"type": "null"}]},
      "either": {"type": ["integer", "string"]},
      "shape": {"type": "array", "minItems": 2, "maxItems": 3, "items": {"anyOf": [{"$ref": "#/$defs/Pos"}, {"const": "batch"}]}},
      "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
      "counts": {"type": "object", "additionalProperties": {"type": "integer"}}},
    "required": ["kind", "one"],
    "additionalProperties": true})"));
  const auto errors = [&](const std::string& doc) { return v.errors(nlohmann::json::parse(doc)); };
  const auto only = [&](const std::string& doc, const std::string& needle) {
    const std::vector<std::string> e = errors(doc);
    if (e.size() != 1 || e[0].find(needle) == std::string::npos) {
      std::cerr << doc << " -> " << (e.empty() ? std::string("no error") : e[0]) << " (" << e.size() << " errors; wanted '" << needle << "')\n";
      throw std::runtime_error("wrong schema errors");
    }
  };
  const std::string ok = R"("kind": "a", "one": 1)";
  CHECK(errors("{" + ok + R"(, "ratio": 1, "name": "ab", "maybe": null, "either": "x", "shape": ["batch", 4, 8],
                  "items": [{"n": 3.0}], "counts": {"a": 1}, "extra": [1, 2]})").empty());
  CHECK(errors("{" + ok + R"(, "maybe": "text", "either": 7})").empty());
  only(R"({"one": 1})", "kind: required, but missing");
  only(R"({"kind": "c", "one": 1})", R"(kind: "c" is not one of ["a","b"])");
  only(R"({"kind": 5, "one": 1})", R"(kind: expected "string", got integer 5)");
  only(R"({"kind": "a", "one": 2})", "one: must be 1, got 2");
  only("{" + ok + R"(, "ratio": 0})", "ratio: 0 is not above the exclusive minimum 0");
  only("{" + ok + R"(, "ratio": 1.5})", "ratio: 1.5 is above the maximum 1");
  only("{" + ok + R"(, "name": "a"})", "name: shorter than 2 characters");
  only("{" + ok + R"(, "name": "aB"})", R"(name: "aB" does not match the pattern "^[a-z]+$")");
  only("{" + ok + R"(, "maybe": 3})", "maybe: matches none of the 2 alternatives");
  only("{" + ok + R"(, "either": 1.5})", R"(either: expected ["integer","string"], got number 1.5)");
  only("{" + ok + R"(, "shape": [4]})", "shape: 1 items, fewer than 2");
  only("{" + ok + R"(, "shape": [1, 2, 3, 4]})", "shape: 4 items, more than 3");
  only("{" + ok + R"(, "shape": ["batch", 0]})", "shape[1]: matches none of the 2 alternatives (shape[1]: 0 is below the minimum 1");
  only("{" + ok + R"(, "items": [{"n": 1}, {"n": 1.5}]})", "items[1].n: expected \"integer\", got number 1.5");
  only("{" + ok + R"(, "items": [{}]})", "items[0].n: required, but missing");
  only("{" + ok + R"(, "items": [{"n": 1, "m": 2}]})", "items[0].m: not a known key, and no others are allowed here");
  only("{" + ok + R"(, "counts": {"a": 1, "b": "x"}})", R"(counts.b: expected "integer", got string "x")");
  only("[]", R"((root): expected "object", got array [])");
  CHECK(v.declared("kind") == ddt_test::SchemaValidator::Declared::Required);
  CHECK(v.declared("name") == ddt_test::SchemaValidator::Declared::Optional);
  CHECK(v.declared("items[].n") == ddt_test::SchemaValidator::Declared::Required);
  CHECK(v.declared("counts.*") == ddt_test::SchemaValidator::Declared::Optional);
  CHECK(v.declared("nothing") == ddt_test::SchemaValidator::Declared::Undeclared);
  CHECK(v.declared("items[].m") == ddt_test::SchemaValidator::Declared::Undeclared);
  bool refused = false;  // a constraint the validator cannot check is an error, never silently passed
  try {
    ddt_test::SchemaValidator(nlohmann::json::parse(R"({"oneOf": [{"type": "string"}]})")).errors("x");
  } catch (const std::runtime_error& e) {
    refused = std::string(e.what()).find("'oneOf' is not supported") != std::string::npos;
  }
  CHECK(refused);
}

/// What the C++ manifest reader requires (manifest.cpp, pipeline.cpp, the backends): each must be
/// declared at that path in the schema, as required unless `why_optional` says why not.
/// tests/runtime/test_cpp_manifest_schema.py checks that every key runtime/src `require`s is listed here.
struct ReaderKey {
  const char* path;
  const char* why_optional;  // "" : the schema must list it as required
};
const ReaderKey kReaderKeys[] = {
    {"format", ""},  // read_manifest: must equal kManifestFormat (the schema's const, checked below)
    {"files", ""},
    {"files.*.sha256", ""},
    {"files.*.bytes", ""},
    {"name", ""},
    {"precision", ""},  // the libtorch backend refuses a build other than fp32
    {"model", ""},
    {"model.num_classes", ""},
    {"model.null_class", ""},
    {"model.latent_shape", ""},
    {"sampler", ""},
    {"sampler.num_steps", ""},
    {"sampler.guidance", ""},
    {"sampler.interval_min", ""},
    {"sampler.interval_max", ""},
    {"sampler.timeshift", ""},
    {"sampler.last_step", "absent reads as null (1 / N) on both sides; builds write it anyway"},
    {"sampler.sampler", "absent reads as euler on both sides (builds before the Adams sampler lack it)"},
    {"sampler.order", "absent reads as 1 on both sides (builds before the Adams sampler lack it)"},
    {"graphs", ""},
    // graphs.encoder and graphs.decoder: graphs is a mapping in the schema (graph name -> entry), so
    // it cannot list them as required; ManifestDoc's validator and read_manifest both refuse a build
    // without them ("has no encoder graph").
    {"graphs.*", "a mapping's keys: see above"},
    {"graphs.*.file", ""},  // the openvino backend reads it
    {"graphs.*.inputs", ""},
    {"graphs.*.outputs", ""},
    {"graphs.*.inputs[].name", ""},
    {"graphs.*.inputs[].dtype", ""},
    {"graphs.*.inputs[].shape", ""},
    {"graphs.*.outputs[].name", ""},
    {"graphs.*.outputs[].dtype", ""},
    {"graphs.*.outputs[].shape", ""},
    {"calibration", "only `ddt-export calibrate` adds entries; a DP schedule without one is refused with the command"},
    {"calibration.*.file", ""},  // read for the entry whose sampler matches the run
    {"libtorch", "only `build --libtorch` writes it; the libtorch backend refuses a build without it, naming the rebuild"},
    {"libtorch.format", ""},
    {"libtorch.encoder", ""},
    {"libtorch.decoder", ""},
    {"libtorch.encoder.inputs", ""},
    {"libtorch.encoder.file", ""},
    {"libtorch.decoder.inputs", ""},
    {"libtorch.decoder.file", ""},
    {"quantization", "only int8/fp8 builds write it (null or absent otherwise): no per-token sites, the plugin's own group"},
    {"quantization.scheme", ""},  // required there; the openvino backend reads per_token from it
    {"quantization.scheme.per_token", "only int8 builds with per-token sites write it; absent or null: no group to set"},
    {"quantization.scheme.per_token.group_size", ""},  // the openvino backend's DYNAMIC_QUANTIZATION_GROUP_SIZE
    {"engines", "only TensorRT builds (`ddt-export engines`) write it; the tensorrt backend refuses a build without it"},
    {"engines.tensorrt", ""},
    // A gap in the schema, not in the readers: ManifestDoc declares Engines.compute_capability as
    // `Any = None`, but ddt-export engines always writes it ("8.9") and both runtimes require it
    // (backends/tensorrt/backend.py and tensorrt_backend.cpp compare it with the GPU's). Reported; listed as required there
    // would fail until the schema says so.
    {"engines.compute_capability", "schema gap: declared Any with default null, required by both runtimes"},
    {"engines.cfg_batch", ""},
    {"engines.cfg_batch.min", ""},
    {"engines.cfg_batch.max", ""},
    {"engines.files", ""},
    // engines.files.encoder / .decoder: engines.files is a mapping (graph -> .plan); see graphs.*
    {"engines.files.*", "a mapping's keys: see graphs.*"},
};

void test_manifest_schema_matches_reader() {
  if (g_inputs.schema.empty()) return skip("no --schema");
  const ddt_test::SchemaValidator v = ddt_test::SchemaValidator::from_file(g_inputs.schema);
  CHECK(v.schema().at("properties").at("format").at("const") == ddt::detail::kManifestFormat);
  std::vector<std::string> wrong;
  for (const ReaderKey& key : kReaderKeys) {
    const auto d = v.declared(key.path);
    if (d == ddt_test::SchemaValidator::Declared::Undeclared) wrong.push_back(std::string(key.path) + " is not declared");
    if (d == ddt_test::SchemaValidator::Declared::Optional && !*key.why_optional) {
      wrong.push_back(std::string(key.path) + " is required by the reader but optional in the schema");
    }
  }
  for (const std::string& w : wrong) std::cerr << g_inputs.schema << ": " << w << "\n";
  CHECK(wrong.empty());
}

nlohmann::json manifest_of(const fs::path& build) {
  std::ifstream in(build / "manifest.json", std::ios::binary);
  return nlohmann::json::parse(in);
}

void test_manifest_schema_accepts_real_builds() {
  if (g_inputs.schema.empty() || g_inputs.manifests.empty()) return skip("no --schema or no --manifest");
  const ddt_test::SchemaValidator v = ddt_test::SchemaValidator::from_file(g_inputs.schema);
  for (const fs::path& build : g_inputs.manifests) {
    const std::vector<std::string> errors = v.errors(manifest_of(build));
    for (const std::string& e : errors) std::cerr << build.string() << "/manifest.json: " << e << "\n";
    CHECK(errors.empty());
    const ddt::detail::Manifest m = ddt::detail::read_manifest(build);  // and the reader takes it, files and all
    CHECK(m.encoder.inputs.size() == 3 && m.decoder.outputs.size() == 1);
  }
  std::cout << "(" << g_inputs.manifests.size() << " builds) ";
}

void test_manifest_schema_refuses_broken_manifests() {
  if (g_inputs.schema.empty() || g_inputs.manifests.empty()) return skip("no --schema or no --manifest");
  const ddt_test::SchemaValidator v = ddt_test::SchemaValidator::from_file(g_inputs.schema);
  const nlohmann::json real = manifest_of(g_inputs.manifests.front());
  const auto refused = [&](const std::function<void(nlohmann::json&)>& edit, const std::string& needle) {
    nlohmann::json doc = real;
    edit(doc);
    const std::vector<std::string> errors = v.errors(doc);
    const bool named = std::any_of(errors.begin(), errors.end(), [&](const std::string& e) { return e.rfind(needle, 0) == 0; });
    if (!named) std::cerr << "no error starting '" << needle << "' among " << errors.size() << ": " << (errors.empty() ? "" : errors[0]) << "\n";
    CHECK(named);
  };
  refused([](nlohmann::json& d) { d["model"]["num_classes"] = "ten"; }, "model.num_classes: expected \"integer\", got string");
  refused([](nlohmann::json& d) { d["sampler"].erase("timeshift"); }, "sampler.timeshift: required, but missing");
  refused([](nlohmann::json& d) { d.erase("graphs"); }, "graphs: required, but missing");
  refused([](nlohmann::json& d) { d["graphs"]["encoder"]["inputs"][1]["dtype"] = "float64"; },
          "graphs.encoder.inputs[1].dtype: \"float64\" is not one of");
  refused([](nlohmann::json& d) { d["graphs"]["decoder"]["outputs"][0].erase("shape"); }, "graphs.decoder.outputs[0].shape: required");
  refused([](nlohmann::json& d) { d["sampler"]["num_steps"] = ddt::kMaxSteps + 1; }, "sampler.num_steps: 10001 is above the maximum");
  refused([](nlohmann::json& d) { d["format"] = 2; }, "format: must be 1");
  refused([](nlohmann::json& d) { d["files"].begin().value()["sha256"] = "xyz"; }, "files.");
  refused([](nlohmann::json& d) { d["model"]["latent_shape"] = {4, 8}; }, "model.latent_shape: 2 items, fewer than 3");
}

}  // namespace

/// Class names (class_names.cpp, the API an embedder resolves names with): synonyms, ASCII-only case folding, ids
/// among names, shared synonyms, the closest classes, the lines' rules (tests/runtime/test_cpp_class_names.py holds
/// every rule to Python's answers and messages).
void test_class_names() {
  const ddt::ClassNames names({"zero, nought", "one", "crane", "crane, derrick", "Éclair"});
  CHECK(names.size() == 5 && names.display(3) == "crane" && names.synonyms(0) == std::vector<std::string>({"zero", "nought"}));
  CHECK(names.lookup(" NOUGHT\t") == 0 && names.lookup("Derrick") == 3 && names.lookup("ÉCLAIR") == 4);
  expect_error([&] { names.lookup("éclair"); }, "no class is named");  // only A-Z fold: É is not é
  expect_error([&] { names.lookup("crane", "--labels"); }, "--labels: \"crane\" names 2 classes: 2 (crane), 3 (crane); give the id");
  expect_error([&] { names.lookup("onne"); }, "no class is named \"onne\"; closest: one (1), crane (2), crane (3)");
  expect_error([&] { names.lookup("one, zero"); }, "is not one class name; separate labels with ';'");
  expect_error([&] { names.lookup(std::string(201, 'x')); }, "at most 200 characters (got 201 in");
  CHECK(names.closest("cran", 2) == std::vector<int64_t>({2, 3}));  // a tie in distance: the lower id first
  CHECK(ddt::resolve_labels(ddt::split_labels("zero; 7 ;Derrick"), &names) == std::vector<std::string>({"0", "7", "3"}));
  CHECK(ddt::resolve_labels(ddt::split_labels(" 1, 007 "), nullptr) == std::vector<std::string>({"1", "7"}));
  CHECK(ddt::split_labels(" \t ").empty() && ddt::label_entry(" -0 ").is_id && ddt::label_entry(" -0 ").text == "0");
  expect_error([] { ddt::resolve_labels(ddt::split_labels("zero"), nullptr); }, "this build has no class names");
  expect_error([] { ddt::split_labels("zero;;1"); }, "has an empty entry (got 'zero;;1'); separate labels with ';'");
  CHECK(ddt::check_class_names({" a ,b", "c"}, 2, "x") == std::vector<std::string>({"a, b", "c"}));
  expect_error([] { ddt::check_class_names({"a"}, 2, "x"); }, "x has 1 names but the model has 2 classes");
  expect_error([] { ddt::check_class_names({"a", "b, 7"}, 2, "x"); }, "x: class 1 ('b, 7') has the name '7', which reads as a class id");
}

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if ((arg == "--schema" || arg == "--manifest") && i + 1 < argc) {
      if (arg == "--schema") g_inputs.schema = argv[++i];
      else g_inputs.manifests.emplace_back(argv[++i]);
    } else {
      std::cerr << "usage: ddt_runtime_tests [--schema manifest.schema.json] [--manifest BUILD_DIR]...\n";
      return 2;
    }
  }
  run("timesteps_match_python", test_timesteps_match_python);
  run("seeded_noise_matches_torch", test_seeded_noise_matches_torch);
  run("dp_matches_brute_force", test_dp_matches_brute_force);
  run("dp_ties_as_official", test_dp_ties_as_official);
  run("uniform_and_budgets", test_uniform_and_budgets);
  run("schedule_errors", test_schedule_errors);
  run("npy_round_trip", test_npy_round_trip);
  run("npy_files_and_failures", test_npy_files_and_failures);
  run("output_paths", test_output_paths);
  run("manifest_reads_defaults_and_roles", test_manifest_reads_defaults_and_roles);
  run("manifest_errors", test_manifest_errors);
  run("manifest_reads_per_token_group", test_manifest_reads_per_token_group);
  run("loop_protocol_and_update", test_loop_protocol_and_update);
  run("loop_reuses_a_state_across_the_interval_edge", test_loop_reuses_a_state_across_the_interval_edge);
  run("adams_loop", test_adams_loop);
  run("which_calls_need_the_unconditional_half", test_which_calls_need_the_unconditional_half);
  run("settings_validation", test_settings_validation);
  run("class_names", test_class_names);
  run("sha256_vectors", test_sha256_vectors);
  run("calibration_found_by_settings", test_calibration_found_by_settings);
  run("calibration_matches_sampler_and_order", test_calibration_matches_sampler_and_order);
  run("schema_validator_keywords", test_schema_validator_keywords);
  run("manifest_schema_matches_reader", test_manifest_schema_matches_reader);
  run("manifest_schema_accepts_real_builds", test_manifest_schema_accepts_real_builds);
  run("manifest_schema_refuses_broken_manifests", test_manifest_schema_refuses_broken_manifests);
  fs::remove_all(fs::temp_directory_path() / ("ddt_runtime_tests_" + std::to_string(::getpid())));
  std::cout << g_passed << " passed, " << g_failed << " failed\n";
  return g_failed == 0 ? 0 : 1;
}
