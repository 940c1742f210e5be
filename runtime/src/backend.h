// The one small interface every backend implements (mirrors ddt_export.sampler.Runner), and the
// backends' entry points.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "manifest.h"

namespace ddt::detail {

/// A backend bound to one CFG batch size 2B, with buffers allocated once.
///
/// The loop writes x (2B, C, H, W), t (2B,) and y (2B,) through these host pointers, calls
/// encode() at recompute steps (fills the backend's own s from x, t, y; s never leaves it) and
/// decode() at every step (fills v (2B, C, H, W) from x and s). With `cond_only` a call runs the
/// conditional half alone, rows B:2B of every buffer (guidance off there): it reads only those
/// rows of x, t, y, s and writes only those rows of s or v (a backend whose graphs cannot run B
/// rows may run all 2B; the loop never reads the unconditional rows such a call leaves behind).
/// Pointers stay valid for the runner's lifetime.
class Runner {
 public:
  virtual ~Runner() = default;
  virtual float* x() = 0;
  virtual float* t() = 0;
  virtual int64_t* y() = 0;
  virtual const float* v() = 0;
  virtual void encode(bool cond_only) = 0;
  virtual void decode(bool cond_only) = 0;
};

/// Does the slow part once (read graphs, load modules, deserialize engines); runner(batch, halves)
/// compiles for that batch where the backend needs to and allocates the buffers. `halves`: the
/// loop will make cond_only calls (the OpenVINO backend then also compiles the graphs at batch/2).
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::unique_ptr<Runner> runner(int64_t batch, bool halves) = 0;
  /// The precision it computes in: "f32" or "bf16".
  virtual const std::string& precision() const = 0;
};

struct BackendOptions {
  std::string precision;  // openvino: "", "f32" or "bf16"
  int threads = 0;        // 0: the backend's default
};

// Each is defined only where its backend is compiled in (DDT_WITH_OPENVINO, DDT_WITH_LIBTORCH,
// DDT_WITH_TENSORRT); pipeline.cpp calls only those.
std::unique_ptr<Backend> open_openvino(const Manifest& manifest, const BackendOptions& options);
std::unique_ptr<Backend> open_libtorch(const Manifest& manifest, const BackendOptions& options);
std::unique_ptr<Backend> open_tensorrt(const Manifest& manifest, const BackendOptions& options);

}  // namespace ddt::detail
