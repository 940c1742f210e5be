// Reads and checks manifest.json: format, every file's size and sha256, the tensors' roles,
// dtypes and shapes, the sampler defaults (Euler or Adams), an int8 build's per-token group;
// finds calibrations by their sampler settings, sampler and order included.

#include "manifest.h"

#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "build_lock.h"
#include "sha256.h"
#include "text.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace ddt::detail {

namespace {

const char* kName = "manifest.json";

std::string rebuild(const fs::path& root) {
  return "rebuild it with `ddt-export build --out " + root.string() + "`";
}

TensorSpec parse_tensor(const json& t, const std::string& where) {
  TensorSpec spec;
  spec.name = require(t, "name", where).get<std::string>();
  spec.dtype = require(t, "dtype", where).get<std::string>();
  for (const json& dim : require(t, "shape", where)) {
    if (dim.is_string()) {
      if (dim.get<std::string>() != "batch") {
        throw Error(where + " has symbolic axis '" + dim.get<std::string>() + "'; only 'batch' is dynamic");
      }
      spec.shape.push_back(kBatch);
    } else {
      spec.shape.push_back(dim.get<int64_t>());
    }
  }
  return spec;
}

GraphSpec parse_graph(const json& graphs, const std::string& name, const fs::path& root) {
  if (!graphs.contains(name)) {
    throw Error(root.string() + " has no " + name + " graph; " + rebuild(root));
  }
  const json& g = graphs.at(name);
  GraphSpec spec{name, {}, {}};
  const std::string where = "manifest graphs." + name;
  for (const json& t : require(g, "inputs", where)) spec.inputs.push_back(parse_tensor(t, where + ".inputs"));
  for (const json& t : require(g, "outputs", where)) spec.outputs.push_back(parse_tensor(t, where + ".outputs"));
  return spec;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    s << (i ? ", " : "") << (shape[i] == kBatch ? std::string("batch") : std::to_string(shape[i]));
  }
  s << ")";
  return s.str();
}

// The loop writes x, t, y and reads v on the host in these dtypes; s stays inside the backend.
void check_roles(const Manifest& m) {
  if (m.encoder.inputs.size() != 3 || m.encoder.outputs.size() != 1 || m.decoder.inputs.size() != 2 ||
      m.decoder.outputs.size() != 1) {
    throw Error(m.root.string() + ": encoder must map (x, t, y) -> s and decoder (x, s) -> v; " + rebuild(m.root));
  }
  const Roles r = m.roles();
  const std::pair<const TensorSpec*, const char*> want[] = {
      {&r.enc_x, "float32"}, {&r.enc_t, "float32"}, {&r.enc_y, "int64"}, {&r.dec_x, "float32"}, {&r.dec_v, "float32"}};
  for (const auto& [spec, dtype] : want) {
    if (spec->dtype != dtype) {
      throw Error(m.root.string() + ": tensor " + spec->name + " is " + spec->dtype + ", the runtime feeds " + dtype +
                  "; " + rebuild(m.root));
    }
  }
  const auto latent = [](const TensorSpec& t) { return std::vector<int64_t>(t.shape.begin() + 1, t.shape.end()); };
  for (const TensorSpec* t : {&r.enc_x, &r.dec_x, &r.dec_v}) {
    if (t->shape.size() != 4 || t->shape[0] != kBatch || latent(*t) != m.latent_shape) {
      throw Error(m.root.string() + ": tensor " + t->name + " has shape " + shape_text(t->shape) +
                  ", expected (batch, C, H, W) with the latent shape " + shape_text(m.latent_shape) + "; " +
                  rebuild(m.root));
    }
  }
  if (r.enc_s.shape != r.dec_s.shape || r.enc_s.dtype != r.dec_s.dtype) {
    throw Error(m.root.string() + ": the encoder's output " + r.enc_s.name + " " + shape_text(r.enc_s.shape) +
                " does not match the decoder's input " + r.dec_s.name + " " + shape_text(r.dec_s.shape) + "; " +
                rebuild(m.root));
  }
}

}  // namespace

const json& require(const json& obj, const std::string& key, const std::string& where) {
  if (!obj.is_object() || !obj.contains(key)) {
    throw Error(where + " lacks '" + key + "': the folder was written by another ddt-export version; rebuild it");
  }
  return obj.at(key);
}

