// manifest.json, read as data: the only contract between `ddt-export build` and this runtime.
// Mirrors ddt_export/manifest.py: the same checks (every file's sha256 included), the same
// one-line messages, and the calibration lookup by sampler settings.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ddt/runtime.h"

namespace ddt::detail {

constexpr int kManifestFormat = 1;
constexpr int64_t kBatch = -1;  // the symbolic "batch" axis of a tensor shape

struct TensorSpec {
  std::string name;
  std::string dtype;           // numpy dtype name: float32, float16, bfloat16, int64
  std::vector<int64_t> shape;  // kBatch for the dynamic axis

  std::vector<int64_t> concrete(int64_t batch) const;
  int64_t numel(int64_t batch) const;
};

struct GraphSpec {
  std::string name;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
};

/// Tensor roles by position (ddt_export/backends/roles.py): encoder (x, t, y) -> s, decoder (x, s) -> v.
struct Roles {
  const TensorSpec& enc_x;
  const TensorSpec& enc_t;
  const TensorSpec& enc_y;
  const TensorSpec& enc_s;
  const TensorSpec& dec_x;
  const TensorSpec& dec_s;
  const TensorSpec& dec_v;
};

struct Manifest {
  std::filesystem::path root;
  nlohmann::json data;
  std::string name;
  int64_t num_classes = 0;
  int64_t null_class = 0;
  std::vector<int64_t> latent_shape;  // (C, H, W), as the graphs' x
  SamplerSettings sampler;
  GraphSpec encoder, decoder;
  std::optional<ClassNames> class_names;  // model.class_names; empty for a build without them (ids only)
  /// quantization.scheme.per_token.group_size: an int8 build's per-token sites (int8 weights) have their activations
  /// quantised per token in groups of this many channels at run time (OpenVINO's DYNAMIC_QUANTIZATION_GROUP_SIZE);
  /// empty for fp32 builds and int8 builds without per-token sites.
  std::optional<uint64_t> per_token_group;

  Roles roles() const;
  std::filesystem::path path(const std::string& file) const { return root / file; }
  bool has(const std::string& key) const { return data.contains(key); }
  /// The calibrated N x N similarity measured under exactly these sampler settings (the entry's
  /// "sampler" object equals them, value for value, sampler and order included: absent there is
  /// euler and 1), if `ddt-export calibrate` stored one. An Euler matrix never serves Adams.
  std::optional<Array> similarity(const SamplerSettings& settings) const;
  /// The `ddt-export calibrate` command that stores a calibration for these settings: each setting
  /// that differs from the build's defaults as its option, `--sampler adams --order K` included.
  std::string calibrate_command(const SamplerSettings& settings) const;
  /// A top-level section a backend needs, or an Error telling how to rebuild with it.
  const nlohmann::json& section(const std::string& key, const std::string& rebuild_hint) const;
};

/// Opens a build folder. `verify`: every file the manifest lists exists with its recorded size and sha256.
Manifest read_manifest(const std::filesystem::path& root, bool verify = true);

/// `name` under `root` exists with the size and sha256 its `files` entry records, or an Error.
void verify_file(const std::filesystem::path& root, const std::string& name, const nlohmann::json& entry);

/// A required manifest value, or an Error naming the key (the manifest is from another version).
const nlohmann::json& require(const nlohmann::json& obj, const std::string& key, const std::string& where);

/// A double as Python's repr prints it: the shortest text that reads back as the same value.
std::string number_text(double v);

}  // namespace ddt::detail
