// Class names: what a build calls its classes, and how a label a person writes becomes a class id.
// ddt_export/class_names.py line for line (its docstring holds the rules N1-N2, L1-L3, A1 and R1-R6 that both
// runtimes implement, and the messages); tests/runtime/test_cpp_class_names.py holds the two to the same
// answers and the same one-line messages.

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <optional>

#include "ddt/runtime.h"
#include "text.h"

namespace ddt {

namespace {

const char* kWhitespace = " \t\n\v\f\r";  // class_names.WHITESPACE: ASCII whitespace, what str.strip() takes
constexpr size_t kMaxChars = 200;         // class_names.MAX_CHARS: code points in one synonym

std::string trimmed(const std::string& s) {
  const size_t a = s.find_first_not_of(kWhitespace);
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(kWhitespace) - a + 1);
}

/// R4: trim ASCII whitespace, then A-Z -> a-z (nothing else changes).
std::string fold(const std::string& s) {
  std::string out = trimmed(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

/// labels.WHOLE, `-?[0-9]+` in ASCII (any length): an entry that is always an id, never a name.
bool is_id(const std::string& entry) {
  const size_t start = !entry.empty() && entry[0] == '-' ? 1 : 0;
  return entry.size() > start && entry.find_first_not_of("0123456789", start) == std::string::npos;
}

/// Python's text.split(sep): every piece, empty ones included.
std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> pieces;
  for (size_t start = 0;;) {
    const size_t at = text.find(sep, start);
    pieces.push_back(text.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return pieces;
    start = at + 1;
  }
}

/// N1: a line's synonyms, trimmed, display name first.
std::vector<std::string> synonyms_of(const std::string& line) {
  std::vector<std::string> out = split(line, ',');
  for (std::string& s : out) s = trimmed(s);
  return out;
}

size_t length(const std::string& s) { return detail::code_points(s).size(); }  // Python's len()

/// N2: why a synonym cannot be a name, or nothing.
std::optional<std::string> synonym_problem(const std::string& s) {
  if (s.empty()) return "has an empty name (two commas in a row, a trailing comma, or an empty line)";
  if (length(s) > kMaxChars) {
    return "has a name of " + std::to_string(length(s)) + " characters; at most " + std::to_string(kMaxChars);
  }
  if (s.find(';') != std::string::npos) {
    return "has a ';' in a name; ';' separates labels on the command line, so names never contain it";
  }
  for (unsigned char c : s) {  // code points 0-31 and 127: single bytes in UTF-8, never inside another's sequence
    if (c < 0x20 || c == 0x7f) return "has a control character in a name";
  }
  if (is_id(s)) return "has the name " + detail::string_repr(s) + ", which reads as a class id; use a word (e.g. 'seven' for 7)";
  return std::nullopt;
}

/// Edit distance over code points (insert, delete, substitute: 1 each).
size_t levenshtein(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  std::iota(prev.begin(), prev.end(), size_t{0});
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

/// R1, R2-R6: the id `name` names, as whole() writes it.
std::string resolve_name(const std::string& name, const ClassNames* names, const std::string& what) {
  if (names == nullptr) {  // worded as the id grammar's own message, which is all such a build takes
    throw Error(what + " must be comma-separated whole numbers of ASCII digits, e.g. 1,7 (got " + detail::string_repr(name) +
                "); this build has no class names, rebuild it with `ddt-export build --class-names FILE` to use names");
  }
  return std::to_string(names->lookup(name, what));
}

}  // namespace

std::vector<std::string> check_class_names(const std::vector<std::string>& lines, int64_t num_classes, const std::string& where) {
  if (static_cast<int64_t>(lines.size()) != num_classes) {
    throw Error(where + " has " + std::to_string(lines.size()) + " names but the model has " + std::to_string(num_classes) +
                " classes; give exactly one line per class, 0 to " + std::to_string(num_classes - 1) + " (the null class has none)");
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string joined;
    for (const std::string& s : synonyms_of(lines[i])) {
      if (const std::optional<std::string> problem = synonym_problem(s)) {
        throw Error(where + ": class " + std::to_string(i) + " (" + detail::string_repr(detail::first_code_points(lines[i], 60)) +
                    ") " + *problem);
      }
      joined += (joined.empty() ? "" : ", ") + s;
    }
    out.push_back(joined);
  }
  return out;
}

ClassNames::ClassNames(std::vector<std::string> lines) : lines_(std::move(lines)) {
  for (int64_t i = 0; i < size(); ++i) {
    synonyms_.push_back(synonyms_of(lines_[i]));
    for (const std::string& s : synonyms_.back()) {
      std::vector<int64_t>& ids = index_[fold(s)];
      if (std::find(ids.begin(), ids.end(), i) == ids.end()) ids.push_back(i);
    }
  }
}

int64_t ClassNames::lookup(const std::string& raw, const std::string& what) const {
  const std::string name = trimmed(raw);
  if (name.find_first_of(",;") != std::string::npos) {
    throw Error(what + ": \"" + name + "\" is not one class name; separate labels with ';' when any is a name, e.g. \"tabby;7\"");
  }
  if (length(name) > kMaxChars) {
    throw Error(what + ": a class name is at most " + std::to_string(kMaxChars) + " characters (got " + std::to_string(length(name)) +
                " in \"" + detail::first_code_points(name, 40) + "...\")");
  }
  const auto found = index_.find(fold(name));
  if (found != index_.end() && found->second.size() == 1) return found->second.front();
  if (found != index_.end()) {
    std::vector<int64_t> ids = found->second;
    std::sort(ids.begin(), ids.end());
    std::string listed;
    for (int64_t i : ids) listed += (listed.empty() ? "" : ", ") + std::to_string(i) + " (" + display(i) + ")";
    throw Error(what + ": \"" + name + "\" names " + std::to_string(ids.size()) + " classes: " + listed + "; give the id instead");
  }
  std::string near;
  for (int64_t i : closest(name)) near += (near.empty() ? "" : ", ") + display(i) + " (" + std::to_string(i) + ")";
  throw Error(what + ": no class is named \"" + name + "\"; closest: " + near);
}

std::vector<int64_t> ClassNames::closest(const std::string& name, size_t k) const {
  const std::vector<uint32_t> q = detail::code_points(fold(name));
  std::vector<size_t> dist;
  for (const std::vector<std::string>& ss : synonyms_) {
    size_t d = SIZE_MAX;
    for (const std::string& s : ss) d = std::min(d, levenshtein(q, detail::code_points(fold(s))));
    dist.push_back(d);
  }
  std::vector<int64_t> ids(lines_.size());
  std::iota(ids.begin(), ids.end(), int64_t{0});
  std::stable_sort(ids.begin(), ids.end(), [&](int64_t a, int64_t b) { return dist[a] < dist[b]; });  // ties: lower id first
  ids.resize(std::min(k, ids.size()));
  return ids;
}

LabelEntry label_entry(const std::string& text, const std::string& what) {
  const std::string e = trimmed(text);
  return is_id(e) ? LabelEntry{true, whole(e, what, "7")} : LabelEntry{false, e};
}

std::vector<LabelEntry> split_labels(const std::string& text, const std::string& what) {
  if (trimmed(text).empty()) return {};  // L1
  const std::vector<std::string> pieces = split(text, ',');
  const bool ids_only = std::all_of(pieces.begin(), pieces.end(), [](const std::string& p) { return trimmed(p).empty() || is_id(trimmed(p)); });
  std::vector<LabelEntry> out;
  if (text.find(';') == std::string::npos && ids_only) {  // L2: the id list, exactly as before names
    for (const std::string& n : whole_list(text, what, "1,7")) out.push_back({true, n});
    return out;
  }
  const std::vector<std::string> entries = split(text, ';');  // L3
  for (const std::string& e : entries) {
    if (trimmed(e).empty()) {
      throw Error(what + " has an empty entry (got " + detail::string_repr(text) + "); separate labels with ';', e.g. \"tabby;7\"");
    }
  }
  for (const std::string& e : entries) out.push_back(label_entry(e, what));
  return out;
}

std::vector<std::string> resolve_labels(const std::vector<LabelEntry>& entries, const ClassNames* names, const std::string& what) {
  std::vector<std::string> ids;
  for (const LabelEntry& e : entries) ids.push_back(e.is_id ? e.text : resolve_name(e.text, names, what));
  return ids;
}

}  // namespace ddt
