// TensorRT backend, written against the TensorRT 10 C++ API (named tensors, enqueueV3).
// Compiled only with -DDDT_WITH_TENSORRT=ON when CMake finds the TensorRT SDK and CUDA; it has
// not been compiled on the machine this runtime was written on (no GPU, no TensorRT there).
//
// Reads the engines `ddt-export build --backend tensorrt` (or `ddt-export engines`) records in
// manifest["engines"]: files.{encoder,decoder}, the TensorRT version and GPU compute capability
// they were built for (others are refused with the rebuild command, as the Python backend does),
// and cfg_batch {min, max}, the CFG batch range of their profile. Each runner allocates its device
// buffers once and binds them once: x, t, y to the encoder; the encoder's output s is the very
// buffer bound as the decoder's s input (s never leaves the GPU); v comes back to pinned host
// memory for the loop's guidance and Euler update (2B x C x H x W floats per step). Where guidance
// is off the loop runs only the conditional half: a second execution context per engine, with
// input shapes at batch B and tensor addresses offset by B rows into the same device buffers; the
// host<->device copies then move rows B:2B only. Engines whose profile minimum (cfg_batch.min) is
// above B run the full batch for those calls instead.

#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "backend.h"

namespace ddt::detail {

namespace {

void cuda_check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw Error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(status));
}

class Logger final : public nvinfer1::ILogger {
 public:
  void log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept override {
    if (severity <= Severity::kWARNING) std::cerr << "tensorrt: " << msg << "\n";
  }
};

size_t dtype_size(nvinfer1::DataType type) {
  switch (type) {
    case nvinfer1::DataType::kFLOAT: return 4;
    case nvinfer1::DataType::kHALF: return 2;
    case nvinfer1::DataType::kBF16: return 2;
    case nvinfer1::DataType::kINT64: return 8;
    case nvinfer1::DataType::kINT32: return 4;
    default: throw Error("unsupported tensor data type in a TensorRT engine; rebuild the engines");
  }
}

nvinfer1::Dims dims_of(const std::vector<int64_t>& shape) {
  nvinfer1::Dims d{};
  d.nbDims = static_cast<int32_t>(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) d.d[i] = shape[i];
  return d;
}

struct Engine {
  std::unique_ptr<nvinfer1::ICudaEngine> engine;
  std::string file;
};

struct Engines {
  Logger logger;
  std::unique_ptr<nvinfer1::IRuntime> runtime;
  Engine encoder, decoder;
};

// Buffers start zeroed: rows 0:B of x stay unwritten where only the conditional half runs, and a
// full-batch fallback call (engines that cannot run B rows) should compute on zeros there.

/// A device buffer, freed with the runner.
struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(size_t bytes) {
    cuda_check(cudaMalloc(&ptr, bytes), "cudaMalloc");
    cuda_check(cudaMemset(ptr, 0, bytes), "cudaMemset");
  }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

/// Pinned host memory, so the per-step copies are true async DMA.
struct HostBuffer {
  void* ptr = nullptr;
  explicit HostBuffer(size_t bytes) {
    cuda_check(cudaMallocHost(&ptr, bytes), "cudaMallocHost");
    std::memset(ptr, 0, bytes);
  }
  ~HostBuffer() { cudaFreeHost(ptr); }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
};

