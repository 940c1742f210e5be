// Text as the Python side writes it, so that the two runtimes' messages read the same.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ddt::detail {

/// A string (UTF-8, as an argument Python reads) as Python's repr prints it: in single quotes, or
/// double quotes when it holds a single quote and no double quote; backslashes, the quote, control
/// characters and the unprintable code points text.cpp lists escaped, printable text as it is; a
/// byte that is not UTF-8 as Python's surrogateescape shows it (\udcNN).
std::string string_repr(const std::string& s);

/// The code points of `s` as Python's str of it holds them: UTF-8 decoded, a byte that is not UTF-8 as the
/// lone surrogate surrogateescape reads it as (U+DC80..U+DCFF), so len() and slices count as Python's do.
std::vector<uint32_t> code_points(const std::string& s);

/// The first `n` code points of `s` (as code_points counts them), as bytes: Python's s[:n].
std::string first_code_points(const std::string& s, size_t n);

/// A number as Python's f"{v:.{digits}g}" (and printf's %g) writes it: 1e+30, 3.4e+38, 0.25.
std::string g_text(double v, int digits = 6);

/// A double as Python's repr (and json.dumps) writes it: the shortest digits that read back as
/// the same value, fixed notation for exponents -4..15 ("100.0", "0.0001"), else "1e+16", "1.5e-07".
std::string float_repr(double v);

/// `data` as Python's json.dumps(data, sort_keys=True, separators=(",", ":")) writes it (ensure_ascii:
/// every code point outside ' '..'~' as \uXXXX, lowercase, surrogate pairs past U+FFFF), the text
/// ddt_export/manifest.py's digest hashes. An Error past `max_depth` levels of nesting (Python's
/// json.loads refuses those too).
std::string python_json(const nlohmann::json& data, int max_depth = 500);

}  // namespace ddt::detail
