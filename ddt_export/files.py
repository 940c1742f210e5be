"""Files on disk: hashes, atomic writes under unique temp names, JSON read in one-line errors, output paths checked before
work, build-folder locks.

Many processes may read, calibrate and rebuild one build folder at once. Each build folder
`DIR` has a lock file beside it, `.DIR.lock` (beside, not inside: a rebuild replaces the
folder, and a lock inside would move with the old one). Readers hold it shared while they
read and verify a build; writers hold it exclusively only for the short read-modify-write of
the manifest or the swap of a finished build into place, never while computing. Lock files
are left in place: removing one while another process waits on it would split the lock.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import math
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .errors import DDTError, PathVanished


def user_cache() -> Path:
    """ddt-export's cache folder: $DDT_EXPORT_CACHE, else $XDG_CACHE_HOME/ddt-export, else ~/.cache/ddt-export."""
    root = os.environ.get("DDT_EXPORT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ddt-export"
    return Path(root)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def file_entry(path: Path) -> dict:
    return {"sha256": sha256(path), "bytes": path.stat().st_size}


# ----------------------------------------------------------------------------- atomic writes


def atomic_write(path: Path, write: Callable) -> None:
    """Write through a uniquely named temp file in the same folder, then rename: readers see the old file or the
    whole new one, concurrent writers never share a temp file, and a failure leaves nothing."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it owner-only; a plain open would not
        os.replace(tmp, path)
    except OSError as e:
        if e.errno == errno.ENOENT and _on_the_way(e.filename, path):  # removed under us (writing to an open file never is)
            raise PathVanished(errno.ENOENT, f"{e.strerror} (its folder was removed or renamed while this ran)", str(path)) from e
        if e.filename is None:  # a full disk mid-write names no file: name the one being written
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _on_the_way(name, path: Path) -> bool:
    """`name` (an OSError's filename) is `path`, a folder above it, or a file beside it (atomic_write's temp file), compared
    as absolute paths (mkstemp names its file absolutely); or the working folder itself is gone."""
    try:
        here = path.absolute()
        name = None if name is None else Path(os.path.abspath(os.fsdecode(name)))
    except FileNotFoundError:  # os.getcwd(): the working folder was removed, and every relative path with it
        return True
    return name is not None and (name == here or name.parent == here.parent or name in here.parents)


def write_json_atomic(path: Path, data: dict) -> None:
    text = (json.dumps(data, indent=2) + "\n").encode()
    atomic_write(Path(path), lambda f: f.write(text))


def save_npy(path: str | Path, array) -> None:
    import numpy as np

    atomic_write(Path(path), lambda f: np.save(f, array))


def regular_file(path: str | Path, what: str) -> Path:
    """An input that must be a regular file: a FIFO, device or socket would block a read forever or never end."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise DDTError(f"cannot read {what} {path}: {e.strerror}") from None
    if stat.S_ISDIR(mode):
        raise DDTError(f"{what} {path} is a folder; give the file itself")
    if not stat.S_ISREG(mode):
        raise DDTError(f"{what} {path} is not a regular file (a pipe, device or socket); save it to a file first")
    return path


def load_npy(path: Path, what: str, max_elements: int | None = None):
    """A user's .npy (noise, a similarity matrix): a regular file, its header's size checked before the data is read
    (at most `max_elements`), never unpickled."""
    import numpy as np

    path = regular_file(path, what)
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, _ = read_header(f)
            if max_elements is not None and math.prod(shape) > max_elements:
                raise DDTError(f"{what} {path} holds {math.prod(shape):,} values {tuple(shape)}, more than the {max_elements:,} "
                               "it may have; give a smaller array")
            f.seek(0)
            return np.load(f, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DDTError(f"cannot read {what} {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}; save it with numpy.save") from None


# ----------------------------------------------------------------------------- JSON we are given or find

MAX_JSON_BYTES = 64 << 20  # a manifest is kilobytes; anything this large is not one of ours, nor worth parsing
MAX_JSON_DEPTH = 64  # our manifests nest 6 levels, a names list 2; deeper is not ours, and fails by a rule, not by the stack


def read_json(path: str | Path, kind: str, fix: str, max_bytes: int = MAX_JSON_BYTES) -> object:
    """A JSON file (a build's manifest, a sampling job's record) as data, or one DDTError naming the file and `fix`: not a
    regular file (a FIFO would block), too big, unreadable, not UTF-8, or what parse_json refuses. `kind` is what it should
    be ("a ddt-export manifest")."""
    path = Path(path)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise DDTError(f"{path} is not a regular file, so not {kind}; {fix}")
        if st.st_size > max_bytes:
            raise DDTError(f"{path} is {st.st_size:,} bytes, not {kind}; {fix}")
        data = path.read_bytes()
    except OSError as e:
        raise DDTError(f"cannot read {path} ({e.strerror}); check its permissions") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DDTError(f"{path} is not UTF-8 text, so not {kind}; {fix}") from None
    return parse_json(text, str(path), kind, fix)


def parse_json(text: str, where: str, kind: str, fix: str) -> object:
    """JSON text as data, or one DDTError naming `where`: every way json.loads fails, not only JSONDecodeError (a number of
    more than 4,300 digits is a plain ValueError, 200,000 '[' a RecursionError), and nesting deeper than MAX_JSON_DEPTH
    (what json.loads takes just below the stack's limit, the next reader's recursion may not)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DDTError(f"{where} is not valid JSON ({e.msg} at line {e.lineno}); {fix}") from None
    except ValueError as e:  # "Exceeds the limit (4300 digits) for integer string conversion: ..."
        raise DDTError(f"{where} is not {kind} ({str(e).split(':')[0][:100]}); {fix}") from None
    except RecursionError:
        raise DDTError(f"{where} is nested too deeply to be {kind}; {fix}") from None
    todo = [(data, 1)]
    while todo:  # iterative: the check must not itself recurse
        value, depth = todo.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise DDTError(f"{where} is nested too deeply (more than {MAX_JSON_DEPTH} levels) to be {kind}; {fix}")
            todo.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return data


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------------- outputs, checked before any work

VIRTUAL = ("/proc", "/sys", "/dev")


def check_output_file(path: str | Path | None, option: str, suffixes: tuple[str, ...] = ()) -> Path | None:
    """A file we will write at the end of a run, checked now: not a folder, its folder creatable and writable,
    the suffix right. Creates nothing."""
    if path is None:
        return None
    path = Path(path)
    resolved(path, option)  # a symlink loop or an over-long name: one line now, not an OSError at the end
    if path.is_dir():
        raise DDTError(f"{option} {path} is a folder; give a file name inside it, e.g. {option} {path / ('out' + (suffixes[0] if suffixes else ''))}")
    if suffixes and path.suffix.lower() not in suffixes:
        raise DDTError(f"{option} {path}: expected a {' or '.join(suffixes)} file name; give e.g. {option} out{suffixes[0]}")
    if path.exists() and not os.access(path, os.W_OK):
        raise DDTError(f"{option} {path} exists and is not writable; choose another path")
    _check_writable_folder(path.parent, option, path)
    _check_not_in_build(path, option)
    return path


def check_output_dir(path: str | Path, option: str) -> Path:
    """A folder we will create (or fill) at the end of a run, checked now: not a file, under a writable folder."""
    path = Path(path)
    resolved(path, option)
    if path.exists() and not path.is_dir():
        raise DDTError(f"{option} {path} is a file; give a folder")
    if path.resolve() == Path.cwd().resolve() or path.resolve() == Path(path.resolve().anchor):
        raise DDTError(f"{option} {path} is the current (or root) folder; give a new folder, e.g. {option} engines/mybuild")
    _check_writable_folder(path if path.exists() else path.parent, option, path)
    _check_not_in_build(path, option)
    return path


BUILD_MANIFEST = "manifest.json"  # manifest.NAME (manifest.py imports this module, not the other way)


def build_folder_above(path: Path) -> Path | None:
    """The ddt-export build folder `path` lies inside (its real path resolved), or None. A build folder is written only by
    `build` and `calibrate`, under its lock: any other file there fails the build's hash check or `build`'s own-files check."""
    for folder in resolved(path, "").parents:
        manifest = folder / BUILD_MANIFEST
        if not manifest.is_file():
            continue
        try:
            data = read_json(manifest, "a ddt-export manifest", "")
        except DDTError:  # unreadable, not JSON, or nested too deeply: not a build (as ddt-run's output_path.cpp decides)
            continue
        if isinstance(data, dict) and "graphs" in data and "files" in data:
            return folder
    return None


def _check_not_in_build(path: Path, option: str) -> None:
    build = build_folder_above(path)
    if build is not None:
        raise DDTError(f"{option} {path} is inside the build folder {build}, which only `ddt-export build` and `calibrate` "
                       "write; choose a path outside it")


def resolved(path: str | Path, option: str) -> Path:
    """The real path (symlinks resolved once, here), or one line for a symlink loop or a name the file system cannot hold."""
    path = Path(path)
    for part in path.parts:
        if len(os.fsencode(part)) > 255:
            raise DDTError(f"{option + ' ' if option else ''}{str(path)[:60]}...: a file or folder name of {len(os.fsencode(part))} bytes, "
                           "more than file systems hold (255); choose a shorter name")
    try:
        return path.resolve()
    except RuntimeError:  # Python < 3.13 reports a symlink loop this way
        raise DDTError(f"{option + ' ' if option else ''}{path} is a symlink loop; point it at a real folder, or choose another path") from None
    except OSError as e:
        raise DDTError(f"{option + ' ' if option else ''}{path}: {e.strerror}; choose another path") from None


def _check_writable_folder(folder: Path, option: str, target: Path) -> None:
    real = resolved(folder, option)
    if any(str(real) == v or str(real).startswith(v + os.sep) for v in VIRTUAL):
        raise DDTError(f"{option} {target}: {real} is a system folder, not storage; choose a path in your files")
    existing = real
    while not existing.exists():  # the nearest folder that exists must be a writable folder
        existing = existing.parent
    if not existing.is_dir():
        raise DDTError(f"{option} {target}: {existing} is a file, so nothing can be created under it; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DDTError(f"{option} {target}: {existing} is not writable; choose a path you can write to")


# ----------------------------------------------------------------------------- locks


def lock_path(folder: Path) -> Path:
    """`.NAME.lock` beside the real folder: a build opened through a symlink takes the same lock as by its real path."""
    folder = resolved(folder, "")
    return folder.with_name(f".{folder.name}.lock")


@contextmanager
def locked(folder: str | Path, *, shared: bool = False) -> Iterator[bool]:
    """Hold the build folder's lock (shared for readers, exclusive for writers); yields whether it is held.

    Only writers create the lock file, so reading a mistyped path leaves nothing behind; a reader finding
    no lock file (no writer has ever touched the folder), or one it cannot open (a read-only share of
    builds, which nothing here can change either), reads without it.
    """
    path = lock_path(Path(folder))
    try:
        fd = os.open(path, os.O_RDONLY if shared else os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())  # flock needs no write access
    except OSError as e:
        if shared:
            yield False
            return
        raise DDTError(f"cannot lock {folder} ({e.strerror}: {path}); the folder beside the build must be writable") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield True
    finally:
        os.close(fd)  # closing releases the lock