class TensorRTRunner final : public Runner {
 public:
  /// `half`: also bind execution contexts for the conditional half (rows B:2B) at batch B. Without
  /// them (the engines' profile minimum is above B, or the loop makes no cond_only calls) a
  /// cond_only call runs all 2B rows, as the Python backend: the unconditional rows' results are
  /// then simply unused.
  TensorRTRunner(std::shared_ptr<Engines> engines, const Manifest& m, int64_t batch, bool half)
      : engines_(std::move(engines)),
        r_(m.roles()),
        batch_(batch),
        x_bytes_(r_.enc_x.numel(batch) * 4),
        t_bytes_(r_.enc_t.numel(batch) * 4),
        y_bytes_(r_.enc_y.numel(batch) * 8),
        v_bytes_(r_.dec_v.numel(batch) * 4),
        s_bytes_(r_.enc_s.numel(batch) *
                 dtype_size(engines_->encoder.engine->getTensorDataType(r_.enc_s.name.c_str()))),
        hx_(x_bytes_), ht_(t_bytes_), hy_(y_bytes_), hv_(v_bytes_),
        dx_(x_bytes_), dt_(t_bytes_), dy_(y_bytes_), ds_(s_bytes_), dv_(v_bytes_) {
    for (const TensorSpec* t : {&r_.enc_x, &r_.enc_t, &r_.enc_y, &r_.enc_s, &r_.dec_v}) {
      if (t->shape.empty() || t->shape[0] != kBatch) {  // rows B:2B must be one contiguous block
        throw Error("tensor " + t->name + " does not have the batch as its first axis; rebuild the folder");
      }
    }
    cuda_check(cudaStreamCreate(&stream_), "cudaStreamCreate");
    contexts_[0] = bind_rows(0);
    if (half) contexts_[1] = bind_rows(batch / 2);
  }

  ~TensorRTRunner() override {
    for (Contexts& c : contexts_) {
      c.encoder.reset();
      c.decoder.reset();
    }
    cudaStreamDestroy(stream_);
  }

  float* x() override { return static_cast<float*>(hx_.ptr); }
  float* t() override { return static_cast<float*>(ht_.ptr); }
  int64_t* y() override { return static_cast<int64_t*>(hy_.ptr); }
  const float* v() override { return static_cast<const float*>(hv_.ptr); }

  void encode(bool cond_only) override {
    // x is copied again by decode(): x rows, noise next to a transformer call.
    const Contexts& c = contexts(cond_only);
    upload(dx_, hx_, x_bytes_, c.lo, "copy x");
    upload(dt_, ht_, t_bytes_, c.lo, "copy t");
    upload(dy_, hy_, y_bytes_, c.lo, "copy y");
    if (!c.encoder->enqueueV3(stream_)) throw Error("TensorRT encoder enqueueV3 failed (see the tensorrt: lines above)");
  }

  void decode(bool cond_only) override {
    const Contexts& c = contexts(cond_only);
    upload(dx_, hx_, x_bytes_, c.lo, "copy x");
    if (!c.decoder->enqueueV3(stream_)) throw Error("TensorRT decoder enqueueV3 failed (see the tensorrt: lines above)");
    const size_t off = offset(v_bytes_, c.lo);
    cuda_check(cudaMemcpyAsync(static_cast<char*>(hv_.ptr) + off, static_cast<char*>(dv_.ptr) + off, v_bytes_ - off,
                               cudaMemcpyDeviceToHost, stream_),
               "copy v");
    cuda_check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }

 private:
  /// Execution contexts for rows lo:2B (one per engine: a context holds its input shapes).
  struct Contexts {
    int64_t lo = 0;
    std::unique_ptr<nvinfer1::IExecutionContext> encoder, decoder;
  };

  /// The byte offset of row `lo` in a buffer of `bytes` for the whole batch.
  size_t offset(size_t bytes, int64_t lo) const { return bytes / static_cast<size_t>(batch_) * static_cast<size_t>(lo); }

  void upload(DeviceBuffer& dev, HostBuffer& host, size_t bytes, int64_t lo, const char* what) {
    const size_t off = offset(bytes, lo);
    cuda_check(cudaMemcpyAsync(static_cast<char*>(dev.ptr) + off, static_cast<char*>(host.ptr) + off, bytes - off,
                               cudaMemcpyHostToDevice, stream_),
               what);
  }

  const Contexts& contexts(bool cond_only) const { return contexts_[cond_only && contexts_[1].encoder ? 1 : 0]; }

