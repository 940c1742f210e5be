"""Class names: what a build calls its classes, and how a label a person writes becomes a class id.

A build's manifest may carry `model.class_names`: a JSON list of strings, exactly one per class
0 .. num_classes-1 (the null class has no name), each "display name, synonym, synonym". A build
without the field (made before names existed, or of a model nobody named) takes ids only.
`ddt-run` reads the same field; the rules below are the contract both sides implement.

Names in a build (checked by `build` and on every read of the manifest)
  N1. A line is split at every ',' into synonyms; each synonym is trimmed of ASCII whitespace
      (space, \\t, \\n, \\v, \\f, \\r). The first synonym is the class's display name. The manifest
      stores each line re-joined with ", ".
  N2. Every synonym is 1 to 200 characters (Unicode code points), contains no ';' (the label
      separator) and no control character (code points 0-31 and 127), and is not in the integer
      grammar `-?[0-9]+` of labels.py (such an entry is always read as an id). Synonyms may repeat
      across classes ("crane" is a bird and a machine in ImageNet): such a name is ambiguous.

Labels on a command line (`--labels`, `--classes`)
  L1. Text that is empty after trimming is no labels.
  L2. Text without ';' whose ','-separated pieces, trimmed, are all empty or in the integer
      grammar is the id list of labels.py, read exactly as before names existed (`1,7`;
      `1,,2` is refused for its empty entry).
  L3. Otherwise the text is split at every ';' (no ';': the whole text is one entry); each entry is
      trimmed of ASCII whitespace; an empty entry is refused. An entry in the integer grammar is an
      id (at most 40 characters), anything else is a name.

Labels in the Python API (`Pipeline.label_ids`, `pipe([...])`, `label_ids` below)
  A1. An int (not a bool; numpy integers too) is an id; a str is one entry, read as in L3 (trimmed;
      integer grammar -> id, else a name). A single str or int stands for a list of one.

Resolving a name (ids pass through unchanged; their range is checked where labels are used)
  R1. The build has no names: refused ("... has no class names ...").
  R2. An entry containing ',' or ';' is refused: it is several names (separate labels with ';'; in the API,
      give one list element per label).
  R3. An entry longer than 200 code points is refused (no synonym is that long).
  R4. Matching is exact after folding both sides: fold = trim ASCII whitespace, then map A-Z to
      a-z (ASCII only; every other code point compares as itself, so "É" does not match "é").
      The entry names class c if it equals some folded synonym of c.
  R5. Exactly one class matches: its id. Several classes match: refused, listing every such id in
      ascending order with its display name. None: refused with the closest three classes (R6).
  R6. Closest: for each class c, d(c) = the smallest Levenshtein distance (insertions, deletions
      and substitutions of single Unicode code points, each costing 1) between the folded entry
      and c's folded synonyms. Classes are ordered by (d(c), c) ascending and the first three are
      shown (fewer if the build has fewer classes), as display names with their ids.

The one-line messages (`what` is the option, e.g. --labels; "<entry>" is the trimmed entry):
  unknown:   <what>: no class is named "<entry>"; closest: <name> (<id>), <name> (<id>), <name> (<id>)
  ambiguous: <what>: "<entry>" names <n> classes: <id> (<name>), <id> (<name>); give the id instead
  comma:     <what>: "<entry>" is not one class name; separate labels with ';' when any is a name, e.g. "tabby;7"
  too long:  <what>: a class name is at most 200 characters (got <n> in "<first 40 characters>...")

Where the default names come from (`build`): `--class-names FILE` (a text file, one class a line,
or a JSON list of strings); else the config's `ddt_export.class_names` (the bundled digits model's
YAML names its digits "zero" .. "nine", words because "0" .. "9" are ids); else, for a 1000-class
model, ImageNet-1k's names (bundled/imagenet1k.txt: the WordNet lemmas of the ImageNet-1k synsets
in class-index order, as timm 1.0.29 ships them in timm/data/_info/imagenet_synsets.txt and
imagenet_synset_to_lemma.txt; tests/test_class_names.py checks the file against that package);
else none.
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from .errors import DDTError
from .labels import WHOLE, whole, whole_list

WHITESPACE = " \t\n\v\f\r"
MAX_CHARS = 200  # code points in one synonym (and in a name a user may type)
CLOSEST = 3
IMAGENET_1K = Path(__file__).parent / "bundled" / "imagenet1k.txt"
MAX_FILE_BYTES = 16 << 20  # a names file is kilobytes (ImageNet-21k's is ~1 MB)
_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def fold(text: str) -> str:
    """R4: trim ASCII whitespace, then A-Z -> a-z (nothing else changes)."""
    return text.strip(WHITESPACE).translate(_FOLD)


def is_id(entry: str) -> bool:
    """An entry (already trimmed) in labels.py's integer grammar: always an id, never a name."""
    return WHOLE.fullmatch(entry) is not None


