// Which of torch's CPU kernel builds this machine runs, for the numbers that depend on it.
//
// ATen compiles its CPU kernels once per capability (DEFAULT, AVX2, AVX512) and picks one at
// run time; kernels without an AVX512 registration (linspace and normal among them) fall back
// to the AVX2 build. Two things differ between the AVX2 and DEFAULT builds of the kernels the
// sampler's numbers come from: the AVX2 build contracts `a + b * c` into one fused
// multiply-add (torch.linspace), and its torch.randn uses the avx_mathfun polynomials instead
// of libm. This runtime reproduces both, chosen the way ATen chooses.
#pragma once

namespace ddt::detail {

enum class TorchKernels {
  Default,  // no AVX2+FMA (or ATEN_CPU_CAPABILITY=default): separate roundings, libm in randn
  Avx2,     // AVX2+FMA, AVX512 (ATen's AVX2 kernels): fused multiply-adds, avx_mathfun in randn
};

/// ATEN_CPU_CAPABILITY when set (as torch reads it), else the CPU's features as ATen tests them.
TorchKernels torch_kernels();

}  // namespace ddt::detail