  /// Shapes and addresses set once, for rows lo:2B at batch 2B - lo: the device buffers from row
  /// lo on (views of the same memory, never copies), and they never move for the runner's lifetime.
  Contexts bind_rows(int64_t lo) {
    Contexts c;
    c.lo = lo;
    c.encoder.reset(engines_->encoder.engine->createExecutionContext());
    c.decoder.reset(engines_->decoder.engine->createExecutionContext());
    if (!c.encoder || !c.decoder) throw Error("TensorRT could not create an execution context (out of GPU memory?)");
    const int64_t rows = batch_ - lo;
    char* x = static_cast<char*>(dx_.ptr) + offset(x_bytes_, lo);
    char* s = static_cast<char*>(ds_.ptr) + offset(s_bytes_, lo);
    bind_input(*c.encoder, r_.enc_x, rows, x);
    bind_input(*c.encoder, r_.enc_t, rows, static_cast<char*>(dt_.ptr) + offset(t_bytes_, lo));
    bind_input(*c.encoder, r_.enc_y, rows, static_cast<char*>(dy_.ptr) + offset(y_bytes_, lo));
    bind(*c.encoder, r_.enc_s.name, s);
    bind_input(*c.decoder, r_.dec_x, rows, x);
    bind_input(*c.decoder, r_.dec_s, rows, s);  // the encoder's output is the decoder's input
    bind(*c.decoder, r_.dec_v.name, static_cast<char*>(dv_.ptr) + offset(v_bytes_, lo));
    check_output(*c.encoder, r_.enc_s, rows);
    check_output(*c.decoder, r_.dec_v, rows);
    return c;
  }

  static void bind(nvinfer1::IExecutionContext& ctx, const std::string& name, void* ptr) {
    if (!ctx.setTensorAddress(name.c_str(), ptr)) {
      throw Error("TensorRT engine has no tensor '" + name + "' the manifest names; rebuild the engines");
    }
  }

  static void bind_input(nvinfer1::IExecutionContext& ctx, const TensorSpec& spec, int64_t batch, void* ptr) {
    if (!ctx.setInputShape(spec.name.c_str(), dims_of(spec.concrete(batch)))) {
      throw Error("TensorRT engine rejects input '" + spec.name + "' at batch " + std::to_string(batch) + "; rebuild the engines");
    }
    bind(ctx, spec.name, ptr);
  }

  /// Every input has its shape and the output's is the manifest's at this batch.
  static void check_output(nvinfer1::IExecutionContext& ctx, const TensorSpec& spec, int64_t batch) {
    if (ctx.inferShapes(0, nullptr) != 0) throw Error("TensorRT engine inputs without shapes; rebuild the engines");
    const nvinfer1::Dims got = ctx.getTensorShape(spec.name.c_str());
    const std::vector<int64_t> want = spec.concrete(batch);
    bool same = got.nbDims == static_cast<int32_t>(want.size());
    for (int32_t i = 0; same && i < got.nbDims; ++i) same = got.d[i] == want[i];
    if (!same) {
      throw Error("TensorRT engine output '" + spec.name + "' does not have the manifest's shape at batch " +
                  std::to_string(batch) + "; rebuild the engines");
    }
  }

  std::shared_ptr<Engines> engines_;
  Roles r_;
  int64_t batch_;
  size_t x_bytes_, t_bytes_, y_bytes_, v_bytes_, s_bytes_;
  HostBuffer hx_, ht_, hy_, hv_;
  DeviceBuffer dx_, dt_, dy_, ds_, dv_;
  cudaStream_t stream_ = nullptr;
  Contexts contexts_[2];  // every row; the conditional half (rows B:2B), where the profile takes B rows
};

std::string rebuild_command(const Manifest& m, const nlohmann::json& eng) {
  return "ddt-export engines " + m.root.string() + " --max-batch " + std::to_string(eng.value("max_batch", 4)) +
         " --opt-level " + std::to_string(eng.value("builder_optimization_level", 3));
}

