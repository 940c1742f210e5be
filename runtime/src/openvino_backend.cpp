// OpenVINO backend: the build's own encoder.onnx / decoder.onnx (fp32, or int8 QDQ) on the CPU,
// as ddt_export/backends/openvino_backend.py runs them: read once, compiled per static CFG
// batch with INFERENCE_PRECISION_HINT (bf16 where the CPU has bf16 hardware, else f32),
// PERFORMANCE_HINT LATENCY and, for an int8 build's per-token sites, DYNAMIC_QUANTIZATION_GROUP_SIZE
// from the manifest (quantization.scheme.per_token.group_size). Each runner allocates x, t, y, s, v
// once and binds them once: x to both graphs, s as the encoder's output and the decoder's input
// (one buffer, never copied). Where guidance is off the loop runs the conditional half alone: a
// second pair of requests, compiled at batch B, bound to tensors over the same memory from row B on
// (views, never copies).

#include <openvino/frontend/manager.hpp>
#include <openvino/openvino.hpp>

#include <algorithm>
#include <map>

#include "backend.h"

namespace ddt::detail {

namespace {

std::string first_line(const std::string& text, size_t limit = 300) {
  std::string line = text.substr(0, text.find('\n'));
  return line.size() > limit ? line.substr(0, limit) + "..." : line;
}

ov::element::Type element_type(const TensorSpec& t) {
  static const std::map<std::string, ov::element::Type> types = {
      {"float32", ov::element::f32}, {"float16", ov::element::f16}, {"bfloat16", ov::element::bf16}, {"int64", ov::element::i64}};
  const auto it = types.find(t.dtype);
  if (it == types.end()) throw Error("tensor " + t.name + " has dtype " + t.dtype + ", which the OpenVINO backend does not bind");
  return it->second;
}

ov::Shape static_shape(const TensorSpec& t, int64_t batch) {
  ov::Shape shape;
  for (int64_t d : t.concrete(batch)) shape.push_back(static_cast<size_t>(d));
  return shape;
}

std::string shape_text(const ov::Shape& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

struct Compiled {
  ov::CompiledModel encoder, decoder;
};

class OpenVinoRunner final : public Runner {
 public:
  /// `half`: the graphs compiled at batch/2, for the cond_only calls (rows B:2B), or null when
  /// the loop makes none.
  OpenVinoRunner(Compiled& full, Compiled* half, const Manifest& m, int64_t batch) {
    const Roles r = m.roles();
    for (const TensorSpec* t : {&r.enc_x, &r.enc_t, &r.enc_y, &r.enc_s, &r.dec_v}) {
      if (t->shape.empty() || t->shape[0] != kBatch) {  // rows B:2B must be one contiguous block
        throw Error("tensor " + t->name + " does not have the batch as its first axis; rebuild the folder");
      }
    }
    x_ = ov::Tensor(element_type(r.enc_x), static_shape(r.enc_x, batch));
    t_ = ov::Tensor(element_type(r.enc_t), static_shape(r.enc_t, batch));
    y_ = ov::Tensor(element_type(r.enc_y), static_shape(r.enc_y, batch));
    s_ = ov::Tensor(element_type(r.enc_s), static_shape(r.enc_s, batch));
    v_ = ov::Tensor(element_type(r.dec_v), static_shape(r.dec_v, batch));
    std::fill_n(static_cast<char*>(s_.data()), s_.get_byte_size(), 0);
    requests_[0] = bind(full, r, 0, batch);
    if (half) requests_[1] = bind(*half, r, batch / 2, batch);
  }

  float* x() override { return x_.data<float>(); }
  float* t() override { return t_.data<float>(); }
  int64_t* y() override { return y_.data<int64_t>(); }
  const float* v() override { return v_.data<float>(); }

  void encode(bool cond_only) override {
    run(requests(cond_only).encoder, "encoder");
    encoded_ = true;
  }

  void decode(bool cond_only) override {
    if (!encoded_) throw Error("decode() before encode(): the first step must be a recompute step");
    run(requests(cond_only).decoder, "decoder");
  }

 private:
  struct Requests {
    ov::InferRequest encoder, decoder;
  };

  /// Rows lo:batch of `whole`: a tensor over the same memory (a view, never a copy).
  static ov::Tensor rows(ov::Tensor& whole, int64_t lo, int64_t batch) {
    if (lo == 0) return whole;
    ov::Shape shape = whole.get_shape();
    shape[0] = static_cast<size_t>(batch - lo);
    const size_t offset = whole.get_byte_size() / static_cast<size_t>(batch) * static_cast<size_t>(lo);
    return ov::Tensor(whole.get_element_type(), shape, static_cast<char*>(whole.data()) + offset);
  }

  /// Requests for rows lo:batch, bound once: x to both graphs, s as the encoder's output and the
  /// decoder's input (one buffer, never copied), v read in place by the loop.
  Requests bind(Compiled& compiled, const Roles& r, int64_t lo, int64_t batch) {
    Requests q{compiled.encoder.create_infer_request(), compiled.decoder.create_infer_request()};
    ov::Tensor x = rows(x_, lo, batch), s = rows(s_, lo, batch);
    q.encoder.set_tensor(r.enc_x.name, x);
    q.encoder.set_tensor(r.enc_t.name, rows(t_, lo, batch));
    q.encoder.set_tensor(r.enc_y.name, rows(y_, lo, batch));
    q.encoder.set_tensor(r.enc_s.name, s);  // the encoder writes s here ...
    q.decoder.set_tensor(r.dec_x.name, x);
    q.decoder.set_tensor(r.dec_s.name, s);  // ... and the decoder reads it from here
    q.decoder.set_tensor(r.dec_v.name, rows(v_, lo, batch));
    return q;
  }

  Requests& requests(bool cond_only) {
    if (cond_only && !requests_[1].encoder) throw Error("internal: a cond_only call on a runner made without halves");
    return requests_[cond_only ? 1 : 0];
  }

  static void run(ov::InferRequest& request, const char* graph) {
    try {
      request.infer();  // in place: the bound tensors are the graph's inputs and outputs
    } catch (const std::exception& e) {
      throw Error(std::string("OpenVINO failed running the ") + graph + ": " + first_line(e.what()));
    }
  }

  ov::Tensor x_, t_, y_, s_, v_;
  Requests requests_[2];  // every row; the conditional half (rows B:2B)
  bool encoded_ = false;
};

class OpenVinoBackend final : public Backend {
 public:
  OpenVinoBackend(const Manifest& m, const BackendOptions& options) : manifest_(m) {
    try {
      std::vector<std::string> caps = core_.get_property("CPU", ov::device::capabilities);
      const bool has_bf16 = std::find(caps.begin(), caps.end(), "BF16") != caps.end();
      precision_ = options.precision.empty() ? (has_bf16 ? "bf16" : "f32") : options.precision;
      if (precision_ == "fp32") precision_ = "f32";
      if (precision_ != "f32" && precision_ != "bf16") {
        throw Error("unknown inference precision '" + options.precision + "'; choose f32 or bf16");
      }
      if (precision_ == "bf16" && !has_bf16) {
        throw Error("this CPU has no bf16 hardware (AVX512-BF16 or AMX) for --inference-precision bf16; use f32");
      }
      config_[ov::hint::inference_precision.name()] = precision_ == "bf16" ? ov::element::bf16 : ov::element::f32;
      config_[ov::hint::performance_mode.name()] = ov::hint::PerformanceMode::LATENCY;
      if (options.threads > 0) config_[ov::inference_num_threads.name()] = static_cast<int32_t>(options.threads);
      // an int8 build's per-token sites: activations quantised per token in the build's channel groups (the plugin's
      // default, 32, is not what the build chose and measured)
      if (m.per_token_group) config_[ov::hint::dynamic_quantization_group_size.name()] = *m.per_token_group;
      encoder_ = read("encoder", m.encoder);
      decoder_ = read("decoder", m.decoder);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error("OpenVINO cannot start on this machine's CPU: " + first_line(e.what()));
    }
  }

  std::unique_ptr<Runner> runner(int64_t batch, bool halves) override {
    Compiled& full = compiled(batch);
    Compiled* half = halves ? &compiled(batch / 2) : nullptr;  // the conditional half's static batch B
    return std::make_unique<OpenVinoRunner>(full, half, manifest_, batch);
  }

  const std::string& precision() const override { return precision_; }

 private:
  std::shared_ptr<ov::Model> read(const std::string& name, const GraphSpec& graph) {
    const std::string path = manifest_.path(require(manifest_.data.at("graphs").at(name), "file", "manifest graphs." + name)
                                                .get<std::string>())
                                 .string();
    std::shared_ptr<ov::Model> model;
    try {
      // the ONNX frontend itself, not core.read_model: a damaged file is not offered to every
      // other frontend (which log to stderr); external data (<file>.data) is found beside it
      if (!onnx_) onnx_ = frontends_.load_by_framework("onnx");
      model = onnx_->convert(onnx_->load(path));
    } catch (const std::exception& e) {
      throw Error(path + ": OpenVINO cannot read it (" + first_line(e.what(), 200) + "); rebuild the folder");
    }
    for (const TensorSpec& t : graph.inputs) {
      bool found = false;
      for (const ov::Output<ov::Node>& in : model->inputs()) found = found || in.get_names().count(t.name) > 0;
      if (!found) {
        throw Error(path + " has no input named " + t.name + " (the manifest says it should); rebuild the folder");
      }
    }
    return model;
  }

  /// The graphs compiled for a static batch, once per batch size (std::map: references stay valid).
  Compiled& compiled(int64_t batch) {
    auto it = compiled_.find(batch);
    if (it == compiled_.end()) it = compiled_.emplace(batch, compile(batch)).first;
    return it->second;
  }

  Compiled compile(int64_t batch) {
    Compiled out;
    try {
      out.encoder = compile_one(encoder_, manifest_.encoder, batch);
      out.decoder = compile_one(decoder_, manifest_.decoder, batch);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error("OpenVINO cannot compile the graphs for batch " + std::to_string(batch) + ": " + first_line(e.what()));
    }
    return out;
  }

  ov::CompiledModel compile_one(const std::shared_ptr<ov::Model>& model, const GraphSpec& graph, int64_t batch) {
    std::shared_ptr<ov::Model> shaped = model->clone();
    std::map<std::string, ov::PartialShape> shapes;
    for (const TensorSpec& t : graph.inputs) shapes[t.name] = ov::PartialShape(static_shape(t, batch));
    shaped->reshape(shapes);
    ov::CompiledModel compiled = core_.compile_model(shaped, "CPU", config_);
    for (const TensorSpec& t : graph.outputs) {  // what the graph computes must be what the manifest says
      const ov::Shape got = compiled.output(t.name).get_shape();
      if (got != static_shape(t, batch)) {
        throw Error("the " + graph.name + " graph's output " + t.name + " has shape " + shape_text(got) +
                    ", the manifest says " + shape_text(static_shape(t, batch)) + "; rebuild the folder");
      }
    }
    return compiled;
  }

  const Manifest& manifest_;
  ov::frontend::FrontEndManager frontends_;  // declared before the models they made
  ov::frontend::FrontEnd::Ptr onnx_;
  ov::Core core_;
  ov::AnyMap config_;
  std::string precision_;
  std::shared_ptr<ov::Model> encoder_, decoder_;
  std::map<int64_t, Compiled> compiled_;
};

}  // namespace

std::unique_ptr<Backend> open_openvino(const Manifest& manifest, const BackendOptions& options) {
  return std::make_unique<OpenVinoBackend>(manifest, options);
}

}  // namespace ddt::detail
