// A JSON Schema validator for the subset pydantic v2 emits (test code: the C++ tests check real
// manifests against ddt_export/manifest.schema.json with it; the library does not use it).
//
// Validation keywords: "type" (a name or a list), "enum", "const", "minimum", "maximum",
// "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern" (std::regex,
// ECMAScript, searched as JSON Schema says), "minItems", "maxItems", "items", "prefixItems",
// "properties", "required", "additionalProperties" (bool or schema), "$ref" (a JSON pointer into
// this document, e.g. "#/$defs/Settings") and "anyOf". Annotations ("title", "description",
// "default", "$id", "examples", ...) are ignored. A validation keyword outside the subset
// ("oneOf", "allOf", "propertyNames", ...) throws instead of being ignored, so a schema that
// grows a constraint this validator cannot check fails loudly rather than passing everything.
//
// "integer" is any number with no fractional part (3 and 3.0 alike), as JSON Schema defines it.
// Errors are "PATH: problem" with PATH as Python prints it (model.num_classes,
// graphs.encoder.inputs[1].dtype; "(root)" for the document itself).
#pragma once

#include <algorithm>
#include <cmath>
#include <fstream>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ddt_test {

class SchemaValidator {
 public:
  explicit SchemaValidator(nlohmann::json schema) : root_(std::move(schema)) {}

