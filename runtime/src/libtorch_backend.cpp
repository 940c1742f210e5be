// LibTorch backend (compiled only where CMake finds Torch): the TorchScript encoder and decoder
// `ddt-export build --libtorch` writes (manifest["libtorch"]), in fp32 on the CPU. The runner's
// x, t, y, v are CPU tensors allocated once; the loop writes and reads them through their data
// pointers, and s stays a tensor between the encoder and the decoder. A cond_only call runs the
// modules on rows B:2B (narrow: views of the same tensors, never copies of the inputs).

#include <ATen/Parallel.h>
#include <torch/script.h>
#include <torch/version.h>

#include "backend.h"

namespace ddt::detail {

namespace {

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

std::string shape_text(at::IntArrayRef shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

struct Modules {
  torch::jit::Module encoder, decoder;
};

class LibTorchRunner final : public Runner {
 public:
  LibTorchRunner(std::shared_ptr<Modules> modules, const Manifest& m, int64_t batch)
      : modules_(std::move(modules)), s_shape_(m.roles().enc_s.concrete(batch)) {
    const Roles r = m.roles();
    x_ = at::zeros(r.enc_x.concrete(batch), at::kFloat);
    t_ = at::zeros(r.enc_t.concrete(batch), at::kFloat);
    y_ = at::zeros(r.enc_y.concrete(batch), at::kLong);
    v_ = at::zeros(r.dec_v.concrete(batch), at::kFloat);
  }

  float* x() override { return x_.data_ptr<float>(); }
  float* t() override { return t_.data_ptr<float>(); }
  int64_t* y() override { return y_.data_ptr<int64_t>(); }
  const float* v() override { return v_.data_ptr<float>(); }

  void encode(bool cond_only) override {
    c10::InferenceMode guard;
    const int64_t lo = cond_only ? x_.size(0) / 2 : 0;  // cond_only: rows B:2B (guidance off)
    const int64_t rows = x_.size(0) - lo;
    at::Tensor s = modules_->encoder.forward({x_.narrow(0, lo, rows), t_.narrow(0, lo, rows), y_.narrow(0, lo, rows)}).toTensor();
    if (!checked_s_) {
      std::vector<int64_t> want(s_shape_);
      want[0] = rows;
      check("encoder", s, want);
      checked_s_ = true;
    }
    if (lo == 0) {
      s_ = s;
    } else {  // the unconditional rows keep whatever they held: no step before the next recompute reads them
      if (!s_.defined()) s_ = at::zeros(s_shape_, s.options());
      s_.narrow(0, lo, rows).copy_(s);
    }
  }

  void decode(bool cond_only) override {
    if (!s_.defined()) throw Error("decode() before encode(): the first step must be a recompute step");
    c10::InferenceMode guard;
    const int64_t lo = cond_only ? x_.size(0) / 2 : 0;
    const int64_t rows = x_.size(0) - lo;
    at::Tensor v_rows = v_.narrow(0, lo, rows);  // a view: the result lands in the loop's buffer
    const at::Tensor v = modules_->decoder.forward({x_.narrow(0, lo, rows), s_.narrow(0, lo, rows)}).toTensor();
    if (!checked_v_) {
      check("decoder", v, v_rows.sizes().vec());
      checked_v_ = true;
    }
    v_rows.copy_(v);
  }

 private:
  static void check(const char* graph, const at::Tensor& out, const std::vector<int64_t>& want) {
    if (out.sizes().vec() != want) {
      throw Error(std::string("the LibTorch ") + graph + " returned shape " + shape_text(out.sizes()) + ", the manifest says " +
                  shape_text(want) + "; rebuild with `ddt-export build --libtorch`");
    }
  }

  std::shared_ptr<Modules> modules_;
  std::vector<int64_t> s_shape_;
  at::Tensor x_, t_, y_, v_, s_;
  bool checked_s_ = false, checked_v_ = false;
};

class LibTorchBackend final : public Backend {
 public:
  LibTorchBackend(const Manifest& m, const BackendOptions& options) : manifest_(m) {
    if (!options.precision.empty() && options.precision != "f32" && options.precision != "fp32") {
      throw Error("the libtorch backend runs the TorchScript modules in f32 only (asked for " + options.precision +
                  "); use --backend openvino for bf16");
    }
    if (options.threads > 0) at::set_num_threads(options.threads);
    const std::string hint = "rebuild with `ddt-export build --libtorch` to add the LibTorch modules";
    const nlohmann::json& sec = m.section("libtorch", hint);
    const std::string format = require(sec, "format", "manifest libtorch").get<std::string>();
    if (format != "torchscript") {
      throw Error(m.root.string() + " has LibTorch modules in format '" + format + "', this runtime reads torchscript; " + hint);
    }
    const std::string precision = require(m.data, "precision", "manifest").get<std::string>();
    if (precision != "fp32") {  // its modules hold the fp32 weights: their samples would not be this build's
      throw Error(m.root.string() + " is a " + precision + " build; the libtorch backend runs only its fp32 weights, so its "
                  "samples would not be this build's. Use --backend openvino (or an fp32 build for libtorch)");
    }
    modules_ = std::make_shared<Modules>();
    modules_->encoder = load(sec, "encoder", m.encoder);
    modules_->decoder = load(sec, "decoder", m.decoder);
  }

  std::unique_ptr<Runner> runner(int64_t batch, bool) override {
    return std::make_unique<LibTorchRunner>(modules_, manifest_, batch);
  }

  const std::string& precision() const override { return precision_; }

 private:
  torch::jit::Module load(const nlohmann::json& sec, const std::string& name, const GraphSpec& graph) {
    const nlohmann::json& entry = require(sec, name, "manifest libtorch");
    const std::string where = "manifest libtorch." + name;
    // The modules take their inputs by position; the names must be the graph's, in its order.
    std::vector<std::string> want;
    for (const TensorSpec& t : graph.inputs) want.push_back(t.name);
    if (require(entry, "inputs", where).get<std::vector<std::string>>() != want) {
      throw Error(manifest_.root.string() + ": the LibTorch " + name + "'s inputs differ from the " + name +
                  " graph's; rebuild with `ddt-export build --libtorch`");
    }
    const std::string file = require(entry, "file", where).get<std::string>();
    try {
      torch::jit::Module module = torch::jit::load(manifest_.path(file).string(), at::kCPU);
      module.eval();
      return module;
    } catch (const c10::Error& e) {
      const std::string made_by = sec.contains("torch") ? sec.at("torch").get<std::string>() : "?";
      throw Error("cannot load " + manifest_.path(file).string() + " (written by torch " + made_by + ", this is LibTorch " +
                  TORCH_VERSION + "): " + first_line(e.what_without_backtrace()) +
                  "; rebuild with `ddt-export build --libtorch` using this LibTorch's torch");
    }
  }

  const Manifest& manifest_;
  std::shared_ptr<Modules> modules_;
  std::string precision_ = "f32";
};

}  // namespace

std::unique_ptr<Backend> open_libtorch(const Manifest& manifest, const BackendOptions& options) {
  return std::make_unique<LibTorchBackend>(manifest, options);
}

}  // namespace ddt::detail