def synonyms(line: str) -> tuple[str, ...]:
    """N1: a line's synonyms, trimmed, display name first."""
    return tuple(s.strip(WHITESPACE) for s in line.split(","))


def check_names(names: object, num_classes: int, where: str) -> list[str]:
    """N1, N2: the lines normalised (synonyms joined with ", "), or a DDTError naming `where` and the first problem."""
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise DDTError(f"{where} must be a list of strings, one per class")
    if len(names) != num_classes:
        raise DDTError(f"{where} has {len(names)} names but the model has {num_classes} classes; "
                       f"give exactly one line per class, 0 to {num_classes - 1} (the null class has none)")
    out = []
    for i, line in enumerate(names):
        for s in synonyms(line):
            problem = synonym_problem(s)
            if problem is not None:
                raise DDTError(f"{where}: class {i} ({line[:60]!r}) {problem}")
        out.append(", ".join(synonyms(line)))
    return out


def synonym_problem(s: str) -> str | None:
    if s == "":
        return "has an empty name (two commas in a row, a trailing comma, or an empty line)"
    if len(s) > MAX_CHARS:
        return f"has a name of {len(s)} characters; at most {MAX_CHARS}"
    if ";" in s:
        return "has a ';' in a name; ';' separates labels on the command line, so names never contain it"
    if _CONTROL.search(s):
        return "has a control character in a name"
    if is_id(s):
        return f"has the name {s!r}, which reads as a class id; use a word (e.g. 'seven' for 7)"
    return None


