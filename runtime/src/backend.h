// The one small interface every backend implements (mirrors ddt_export.sampler.Runner).
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
/// decode() at every step (fills v (2B, C, H, W) from x and s). Pointers stay valid for the
/// runner's lifetime.
class Runner {
 public:
  virtual ~Runner() = default;
  virtual float* x() = 0;
  virtual float* t() = 0;
  virtual int64_t* y() = 0;
  virtual const float* v() = 0;
  virtual void encode() = 0;
  virtual void decode() = 0;
};

/// Does the slow part once (load modules, deserialize engines); runner(batch) allocates buffers.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::unique_ptr<Runner> runner(int64_t batch) = 0;
};

std::unique_ptr<Backend> open_libtorch(const Manifest& manifest);
std::unique_ptr<Backend> open_tensorrt(const Manifest& manifest);  // only with DDT_WITH_TENSORRT

}  // namespace ddt::detail