/// "10.8.0" from getInferLibVersion() (MAJOR * 10000 + MINOR * 100 + PATCH).
std::string tensorrt_version() {
  const int32_t v = getInferLibVersion();
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

class TensorRTBackend final : public Backend {
 public:
  explicit TensorRTBackend(const Manifest& m) : manifest_(m), engines_(std::make_shared<Engines>()) {
    precision_ = m.data.contains("engines") ? m.data.at("engines").value("precision", std::string("fp16")) : "fp16";
    if (!m.data.contains("engines")) {
      throw Error(m.root.string() + " has no TensorRT engines; build them on this GPU machine: ddt-export engines " +
                  m.root.string());
    }
    const nlohmann::json& eng = m.data.at("engines");
    const std::string rebuild = rebuild_command(m, eng);
    const std::string built_with = require(eng, "tensorrt", "manifest engines").get<std::string>();
    const std::string here = tensorrt_version();
    if (built_with.rfind(here, 0) != 0) {  // "10.8.0.43" was built by a 10.8.0 library
      throw Error(m.root.string() + ": engines were built with TensorRT " + built_with + ", this is TensorRT " + here +
                  "; rebuild them here: " + rebuild);
    }
    int device = 0;
    cudaDeviceProp prop{};
    cuda_check(cudaGetDevice(&device), "cudaGetDevice");
    cuda_check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    const std::string cc = std::to_string(prop.major) + "." + std::to_string(prop.minor);
    const std::string built_for = require(eng, "compute_capability", "manifest engines").get<std::string>();
    if (cc != built_for) {
      throw Error(m.root.string() + ": engines were built for compute capability " + built_for + ", this GPU is " + cc + " (" +
                  prop.name + "); rebuild them here: " + rebuild);
    }
    const nlohmann::json& batch = require(eng, "cfg_batch", "manifest engines");
    cfg_min_ = require(batch, "min", "manifest engines.cfg_batch").get<int64_t>();
    cfg_max_ = require(batch, "max", "manifest engines.cfg_batch").get<int64_t>();
    opt_level_ = eng.value("builder_optimization_level", 3);
    engines_->runtime.reset(nvinfer1::createInferRuntime(engines_->logger));
    if (!engines_->runtime) throw Error("TensorRT could not create a runtime (is the GPU driver installed?)");
    const nlohmann::json& files = require(eng, "files", "manifest engines");
    engines_->encoder = load(require(files, "encoder", "manifest engines.files").get<std::string>(), rebuild);
    engines_->decoder = load(require(files, "decoder", "manifest engines.files").get<std::string>(), rebuild);
  }

  std::unique_ptr<Runner> runner(int64_t batch, bool halves) override {
    if (batch < cfg_min_ || batch > cfg_max_) {
      throw Error("the engines take " + std::to_string(cfg_min_ / 2) + " to " + std::to_string(cfg_max_ / 2) +
                  " samples per call (CFG batch " + std::to_string(cfg_min_) + ".." + std::to_string(cfg_max_) + "), asked for " +
                  std::to_string(batch / 2) + "; use fewer samples or rebuild with a larger batch: ddt-export engines " +
                  manifest_.root.string() + " --max-batch " + std::to_string(std::max<int64_t>(batch / 2, 1)) + " --opt-level " +
                  std::to_string(opt_level_));
    }
    // engines built with a profile minimum above B (before Python's minimum became 1) cannot run
    // the conditional half alone: those calls run the full batch (ddt_export/backends/tensorrt/runner.py does the same)
    return std::make_unique<TensorRTRunner>(engines_, manifest_, batch, halves && batch / 2 >= cfg_min_);
  }

  const std::string& precision() const override { return precision_; }

 private:
  Engine load(const std::string& file, const std::string& rebuild) {
    const std::string path = manifest_.path(file).string();
    std::ifstream in(path, std::ios::binary);
    const std::vector<char> blob((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    Engine e{std::unique_ptr<nvinfer1::ICudaEngine>(engines_->runtime->deserializeCudaEngine(blob.data(), blob.size())), path};
    if (!e.engine) {
      throw Error(path + ": TensorRT cannot load this engine (another TensorRT, GPU or a damaged file); rebuild them here: " + rebuild);
    }
    return e;
  }

  const Manifest& manifest_;
  std::shared_ptr<Engines> engines_;
  int64_t cfg_min_ = 0, cfg_max_ = 0;
  std::string precision_;
  int opt_level_ = 3;
};

}  // namespace

std::unique_ptr<Backend> open_tensorrt(const Manifest& manifest, const BackendOptions&) {
  return std::make_unique<TensorRTBackend>(manifest);
}

}  // namespace ddt::detail
