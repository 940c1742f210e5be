// Text as the Python side writes it (text.h).

#include "text.h"

#include <cmath>
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

std::string g_text(double v, int digits) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

}  // namespace ddt::detail
