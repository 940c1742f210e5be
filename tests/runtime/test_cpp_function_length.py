"""No C++ function in runtime/ longer than 60 lines (runtime/src, runtime/tools, runtime/include;
not third_party, not the tests).

A simple scan, no compiler: comments, string and character literals (raw strings too) and
preprocessor lines are blanked, then braces are matched. A `{` at namespace or class scope whose
header (the text since the previous `;`, `{` or `}`) has a parameter list and no `=` outside it
opens a function body; its length runs from the header's first line to the closing `}`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = [ROOT / "runtime" / d for d in ("src", "tools", "include")]
MAX_LINES = 60


def blank_non_code(text: str) -> str:
    """Comments, literals and preprocessor lines replaced by spaces (newlines kept, so line numbers hold)."""
    out = []
    i, n = 0, len(text)
    at_line_start = True
    while i < n:
        c = text[i]
        if at_line_start and c == "#":  # a directive, with its continuation lines
            j = i
            while j < n and not (text[j] == "\n" and text[j - 1] != "\\"):
                j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        if c == "\n":
            at_line_start = True
            out.append(c)
            i += 1
            continue
        if not c.isspace():
            at_line_start = False
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif c == "R" and text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            delim = text[i + 2:text.index("(", i)]
            j = text.index(")" + delim + '"', i) + len(delim) + 2
        elif c in "\"'" and not (c == "'" and i > 0 and text[i - 1].isalnum()):  # 1'000 digit separators are not literals
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            j += 1
        else:
            out.append(c)
            i += 1
            continue
        out.append(re.sub(r"[^\n]", " ", text[i:j]))
        i = j
    return "".join(out)


def is_function_header(header: str) -> bool:
    h = re.sub(r"\s+", " ", header).strip()
    h = re.sub(r"^template ?<.*?> ?", "", h)
    if not h or "(" not in h or re.match(r"(namespace|class|struct|union|enum|extern)\b", h):
        return False
    depth, outside = 0, []
    for ch in re.sub(r"\boperator ?(==|!=|<=|>=|=|\(\)|\[\]|[-+*/<>!]=?)", "operator", h):
        depth += ch == "("
        if depth == 0:
            outside.append(ch)
        depth -= ch == ")"
    return "=" not in "".join(outside)


def functions(path: Path) -> list[tuple[str, int, int]]:
    """(header, first line, line count) of every function body defined at namespace or class scope."""
    code = blank_non_code(path.read_text())
    found, stack = [], []  # stack: ("scope" | "function" | "block", header start offset)
    start = 0  # where the current header begins
    parens = 0
    for i, ch in enumerate(code):
        parens += (ch == "(") - (ch == ")")
        if ch in ";}":
            if ch == "}" and stack:
                kind, begun = stack.pop()
                if kind == "argument":  # `f(x = {})`, `int64_t{1}` in a parameter list: still the same header
                    continue
                if kind == "function":
                    first = code.count("\n", 0, begun) + 1
                    header = " ".join(code[begun:code.index("{", begun)].split())
                    found.append((header, first, code.count("\n", 0, i) + 2 - first))
            start = i + 1
        elif ch == "{":
            if parens > 0:
                stack.append(("argument", i))
                continue
            if stack and stack[-1][0] != "scope":
                stack.append(("block", i))
            else:
                header = code[start:i]
                access = re.match(r"\s*((public|private|protected)\s*:(?!:)\s*)*", header)
                begun = start + access.end()
                header = header[access.end():]
                stack.append(("function" if is_function_header(header) else "scope", begun))
            start = i + 1
    return found


def sources() -> list[Path]:
    files = []
    for folder in SCANNED:
        files += sorted(p for p in folder.rglob("*") if p.suffix in (".cpp", ".h", ".hpp", ".cc")
                        and "third_party" not in p.parts and "tests" not in p.relative_to(ROOT / "runtime").parts)
    return files


def test_the_scan_finds_functions():
    """The scanner itself, on a sample: free functions, methods, constructors with initialiser lists, not namespaces/classes."""
    sample = ROOT / "runtime" / "src" / "pipeline.cpp"
    names = [h for h, _, _ in functions(sample)]
    assert any("Pipeline::generate" in h for h in names)
    assert any(h.startswith("TimedRunner(") for h in names)  # a constructor with an initialiser list
    assert any("check_labels" in h for h in names)  # a method inside a struct
    assert not any(h.startswith(("namespace", "struct", "class")) for h in names)
    assert len(sources()) >= 20


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT / "runtime")))
def test_no_function_over_60_lines(path):
    long = [f"{path.relative_to(ROOT)}:{line}: {lines} lines: {header[:80]}" for header, line, lines in functions(path)
            if lines > MAX_LINES]
    assert not long, "split these into named steps:\n" + "\n".join(long)
