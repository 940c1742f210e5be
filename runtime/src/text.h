// Text as the Python side writes it, so that the two runtimes' messages read the same.
#pragma once

#include <string>

namespace ddt::detail {

/// A string (UTF-8, as an argument Python reads) as Python's repr prints it: in single quotes, or
/// double quotes when it holds a single quote and no double quote; backslashes, the quote, control
/// characters and the unprintable code points text.cpp lists escaped, printable text as it is; a
/// byte that is not UTF-8 as Python's surrogateescape shows it (\udcNN).
std::string string_repr(const std::string& s);

/// A number as Python's f"{v:.{digits}g}" (and printf's %g) writes it: 1e+30, 3.4e+38, 0.25.
std::string g_text(double v, int digits = 6);

}  // namespace ddt::detail