std::vector<int64_t> TensorSpec::concrete(int64_t batch) const {
  std::vector<int64_t> out(shape);
  for (int64_t& d : out) {
    if (d == kBatch) d = batch;
  }
  return out;
}

int64_t TensorSpec::numel(int64_t batch) const {
  int64_t n = 1;
  for (int64_t d : concrete(batch)) n *= d;
  return n;
}

Roles Manifest::roles() const {
  return {encoder.inputs[0], encoder.inputs[1], encoder.inputs[2], encoder.outputs[0],
          decoder.inputs[0], decoder.inputs[1], decoder.outputs[0]};
}

std::string number_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[40];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string text = buf;
  if (text.find_first_of(".en") == std::string::npos) text += ".0";  // 3 -> 3.0, as Python prints a float
  return text;
}

namespace {

/// An entry's "sampler" object equals the run's settings, value for value (exact doubles;
/// a null last_step is "not given", i.e. 1 / N).
bool same_settings(const json& s, const SamplerSettings& run) {
  if (!s.is_object()) return false;
  const auto num = [&](const char* key, double want) {
    return s.contains(key) && s.at(key).is_number() && s.at(key).get<double>() == want;
  };
  if (!num("num_steps", run.num_steps) || !num("guidance", run.guidance) || !num("interval_min", run.interval_min) ||
      !num("interval_max", run.interval_max) || !num("timeshift", run.timeshift)) {
    return false;
  }
  // absent is null, as the schema's default (ddt_export/manifest.schema.json, Settings.last_step)
  const json last = s.contains("last_step") ? s.at("last_step") : json(nullptr);
  const bool same_last = last.is_null() ? !run.last_step.has_value()
                                        : last.is_number() && run.last_step.has_value() && last.get<double>() == *run.last_step;
  // sampler and order: absent in entries stored before the Adams sampler, which are Euler's (the schema's defaults)
  const json solver = s.contains("sampler") ? s.at("sampler") : json("euler");
  const json order = s.contains("order") ? s.at("order") : json(1);
  return same_last && solver.is_string() && solver.get<std::string>() == run.sampler && order.is_number() &&
         order.get<double>() == run.order;
}

}  // namespace

std::optional<Array> Manifest::similarity(const SamplerSettings& settings) const {
  if (!data.contains("calibration") || !data.at("calibration").is_object()) return std::nullopt;
  for (const auto& [key, entry] : data.at("calibration").items()) {
    if (!entry.is_object() || !entry.contains("sampler") || !same_settings(entry.at("sampler"), settings)) continue;
    const int n = settings.num_steps;
    const std::string file = require(entry, "file", "manifest calibration." + key).get<std::string>();
    const SharedBuildLock lock(root);  // not while a rebuild swaps the folder or calibrate rewrites it
    verify_file(root, file, data.at("files").at(file));  // read only what the manifest hashed (read_manifest: it is listed)
    Array sim = read_npy(path(file).string(), int64_t{kMaxSteps} * kMaxSteps);
    if (sim.shape.size() != 2 || sim.shape[0] != n || sim.shape[1] != n) {
      throw Error(root.string() + ": the calibration " + file + " is not " + std::to_string(n) + " x " + std::to_string(n) +
                  "; run `" + calibrate_command(settings) + "` again");
    }
    return sim;
  }
  return std::nullopt;
}

std::string Manifest::calibrate_command(const SamplerSettings& s) const {
  std::string cmd = "ddt-export calibrate " + root.string() + " --steps " + std::to_string(s.num_steps);
  if (s.guidance != sampler.guidance) cmd += " --cfg " + number_text(s.guidance);
  if (s.interval_min != sampler.interval_min || s.interval_max != sampler.interval_max) {
    cmd += " --interval " + number_text(s.interval_min) + "," + number_text(s.interval_max);
  }
  if (s.timeshift != sampler.timeshift) cmd += " --timeshift " + number_text(s.timeshift);
  if (s.last_step != sampler.last_step && s.last_step) cmd += " --last-step " + number_text(*s.last_step);
  if (s.sampler != sampler.sampler || s.order != sampler.order) {  // both spelled out: right whatever the build's default
    cmd += s.sampler == "adams" ? " --sampler adams --order " + std::to_string(s.order) : " --sampler " + s.sampler;
  }
  return cmd;
}

