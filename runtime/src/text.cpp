// Text as the Python side writes it (text.h).

#include "text.h"

#include "ddt/runtime.h"

#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <cstdio>
#include <utility>

namespace ddt::detail {

namespace {

/// Code points Python's str.isprintable() calls unprintable (so repr escapes them) among the ones a
/// pasted argument may carry: C1 controls, spaces other than ' ', format characters (zero-width
/// ones, bidi marks, BOM), line and paragraph separators, private use, language tags (Unicode 15;
/// unassigned code points, also escaped by Python, are printed as they are).
bool unprintable(uint32_t c) {
  static const uint32_t kRanges[][2] = {
      {0x80, 0xa0},       {0xad, 0xad},       {0x600, 0x605},     {0x61c, 0x61c},     {0x6dd, 0x6dd},
      {0x70f, 0x70f},     {0x890, 0x891},     {0x8e2, 0x8e2},     {0x1680, 0x1680},   {0x180e, 0x180e},
      {0x2000, 0x200f},   {0x2028, 0x202f},   {0x205f, 0x2064},   {0x2066, 0x206f},   {0x3000, 0x3000},
      {0xd800, 0xf8ff},   {0xfeff, 0xfeff},   {0xfff9, 0xfffb},   {0x110bd, 0x110bd}, {0x110cd, 0x110cd},
      {0x13430, 0x13438}, {0x1bca0, 0x1bca3}, {0x1d173, 0x1d17a}, {0xe0001, 0xe007f}, {0xf0000, 0x10ffff}};
  for (const auto& r : kRanges) {
    if (c >= r[0] && c <= r[1]) return true;
  }
  return false;
}

/// The code point of the UTF-8 sequence at s[i] and its length; length 0 for a byte that starts none.
std::pair<uint32_t, size_t> decode(const std::string& s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char lead = b(i);
  const size_t len = lead < 0x80 ? 1 : (lead >> 5) == 6 ? 2 : (lead >> 4) == 14 ? 3 : (lead >> 3) == 30 ? 4 : 0;
  if (len == 0 || i + len > s.size()) return {lead, 0};
  uint32_t c = len == 1 ? lead : lead & (0x7f >> len);
  for (size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xc0) != 0x80) return {lead, 0};
    c = (c << 6) | (b(i + k) & 0x3f);
  }
  static const uint32_t kLeast[] = {0, 0, 0x80, 0x800, 0x10000};  // overlong forms are not UTF-8
  if (c < kLeast[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return {lead, 0};
  return {c, len};
}

/// \xNN, \uNNNN or \UNNNNNNNN, as Python escapes a code point.
std::string escaped(uint32_t c) {
  char buf[16];
  std::snprintf(buf, sizeof buf, c < 0x100 ? "\\x%02x" : c < 0x10000 ? "\\u%04x" : "\\U%08x", c);
  return buf;
}

}  // namespace

std::string string_repr(const std::string& s) {
  const char quote = s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
  std::string out(1, quote);
  for (size_t i = 0; i < s.size();) {
    const auto [c, len] = decode(s, i);
    if (len == 0) {  // not UTF-8: Python reads such an argument's byte as a lone surrogate (surrogateescape)
      out += escaped(0xdc00 + c);
    } else if (c == '\\' || c == static_cast<uint32_t>(quote)) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n' || c == '\r' || c == '\t') {
      out += c == '\n' ? "\\n" : c == '\r' ? "\\r" : "\\t";
    } else if (c < 0x20 || c == 0x7f || unprintable(c)) {
      out += escaped(c);
    } else {
      out += s.substr(i, len);
    }
    i += len == 0 ? 1 : len;
  }
  return out + quote;
}

std::vector<uint32_t> code_points(const std::string& s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto [c, len] = decode(s, i);
    out.push_back(len == 0 ? 0xdc00 + c : c);
    i += len == 0 ? 1 : len;
  }
  return out;
}

std::string first_code_points(const std::string& s, size_t n) {
  size_t i = 0;
  for (size_t k = 0; k < n && i < s.size(); ++k) {
    const size_t len = decode(s, i).second;
    i += len == 0 ? 1 : len;
  }
  return s.substr(0, i);
}

std::string g_text(double v, int digits) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

std::string float_repr(double v) {
  if (v == 0) return std::signbit(v) ? "-0.0" : "0.0";
  char buf[40];
  for (int digits = 1; digits <= 17; ++digits) {  // the shortest correctly rounded digits that read back
    std::snprintf(buf, sizeof buf, "%.*e", digits - 1, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string text = buf;
  const std::string sign = text[0] == '-' ? "-" : "";
  if (!sign.empty()) text.erase(0, 1);
  const size_t e = text.find('e');
  const int exp = std::atoi(text.c_str() + e + 1);
  std::string digits = text.substr(0, 1) + (e > 1 ? text.substr(2, e - 2) : "");
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  if (exp < -4 || exp >= 16) {
    const std::string mantissa = digits.substr(0, 1) + (digits.size() > 1 ? "." + digits.substr(1) : "");
    return sign + mantissa + (exp < 0 ? "e-" : "e+") + (std::abs(exp) < 10 ? "0" : "") + std::to_string(std::abs(exp));
  }
  if (exp < 0) return sign + "0." + std::string(-exp - 1, '0') + digits;
  const size_t whole = static_cast<size_t>(exp) + 1;
  if (digits.size() <= whole) return sign + digits + std::string(whole - digits.size(), '0') + ".0";
  return sign + digits.substr(0, whole) + "." + digits.substr(whole);
}

namespace {

std::string json_string(const std::string& s) {
  std::string out = "\"";
  char buf[16];
  for (size_t i = 0; i < s.size();) {
    const auto [c, len] = decode(s, i);
    i += len == 0 ? 1 : len;
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f') {
      out += c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : c == '\b' ? "\\b" : "\\f";
    } else if (c >= 0x20 && c <= 0x7e) {
      out += static_cast<char>(c);
    } else if (c < 0x10000) {
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {  // a surrogate pair
      std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xd800 + ((c - 0x10000) >> 10), 0xdc00 + ((c - 0x10000) & 0x3ff));
      out += buf;
    }
  }
  return out + "\"";
}

void dump(const nlohmann::json& j, int depth, std::string& out) {
  if (depth < 0) throw Error("the manifest is nested too deeply to be a ddt-export manifest; rebuild the folder");
  if (j.is_object()) {  // nlohmann keeps keys in byte order, which for UTF-8 is Python's code point order
    out += '{';
    for (auto it = j.begin(); it != j.end(); ++it) {
      out += (it == j.begin() ? "" : ",") + json_string(it.key()) + ":";
      dump(it.value(), depth - 1, out);
    }
    out += '}';
  } else if (j.is_array()) {
    out += '[';
    for (size_t k = 0; k < j.size(); ++k) {
      if (k) out += ',';
      dump(j[k], depth - 1, out);
    }
    out += ']';
  } else if (j.is_string()) {
    out += json_string(j.get_ref<const std::string&>());
  } else if (j.is_number_float()) {
    out += float_repr(j.get<double>());
  } else {
    out += j.dump();  // integers, true, false, null: the same text in both
  }
}

}  // namespace

std::string python_json(const nlohmann::json& data, int max_depth) {
  std::string out;
  dump(data, max_depth, out);
  return out;
}

}  // namespace ddt::detail