def read_names_file(path: Path, num_classes: int) -> list[str]:
    """`build --class-names FILE`: a JSON list of strings (.json), else UTF-8 text with one class a line."""
    from .files import regular_file

    path = regular_file(path, "--class-names")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DDTError(f"--class-names {path} is {path.stat().st_size:,} bytes; a names file is at most {MAX_FILE_BYTES:,}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DDTError(f"--class-names {path} is not UTF-8 text; give one class a line, or a JSON list of strings") from None
    if path.suffix.lower() == ".json":
        from .files import parse_json

        names = parse_json(text, f"--class-names {path}", "a list of class names", "give a list of strings")
    else:
        names = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
        if names[-1] == "":  # the last line's newline
            names.pop()
    return check_names(names, num_classes, f"--class-names {path}")


def imagenet_1k() -> list[str]:
    """ImageNet-1k's class names in class-index order (see the module's docstring for their source)."""
    return IMAGENET_1K.read_text(encoding="utf-8").splitlines()


def default_names(num_classes: int, config_names: object = None, where: str = "the config's ddt_export.class_names") -> list[str] | None:
    """What a build is named when `--class-names` is not given: the config's own names, ImageNet-1k's for 1000 classes, or none."""
    if config_names is not None:
        return check_names(config_names, num_classes, where)
    if num_classes == 1000:
        return imagenet_1k()
    return None


def build_names(num_classes: int, names_file: Path | None, config_names: object = None) -> list[str] | None:
    """A new build's names, checked against its class count before any work: the file's, else the defaults."""
    return read_names_file(names_file, num_classes) if names_file is not None else default_names(num_classes, config_names)


def listing(manifest, search: str | None = None) -> list[str]:
    """`ddt-export classes`: "id<TAB>names" lines of a build's classes (those a --search word finds), or a DDTError."""
    names = manifest.class_names
    if names is None:
        raise DDTError(f"{manifest.root} has no class names (its labels are ids 0 to {manifest.arch.num_classes - 1}); rebuild it "
                       "with `ddt-export build --class-names FILE` to name them")
    if search is not None and len(search.strip(WHITESPACE)) > MAX_CHARS:
        raise DDTError(f"--search: a class name is at most {MAX_CHARS} characters (got {len(search.strip(WHITESPACE))})")
    ids = range(len(names)) if search is None else names.search(search)
    if not ids:
        near = ", ".join(f"{names.display(i)} ({i})" for i in names.closest(search))
        raise DDTError(f"no class name contains \"{search.strip(WHITESPACE)}\"; closest: {near}")
    return [f"{i}\t{names.lines[i]}" for i in ids]


# ----------------------------------------------------------------------------- labels as people write them


def split_labels(text: str | None, what: str, example: str = "1,7") -> list[int | str] | None:
    """L1-L3: the entries of a --labels text, ids as ints and names as (trimmed) strs; None stays None."""
    if text is None:
        return None
    if text.strip(WHITESPACE) == "":
        return []
    if ";" not in text and all(p.strip(WHITESPACE) == "" or is_id(p.strip(WHITESPACE)) for p in text.split(",")):
        return whole_list(text, what, example)  # L2: the id list, exactly as before names
    entries = text.split(";")
    if any(e.strip(WHITESPACE) == "" for e in entries):
        raise DDTError(f"{what} has an empty entry (got {text!r}); separate labels with ';', e.g. \"tabby;7\"")
    return [entry(e, what) for e in entries]


def entry(text: str, what: str) -> int | str:
    """L3: one trimmed entry, an id (integer grammar) or a name."""
    e = text.strip(WHITESPACE)
    return whole(e, what, "7") if is_id(e) else e


@dataclass(frozen=True)
class ClassNames:
    """A build's names, ready for look-ups: lines (one per class), their synonyms, and folded synonym -> ids."""

    lines: tuple[str, ...]
    synonyms: tuple[tuple[str, ...], ...] = field(init=False)
    index: dict[str, tuple[int, ...]] = field(init=False, repr=False)

    def __post_init__(self):
        syns = tuple(synonyms(line) for line in self.lines)
        index: dict[str, list[int]] = {}
        for i, ss in enumerate(syns):
            for s in ss:
                ids = index.setdefault(fold(s), [])
                if i not in ids:
                    ids.append(i)
        object.__setattr__(self, "synonyms", syns)
        object.__setattr__(self, "index", {k: tuple(v) for k, v in index.items()})

    def __len__(self) -> int:
        return len(self.lines)

    def display(self, i: int) -> str:
        return self.synonyms[i][0]

    def lookup(self, name: str, what: str) -> int:
        """R2-R6: the one class `name` names, or a one-line DDTError."""
        name = name.strip(WHITESPACE)
        if "," in name or ";" in name:
            raise DDTError(f"{what}: \"{name}\" is not one class name; separate labels with ';' when any is a name, e.g. \"tabby;7\"")
        if len(name) > MAX_CHARS:
            raise DDTError(f"{what}: a class name is at most {MAX_CHARS} characters (got {len(name)} in \"{name[:40]}...\")")
        ids = self.index.get(fold(name), ())
        if len(ids) == 1:
            return ids[0]
        if ids:
            listed = ", ".join(f"{i} ({self.display(i)})" for i in sorted(ids))
            raise DDTError(f"{what}: \"{name}\" names {len(ids)} classes: {listed}; give the id instead")
        near = ", ".join(f"{self.display(i)} ({i})" for i in self.closest(name))
        raise DDTError(f"{what}: no class is named \"{name}\"; closest: {near}")

    def closest(self, name: str, k: int = CLOSEST) -> list[int]:
        """R6: the k classes nearest `name`, by (smallest Levenshtein distance over folded synonyms, id)."""
        q = fold(name)
        dist = [min(levenshtein(q, fold(s)) for s in ss) for ss in self.synonyms]
        return sorted(range(len(dist)), key=lambda i: (dist[i], i))[:k]

    def search(self, word: str) -> list[int]:
        """`classes --search`: the id itself (a whole number), else classes with a synonym containing the folded word."""
        w = fold(word)
        if is_id(w):
            i = int(w)
            return [i] if 0 <= i < len(self) else []
        return [i for i, ss in enumerate(self.synonyms) if any(w in fold(s) for s in ss)]


def levenshtein(a: str, b: str) -> int:
    """Edit distance over code points (insert, delete, substitute: 1 each)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def label_ids(labels: str | int | Iterable[str | int], names: ClassNames | None, what: str = "labels") -> list[int]:
    """A1 and R1-R6, for the Python API and ddt-bench: each label an id (int, or str in the integer grammar) or a name.
    Ids are returned unchanged (their range is checked where they are used: Pipeline.plan)."""
    if isinstance(labels, (str, numbers.Integral)):
        labels = [labels]
    out = []
    for y in labels:
        if isinstance(y, str):
            y = entry(y, what)
        if isinstance(y, str):
            out.append(resolve_name(y, names, what))
        elif isinstance(y, numbers.Integral) and not isinstance(y, bool):
            out.append(int(y))
        else:
            raise DDTError(f"{what} must be class ids (whole numbers) or class names (got {y!r})")
    return out


def resolve(entries: Sequence[int | str] | None, names: ClassNames | None, what: str) -> list[int] | None:
    """split_labels' entries as ids (None stays None)."""
    return None if entries is None else [y if isinstance(y, int) else resolve_name(y, names, what) for y in entries]


def resolve_name(name: str, names: ClassNames | None, what: str) -> int:
    if names is None:  # R1; worded as the id grammar's own message, which is all such a build takes
        raise DDTError(f"{what} must be comma-separated whole numbers of ASCII digits, e.g. 1,7 (got {name!r}); this build "
                       "has no class names, rebuild it with `ddt-export build --class-names FILE` to use names")
    return names.lookup(name, what)
