// ddt_runtime_probe: prints the runtime's own numbers for tests/runtime to compare with torch and
// hashlib. Reads commands from stdin, one per line, and answers each with one line:
//   grid N LAST|none SHIFT   the N + 1 time points, as float32 bit patterns (8 hex digits each)
//   randn SEED D0 D1 ...     seeded_noise((D0), (D1, ...), SEED) as float32 bit patterns
//   sha256 PATH              the file's sha256, hex
//   kernels                  which torch kernel build the numbers follow: avx2 or default
//   lockpath PATH            the build folder's lock file (build_lock.h), or an empty line
//   lockshared PATH SECONDS  holds the folder's shared lock that long, then prints held or unheld

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include "ddt/runtime.h"
#include "build_lock.h"
#include "sha256.h"
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