  static SchemaValidator from_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read the schema " + path);
    return SchemaValidator(nlohmann::json::parse(in));
  }

  const nlohmann::json& schema() const { return root_; }

  /// Every problem of `doc` against the schema, "PATH: problem"; empty when it conforms.
  std::vector<std::string> errors(const nlohmann::json& doc) const {
    std::vector<std::string> out;
    check(root_, doc, "", out);
    return out;
  }

  enum class Declared { Required, Optional, Undeclared };

  /// How the schema declares the key at `path`: segments joined by '.', "*" for any key of a
  /// mapping (additionalProperties), a "[]" suffix for an array's items ("graphs.*.inputs[].name").
  /// Required: listed in "required" of its object; Optional: a property, not required.
  Declared declared(const std::string& path) const {
    const nlohmann::json* s = &root_;
    Declared result = Declared::Required;
    size_t begin = 0;
    while (begin <= path.size()) {
      const size_t dot = std::min(path.find('.', begin), path.size());
      std::string name = path.substr(begin, dot - begin);
      begin = dot + 1;
      size_t arrays = 0;
      while (name.size() > 2 && name.compare(name.size() - 2, 2, "[]") == 0) name.resize(name.size() - 2), ++arrays;
      s = object_branch(*s);
      if (s == nullptr) return Declared::Undeclared;
      if (name == "*") {
        if (!s->contains("additionalProperties") || !s->at("additionalProperties").is_object()) return Declared::Undeclared;
        s = &s->at("additionalProperties");
        result = Declared::Optional;
      } else {
        if (!s->contains("properties") || !s->at("properties").contains(name)) return Declared::Undeclared;
        const nlohmann::json required = s->value("required", nlohmann::json::array());
        result = std::find(required.begin(), required.end(), name) != required.end() ? Declared::Required : Declared::Optional;
        s = &s->at("properties").at(name);
      }
      for (; arrays > 0; --arrays) {
        s = object_branch(*s, "array");
        if (s == nullptr || !s->contains("items")) return Declared::Undeclared;
        s = &s->at("items");
      }
    }
    return result;
  }

 private:
  nlohmann::json root_;

  static std::string child(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }
  static std::string shown(const std::string& path) { return path.empty() ? "(root)" : path; }

  const nlohmann::json& ref(const std::string& pointer) const {
    if (pointer.rfind("#", 0) != 0) throw std::runtime_error("schema $ref " + pointer + " is not into this document");
    const nlohmann::json::json_pointer p(pointer.substr(1));
    if (!root_.contains(p)) throw std::runtime_error("schema $ref " + pointer + " points at nothing");
    return root_.at(p);
  }

  /// `s` with its $ref followed, and of an anyOf the one branch that is not null (Optional[X]).
  const nlohmann::json* object_branch(const nlohmann::json& s, const char* type = "object") const {
    const nlohmann::json* at = &s;
    while (at->is_object() && at->contains("$ref")) at = &ref(at->at("$ref").get<std::string>());
    if (at->is_object() && at->contains("anyOf")) {
      for (const nlohmann::json& branch : at->at("anyOf")) {
        if (const nlohmann::json* b = object_branch(branch, type)) return b;  // not the {"type": "null"} branch
      }
      return nullptr;
    }
    if (!at->is_object()) return nullptr;
    const nlohmann::json kind = at->value("type", nlohmann::json(type));
    const bool fits = kind.is_array() ? std::find(kind.begin(), kind.end(), type) != kind.end() : kind == type;
    return fits ? at : nullptr;
  }

  static bool has_type(const nlohmann::json& v, const std::string& type) {
    if (type == "null") return v.is_null();
    if (type == "boolean") return v.is_boolean();
    if (type == "object") return v.is_object();
    if (type == "array") return v.is_array();
    if (type == "string") return v.is_string();
    if (type == "number") return v.is_number();
    if (type == "integer") {
      return v.is_number_integer() || (v.is_number_float() && std::isfinite(v.get<double>()) && std::trunc(v.get<double>()) == v.get<double>());
    }
    throw std::runtime_error("schema type '" + type + "' is not a JSON Schema type");
  }

  static std::string type_name(const nlohmann::json& v) {
    if (v.is_number_integer()) return "integer";
    if (v.is_number_float()) return "number";
    return v.type_name();  // null, boolean, string, array, object
  }

  static std::string excerpt(const nlohmann::json& v) {
    const std::string text = v.dump();
    return text.size() <= 40 ? text : text.substr(0, 37) + "...";
  }

  void check(const nlohmann::json& s, const nlohmann::json& v, const std::string& path, std::vector<std::string>& out) const {
    if (s.is_boolean()) {
      if (!s.get<bool>()) out.push_back(shown(path) + ": no value is allowed here");
      return;
    }
    if (!s.is_object()) throw std::runtime_error("a schema must be an object or a boolean, got " + excerpt(s));
    refuse_unsupported(s);
    if (s.contains("$ref")) check(ref(s.at("$ref").get<std::string>()), v, path, out);
    if (s.contains("anyOf")) check_any_of(s.at("anyOf"), v, path, out);
    if (s.contains("type") && !check_type(s.at("type"), v, path, out)) return;  // the rest would only repeat it
    if (s.contains("enum") && std::find(s.at("enum").begin(), s.at("enum").end(), v) == s.at("enum").end()) {
      out.push_back(shown(path) + ": " + excerpt(v) + " is not one of " + excerpt(s.at("enum")));
    }
    if (s.contains("const") && v != s.at("const")) {
      out.push_back(shown(path) + ": must be " + s.at("const").dump() + ", got " + excerpt(v));
    }
    if (v.is_number()) check_number(s, v, path, out);
    if (v.is_string()) check_string(s, v.get<std::string>(), path, out);
    if (v.is_array()) check_array(s, v, path, out);
    if (v.is_object()) check_object(s, v, path, out);
  }

  static void refuse_unsupported(const nlohmann::json& s) {
    static const std::set<std::string> unsupported = {
        "allOf",         "oneOf",          "not",           "if",         "then",         "else",
        "multipleOf",    "uniqueItems",    "contains",      "minContains", "maxContains", "patternProperties",
        "propertyNames", "minProperties",  "maxProperties", "dependentRequired", "dependentSchemas",
        "unevaluatedItems", "unevaluatedProperties", "$dynamicRef", "additionalItems"};
    for (const auto& [key, value] : s.items()) {
      if (unsupported.count(key)) throw std::runtime_error("schema keyword '" + key + "' is not supported by this validator");
    }
  }

  bool check_type(const nlohmann::json& type, const nlohmann::json& v, const std::string& path, std::vector<std::string>& out) const {
    const std::vector<std::string> types = type.is_array() ? type.get<std::vector<std::string>>()
                                                           : std::vector<std::string>{type.get<std::string>()};
    for (const std::string& t : types) {
      if (has_type(v, t)) return true;
    }
    out.push_back(shown(path) + ": expected " + type.dump() + ", got " + type_name(v) + " " + excerpt(v));
    return false;
  }

  void check_any_of(const nlohmann::json& branches, const nlohmann::json& v, const std::string& path,
                    std::vector<std::string>& out) const {
    std::string why;
    for (const nlohmann::json& branch : branches) {
      std::vector<std::string> errs;
      check(branch, v, path, errs);
      if (errs.empty()) return;
      why += (why.empty() ? "" : "; ") + errs.front();
    }
    out.push_back(shown(path) + ": matches none of the " + std::to_string(branches.size()) + " alternatives (" + why + ")");
  }

  static void check_number(const nlohmann::json& s, const nlohmann::json& v, const std::string& path, std::vector<std::string>& out) {
    const double x = v.get<double>();
    const auto bound = [&](const char* key, bool ok, const char* rule) {
      if (s.contains(key) && !ok) out.push_back(shown(path) + ": " + v.dump() + " " + rule + " " + s.at(key).dump());
    };
    bound("minimum", !s.contains("minimum") || x >= s.at("minimum").get<double>(), "is below the minimum");
    bound("maximum", !s.contains("maximum") || x <= s.at("maximum").get<double>(), "is above the maximum");
    bound("exclusiveMinimum", !s.contains("exclusiveMinimum") || x > s.at("exclusiveMinimum").get<double>(),
          "is not above the exclusive minimum");
    bound("exclusiveMaximum", !s.contains("exclusiveMaximum") || x < s.at("exclusiveMaximum").get<double>(),
          "is not below the exclusive maximum");
  }

  static size_t code_points(const std::string& text) {
    size_t n = 0;
    for (unsigned char c : text) n += (c & 0xC0) != 0x80;  // UTF-8: count every byte that starts a character
    return n;
  }

  static void check_string(const nlohmann::json& s, const std::string& text, const std::string& path,
                           std::vector<std::string>& out) {
    const size_t n = code_points(text);
    if (s.contains("minLength") && n < s.at("minLength").get<size_t>()) {
      out.push_back(shown(path) + ": shorter than " + s.at("minLength").dump() + " characters");
    }
    if (s.contains("maxLength") && n > s.at("maxLength").get<size_t>()) {
      out.push_back(shown(path) + ": longer than " + s.at("maxLength").dump() + " characters");
    }
    if (s.contains("pattern") && !std::regex_search(text, std::regex(s.at("pattern").get<std::string>(), std::regex::ECMAScript))) {
      out.push_back(shown(path) + ": " + excerpt(text) + " does not match the pattern " + s.at("pattern").dump());
    }
  }

  void check_array(const nlohmann::json& s, const nlohmann::json& v, const std::string& path, std::vector<std::string>& out) const {
    if (s.contains("minItems") && v.size() < s.at("minItems").get<size_t>()) {
      out.push_back(shown(path) + ": " + std::to_string(v.size()) + " items, fewer than " + s.at("minItems").dump());
    }
    if (s.contains("maxItems") && v.size() > s.at("maxItems").get<size_t>()) {
      out.push_back(shown(path) + ": " + std::to_string(v.size()) + " items, more than " + s.at("maxItems").dump());
    }
    size_t first = 0;
    if (s.contains("prefixItems")) {
      for (; first < v.size() && first < s.at("prefixItems").size(); ++first) {
        check(s.at("prefixItems").at(first), v.at(first), path + "[" + std::to_string(first) + "]", out);
      }
    }
    if (s.contains("items")) {
      for (size_t i = first; i < v.size(); ++i) check(s.at("items"), v.at(i), path + "[" + std::to_string(i) + "]", out);
    }
  }

  void check_object(const nlohmann::json& s, const nlohmann::json& v, const std::string& path, std::vector<std::string>& out) const {
    for (const nlohmann::json& key : s.value("required", nlohmann::json::array())) {
      if (!v.contains(key.get<std::string>())) out.push_back(child(path, key.get<std::string>()) + ": required, but missing");
    }
    const nlohmann::json properties = s.value("properties", nlohmann::json::object());
    for (const auto& [key, value] : v.items()) {
      if (properties.contains(key)) {
        check(properties.at(key), value, child(path, key), out);
      } else if (s.contains("additionalProperties")) {
        const nlohmann::json& extra = s.at("additionalProperties");
        if (extra.is_boolean() && !extra.get<bool>()) {
          out.push_back(child(path, key) + ": not a known key, and no others are allowed here");
        } else {
          check(extra, value, child(path, key), out);
        }
      }
    }
  }
};

}  // namespace ddt_test
