// Picks torch's CPU kernel build (see torch_cpu.h) the way ATen's compute_cpu_capability does.

#include "torch_cpu.h"

#include <cstdlib>
#include <cstring>

namespace ddt::detail {

namespace {

TorchKernels detect() {
  if (const char* env = std::getenv("ATEN_CPU_CAPABILITY")) {
    if (std::strcmp(env, "default") == 0) return TorchKernels::Default;
    if (std::strcmp(env, "avx2") == 0 || std::strcmp(env, "avx512") == 0) return TorchKernels::Avx2;
    // any other value: torch warns and ignores it, so do we
  }
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return TorchKernels::Avx2;
#endif
  return TorchKernels::Default;
}

}  // namespace

TorchKernels torch_kernels() {
  static const TorchKernels kernels = detect();
  return kernels;
}

}  // namespace ddt::detail