const json& Manifest::section(const std::string& key, const std::string& rebuild_hint) const {
  if (!data.contains(key)) {
    throw Error(root.string() + " has no " + key + " section; " + rebuild_hint);
  }
  return data.at(key);
}

namespace {

/// The folder's manifest.json, parsed; an Error for a missing folder or file, or text that is not JSON.
json parse_manifest_file(const fs::path& root) {
  const fs::path file = root / kName;
  std::error_code ec;
  if (fs::exists(root, ec) && !fs::is_directory(root, ec)) {
    throw Error(root.string() + " is a file, not a build folder; give the folder `ddt-export build` made");
  }
  if (!fs::is_regular_file(file, ec)) {
    const std::string hint = !fs::exists(root, ec) ? "run `ddt-export build` to make one"
                                                   : "it is not a ddt-export build; run `ddt-export build --out` for it";
    throw Error(root.string() + " has no " + kName + ": " + hint);
  }
  std::ifstream in(file, std::ios::binary);
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw Error(file.string() + " is not valid JSON (" + e.what() + "); rebuild the folder");
  }
}

void check_format(const json& d, const fs::path& root) {
  if (!d.is_object() || !d.contains("format") || d.at("format") != kManifestFormat) {
    const std::string found = d.is_object() && d.contains("format") ? d.at("format").dump() : "None";
    throw Error(root.string() + " was built by an incompatible ddt-export (manifest format " + found +
                ", this version reads " + std::to_string(kManifestFormat) + "); rebuild it with `ddt-export build`");
  }
}

}  // namespace

void verify_file(const fs::path& root, const std::string& name, const json& entry) {
  std::error_code ec;
  const fs::path p = root / name;
  if (!fs::is_regular_file(p, ec)) {
    throw Error(root.string() + ": " + name + " is missing; the build is incomplete, rebuild it");
  }
  // The size first (cheap, and a truncated file needs no hashing), then the sha256, as the
  // Python runtime: a same-size edit must be refused too.
  const std::string want = require(entry, "sha256", "manifest files." + name).get<std::string>();
  if (fs::file_size(p, ec) != require(entry, "bytes", "manifest files." + name).get<uint64_t>() ||
      sha256_file(p.string()) != want) {
    throw Error(root.string() + ": " + name + " does not match its sha256 in the manifest (modified or truncated); rebuild it");
  }
}

