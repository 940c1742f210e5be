// The one grammar of decimal numbers on the command line (mirrors ddt_export/decimals.py;
// tests/runtime/test_cpp_decimals.py holds both sides to the same values and messages).

#include <cmath>
#include <cstdlib>

#include "ddt/runtime.h"
#include "text.h"

namespace ddt {

namespace {

std::string stripped(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t") - a + 1);
}

/// decimals.DECIMAL: `-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?`, ASCII, the whole entry.
bool is_decimal(const std::string& s) {
  size_t i = !s.empty() && s[0] == '-' ? 1 : 0;
  const auto digits = [&s, &i]() {
    const size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i - start;
  };
  const size_t whole = digits();
  const size_t fraction = i < s.size() && s[i] == '.' ? (++i, digits()) : 0;
  if (whole == 0 && fraction == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  return i == s.size();
}

/// decimals.NON_FINITE: float()'s spellings of inf and nan, `[-+]?(?:inf|infinity|nan)`, any ASCII case.
bool is_non_finite(const std::string& s) {
  std::string word = !s.empty() && (s[0] == '-' || s[0] == '+') ? s.substr(1) : s;
  for (char& c : word) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return word == "inf" || word == "infinity" || word == "nan";
}

}  // namespace

double decimal(const std::string& text, const std::string& what, const std::string& example) {
  const std::string entry = stripped(text);
  const std::string got = detail::string_repr(text);
  if (is_non_finite(entry)) throw Error(what + " must be a finite number (got " + got + ")");
  if (!is_decimal(entry)) throw Error(what + " must be a decimal number of ASCII digits, e.g. " + example + " (got " + got + ")");
  const double v = std::strtod(entry.c_str(), nullptr);  // correctly rounded as float(); an underflow is 0 or subnormal, as there
  if (!std::isfinite(v)) throw Error(what + " must be a finite number (got " + got + ")");  // past float64 (1e400)
  return v;
}

}  // namespace ddt
