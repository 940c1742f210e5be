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
// memory for the loop's guidance and Euler update (2B x C x H x W floats per step).

#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

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

/// A device buffer, freed with the runner.
struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(size_t bytes) { cuda_check(cudaMalloc(&ptr, bytes), "cudaMalloc"); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

/// Pinned host memory, so the per-step copies are true async DMA.
struct HostBuffer {
  void* ptr = nullptr;
  explicit HostBuffer(size_t bytes) { cuda_check(cudaMallocHost(&ptr, bytes), "cudaMallocHost"); }
  ~HostBuffer() { cudaFreeHost(ptr); }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
};

class TensorRTRunner final : public Runner {
 public:
  TensorRTRunner(std::shared_ptr<Engines> engines, const Manifest& m, int64_t batch)
      : engines_(std::move(engines)),
        r_(m.roles()),
        x_bytes_(r_.enc_x.numel(batch) * 4),
        t_bytes_(r_.enc_t.numel(batch) * 4),
        y_bytes_(r_.enc_y.numel(batch) * 8),
        v_bytes_(r_.dec_v.numel(batch) * 4),
        s_bytes_(r_.enc_s.numel(batch) *
                 dtype_size(engines_->encoder.engine->getTensorDataType(r_.enc_s.name.c_str()))),
        hx_(x_bytes_), ht_(t_bytes_), hy_(y_bytes_), hv_(v_bytes_),
        dx_(x_bytes_), dt_(t_bytes_), dy_(y_bytes_), ds_(s_bytes_), dv_(v_bytes_) {
    cuda_check(cudaStreamCreate(&stream_), "cudaStreamCreate");
    enc_.reset(engines_->encoder.engine->createExecutionContext());
    dec_.reset(engines_->decoder.engine->createExecutionContext());
    if (!enc_ || !dec_) throw Error("TensorRT could not create an execution context (out of GPU memory?)");
    // Shapes and addresses are set once: the buffers never move for the runner's lifetime.
    bind_input(*enc_, r_.enc_x, batch, dx_.ptr);
    bind_input(*enc_, r_.enc_t, batch, dt_.ptr);
    bind_input(*enc_, r_.enc_y, batch, dy_.ptr);
    bind(*enc_, r_.enc_s.name, ds_.ptr);
    bind_input(*dec_, r_.dec_x, batch, dx_.ptr);
    bind_input(*dec_, r_.dec_s, batch, ds_.ptr);  // the encoder's output is the decoder's input
    bind(*dec_, r_.dec_v.name, dv_.ptr);
  }

  ~TensorRTRunner() override {
    enc_.reset();
    dec_.reset();
    cudaStreamDestroy(stream_);
  }

  float* x() override { return static_cast<float*>(hx_.ptr); }
  float* t() override { return static_cast<float*>(ht_.ptr); }
  int64_t* y() override { return static_cast<int64_t*>(hy_.ptr); }
  const float* v() override { return static_cast<const float*>(hv_.ptr); }

  void encode() override {
    // x is copied again by decode(): 2B x C x H x W floats, noise next to a transformer call.
    cuda_check(cudaMemcpyAsync(dx_.ptr, hx_.ptr, x_bytes_, cudaMemcpyHostToDevice, stream_), "copy x");
    cuda_check(cudaMemcpyAsync(dt_.ptr, ht_.ptr, t_bytes_, cudaMemcpyHostToDevice, stream_), "copy t");
    cuda_check(cudaMemcpyAsync(dy_.ptr, hy_.ptr, y_bytes_, cudaMemcpyHostToDevice, stream_), "copy y");
    if (!enc_->enqueueV3(stream_)) throw Error("TensorRT encoder enqueueV3 failed (see the tensorrt: lines above)");
  }

  void decode() override {
    cuda_check(cudaMemcpyAsync(dx_.ptr, hx_.ptr, x_bytes_, cudaMemcpyHostToDevice, stream_), "copy x");
    if (!dec_->enqueueV3(stream_)) throw Error("TensorRT decoder enqueueV3 failed (see the tensorrt: lines above)");
    cuda_check(cudaMemcpyAsync(hv_.ptr, dv_.ptr, v_bytes_, cudaMemcpyDeviceToHost, stream_), "copy v");
    cuda_check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }

 private:
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

  std::shared_ptr<Engines> engines_;
  Roles r_;
  size_t x_bytes_, t_bytes_, y_bytes_, v_bytes_, s_bytes_;
  HostBuffer hx_, ht_, hy_, hv_;
  DeviceBuffer dx_, dt_, dy_, ds_, dv_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<nvinfer1::IExecutionContext> enc_, dec_;
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

  std::unique_ptr<Runner> runner(int64_t batch) override {
    if (batch < cfg_min_ || batch > cfg_max_) {
      throw Error("the engines take " + std::to_string(cfg_min_ / 2) + " to " + std::to_string(cfg_max_ / 2) +
                  " samples per call (CFG batch " + std::to_string(cfg_min_) + ".." + std::to_string(cfg_max_) + "), asked for " +
                  std::to_string(batch / 2) + "; use fewer samples or rebuild with a larger batch: ddt-export engines " +
                  manifest_.root.string() + " --max-batch " + std::to_string(std::max<int64_t>(batch / 2, 1)) + " --opt-level " +
                  std::to_string(opt_level_));
    }
    return std::make_unique<TensorRTRunner>(engines_, manifest_, batch);
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