namespace {

/// Every file the manifest lists exists with its recorded size and sha256.
void verify_files(const json& d, const fs::path& root) {
  for (const auto& [name, entry] : require(d, "files", "manifest").items()) verify_file(root, name, entry);
}

/// A path a manifest may name (manifest_schema.py's BuildPath): relative, no '..', no '\\' or NUL.
bool inside(const std::string& path) {
  if (path.empty() || path[0] == '/' || path.find('\\') != std::string::npos || path.find('\0') != std::string::npos) return false;
  for (const fs::path& part : fs::path(path)) {
    if (part == "..") return false;
  }
  return true;
}

/// Every file the manifest points at, by where it points from (manifest_schema.py's named_files).
std::vector<std::pair<std::string, json>> named_files(const json& d) {
  std::vector<std::pair<std::string, json>> named;
  const auto add = [&](const std::string& where, const json& obj, const char* key) {
    if (obj.is_object() && obj.contains(key) && !obj.at(key).is_null()) named.emplace_back(where, obj.at(key));
  };
  add("weights_file", d, "weights_file");
  for (const char* section : {"graphs", "calibration"}) {
    if (!d.contains(section) || !d.at(section).is_object()) continue;
    for (const auto& [k, entry] : d.at(section).items()) {
      add(std::string(section) + "." + k + ".file", entry, "file");
      if (std::string(section) == "calibration") add("calibration." + k + ".heatmap", entry, "heatmap");
    }
  }
  if (d.contains("engines") && d.at("engines").is_object() && d.at("engines").contains("files")) {
    for (const auto& [k, f] : d.at("engines").at("files").items()) named.emplace_back("engines.files." + k, f);
  }
  for (const char* k : {"encoder", "decoder"}) {
    if (d.contains("libtorch") && d.at("libtorch").is_object()) add(std::string("libtorch.") + k + ".file", d.at("libtorch").value(k, json()), "file");
  }
  return named;
}

/// Paths inside the folder only (issue 26.4): every `files` entry relative and without '..', the
/// digest of manifest.py (an unkeyed checksum: it shows edits and damage, it proves no author)
/// matching, and every path the manifest names one of its hashed files.
void check_paths(const json& d, const fs::path& file) {
  for (const auto& [name, entry] : require(d, "files", "manifest").items()) {
    if (!inside(name)) {
      throw Error(file.string() + ": files names " + string_repr(name) +
                  ", which is not inside the build folder; the manifest is damaged or was edited, rebuild the folder");
    }
  }
  if (d.contains("digest") && !d.at("digest").is_null()) {
    json body = d;
    body.erase("digest");
    const std::string text = python_json(body);
    Sha256 h;
    h.update(text.data(), text.size());
    if (!d.at("digest").is_string() || d.at("digest").get<std::string>() != h.hexdigest()) {
      throw Error(file.string() + " was edited by hand (its digest no longer matches); rebuild the folder, or restore the manifest");
    }
  }
  for (const auto& [where, f] : named_files(d)) {
    if (!f.is_string() || !d.at("files").contains(f.get<std::string>())) {
      throw Error(file.string() + ": " + where + " names " + (f.is_string() ? string_repr(f.get<std::string>()) : f.dump()) +
                  ", which is not one of the build's hashed files; rebuild the folder");
    }
  }
}

/// A JSON value as Python's repr shows it in a pydantic message (errors.first_problem): containers by type name.
std::string value_repr(const json& v) {
  if (v.is_string()) return string_repr(v.get<std::string>());
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  if (v.is_null()) return "None";
  if (v.is_number_float()) return float_repr(v.get<double>());
  if (v.is_array() || v.is_object()) return v.is_array() ? "list" : "dict";
  return v.dump();
}

/// A value manifest.py's schema refuses, in its words (errors.first_problem): `file: where: problem (got value); ...`.
Error damaged(const fs::path& file, const std::string& where, const std::string& problem, const json& got) {
  return Error(file.string() + ": " + where + ": " + problem + " (got " + value_repr(got) +
               "); the manifest is damaged or was edited, rebuild the folder");
}

/// model.class_names (optional; absent or null: ids only): a list of strings, one per class of
/// model.num_classes, each line obeying class_names.py's rules N1-N2, checked as manifest.py does on every
/// read (before the files are hashed) with its messages.
std::optional<ClassNames> read_class_names(const json& d, const fs::path& file) {
  const json& model = require(d, "model", "manifest");
  if (!model.is_object() || !model.contains("class_names") || model.at("class_names").is_null()) return std::nullopt;
  const json& names = model.at("class_names");
  const auto damaged = [&](const std::string& where, const char* want, const json& got) {
    return detail::damaged(file, where, std::string("Input should be a valid ") + want, got);
  };
  if (!names.is_array()) throw damaged("model.class_names", "list", names);
  std::vector<std::string> lines;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!names[i].is_string()) throw damaged("model.class_names." + std::to_string(i), "string", names[i]);
    lines.push_back(names[i].get<std::string>());
  }
  const int64_t num_classes = require(model, "num_classes", "manifest model").get<int64_t>();
  check_class_names(lines, num_classes, file.string() + ": model.class_names");
  return ClassNames(std::move(lines));
}

/// An object of the schema at `where` (model `type` in its message), or an Error as manifest.py words it.
const json& object_at(const json& parent, const char* key, const std::string& where, const char* type, const fs::path& file) {
  const json& obj = parent.at(key);
  if (!obj.is_object()) throw damaged(file, where, std::string("Input should be a valid dictionary or instance of ") + type, obj);
  return obj;
}

