// The one integer grammar of class labels, step lists and seeds (mirrors ddt_export/labels.py;
// tests/runtime/test_cpp_labels.py holds both sides to the same answers and messages).

#include <cerrno>
#include <cstdlib>

#include "ddt/runtime.h"
#include "text.h"

namespace ddt {

namespace {

constexpr size_t kMaxDigits = 40;  // labels.MAX_DIGITS: a 10,000-digit number is not read
const char* kMaxSeed = "18446744073709551615";  // 2^64 - 1

std::string stripped(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t") - a + 1);
}

/// `-?[0-9]+` in ASCII, at most kMaxDigits characters (the minus counted, as len() in Python).
bool is_whole(const std::string& entry) {
  const size_t start = !entry.empty() && entry[0] == '-' ? 1 : 0;
  return entry.size() > start && entry.size() <= kMaxDigits && entry.find_first_not_of("0123456789", start) == std::string::npos;
}

/// As Python's str(int(entry)): no leading zeros, "-0" is "0".
std::string canonical(const std::string& entry) {
  const bool negative = entry[0] == '-';
  const size_t first = entry.find_first_not_of('0', negative ? 1 : 0);
  if (first == std::string::npos) return "0";
  return (negative ? "-" : "") + entry.substr(first);
}

}  // namespace

std::string whole(const std::string& text, const std::string& what, const std::string& example) {
  const std::string entry = stripped(text);
  if (!is_whole(entry)) {
    throw Error(what + " must be a whole number of ASCII digits, e.g. " + example + " (got " + detail::string_repr(text) + ")");
  }
  return canonical(entry);
}

std::vector<std::string> whole_list(const std::string& text, const std::string& what, const std::string& example) {
  if (stripped(text).empty()) return {};
  std::vector<std::string> entries;
  for (size_t start = 0;;) {
    const size_t comma = text.find(',', start);
    entries.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  const std::string got = detail::string_repr(text);
  for (const std::string& e : entries) {
    if (stripped(e).empty()) {
      throw Error(what + " has an empty entry (got " + got + "); give comma-separated whole numbers, e.g. " + example);
    }
  }
  for (std::string& e : entries) {
    if (!is_whole(stripped(e))) {
      throw Error(what + " must be comma-separated whole numbers of ASCII digits, e.g. " + example + " (got " + got + ")");
    }
    e = canonical(stripped(e));
  }
  return entries;
}

std::optional<int64_t> to_int64(const std::string& number) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(number.c_str(), &end, 10);
  if (errno == ERANGE || number.empty() || *end != '\0') return std::nullopt;
  return v;
}

uint64_t check_seed(const std::string& text, const std::string& what) {
  const std::string n = whole(text, what, "0");
  const std::string most = kMaxSeed;
  if (n[0] == '-' || n.size() > most.size() || (n.size() == most.size() && n > most)) {
    throw Error(what + " must be a whole number from 0 to 2^64 - 1 = " + most + " (got " + n + ")");
  }
  return std::strtoull(n.c_str(), nullptr, 10);
}

}  // namespace ddt