/// quantization.scheme.per_token.group_size: the channel group OpenVINO quantises the activations of an int8 build's
/// per-token sites in (DYNAMIC_QUANTIZATION_GROUP_SIZE). Absent (fp32 builds; int8 builds made before per-token
/// sites) where quantization or its per_token is absent or null; else a strict integer >= 1, checked as manifest.py
/// does (quantization.scheme and per_token.group_size required) with its messages.
std::optional<uint64_t> read_per_token_group(const json& d, const fs::path& file) {
  if (!d.contains("quantization") || d.at("quantization").is_null()) return std::nullopt;
  const json& q = object_at(d, "quantization", "quantization", "Quantization", file);
  if (!q.contains("scheme")) throw damaged(file, "quantization.scheme", "Field required", q);
  const json& scheme = object_at(q, "scheme", "quantization.scheme", "QuantScheme", file);
  if (!scheme.contains("per_token") || scheme.at("per_token").is_null()) return std::nullopt;
  const std::string where = "quantization.scheme.per_token";
  const json& per_token = object_at(scheme, "per_token", where, "PerTokenScheme", file);
  if (!per_token.contains("group_size")) throw damaged(file, where + ".group_size", "Field required", per_token);
  const json& group = per_token.at("group_size");
  if (!group.is_number_integer()) throw damaged(file, where + ".group_size", "Input should be a valid integer", group);
  if (!group.is_number_unsigned() || group.get<uint64_t>() < 1) {
    throw damaged(file, where + ".group_size", "Input should be greater than or equal to 1", group);
  }
  return group.get<uint64_t>();
}

/// manifest sampler.order: a whole number (the schema's strict integer), within int.
int whole_order(const json& order, const fs::path& file) {
  if (!order.is_number_integer() || order.get<int64_t>() < INT_MIN || order.get<int64_t>() > INT_MAX) {
    throw Error(file.string() + ": its sampler defaults are invalid (order must be a whole number from 1 to 4 (got " +
                order.dump() + ")); rebuild the folder");
  }
  return order.get<int>();
}

/// manifest["sampler"]: the build's defaults, validated.
SamplerSettings parse_sampler(const json& d, const fs::path& file) {
  SamplerSettings out;
  const json& s = require(d, "sampler", "manifest");
  out.num_steps = require(s, "num_steps", "manifest sampler").get<int>();
  out.guidance = require(s, "guidance", "manifest sampler").get<double>();
  out.interval_min = require(s, "interval_min", "manifest sampler").get<double>();
  out.interval_max = require(s, "interval_max", "manifest sampler").get<double>();
  out.timeshift = require(s, "timeshift", "manifest sampler").get<double>();
  // last_step is optional, null by default (1 / N), as in the schema; builds write it, null or not
  if (s.contains("last_step") && !s.at("last_step").is_null()) out.last_step = s.at("last_step").get<double>();
  // sampler and order are optional, euler and 1 by default, as in the schema (builds before the Adams sampler lack them)
  if (s.contains("sampler")) out.sampler = s.at("sampler").get<std::string>();
  if (s.contains("order")) out.order = whole_order(s.at("order"), file);
  try {
    out.validate();
  } catch (const Error& e) {
    throw Error(file.string() + ": its sampler defaults are invalid (" + e.what() + "); rebuild the folder");
  }
  return out;
}

/// The manifest's values: name, model, sampler defaults, the two graphs' tensors.
void parse_values(Manifest& m, const fs::path& file) {
  const json& d = m.data;
  m.name = require(d, "name", "manifest").get<std::string>();
  const json& model = require(d, "model", "manifest");
  m.num_classes = require(model, "num_classes", "manifest model").get<int64_t>();
  m.null_class = require(model, "null_class", "manifest model").get<int64_t>();
  m.latent_shape = require(model, "latent_shape", "manifest model").get<std::vector<int64_t>>();
  m.sampler = parse_sampler(d, file);
  const json& graphs = require(d, "graphs", "manifest");
  m.encoder = parse_graph(graphs, "encoder", m.root);
  m.decoder = parse_graph(graphs, "decoder", m.root);
}

}  // namespace

Manifest read_manifest(const fs::path& root, bool verify) {
  const fs::path file = root / kName;
  Manifest m;
  m.root = root;
  m.data = parse_manifest_file(root);
  check_format(m.data, root);
  try {
    check_paths(m.data, file);
    m.class_names = read_class_names(m.data, file);
    m.per_token_group = read_per_token_group(m.data, file);
  } catch (const json::exception& e) {
    throw Error(file.string() + " has a value of the wrong type (" + e.what() + "); rebuild the folder");
  }
  try {
    if (verify) verify_files(m.data, root);
    parse_values(m, file);
  } catch (const json::exception& e) {
    throw Error(file.string() + " has a value of the wrong type (" + e.what() + "); rebuild the folder");
  }
  check_roles(m);
  return m;
}

}  // namespace ddt::detail
