"""The one exception type users see (a problem they can fix, said in one line with the fix) and the CLIs' funnel for it.

Bad input is a `DDTError` or a usage error: `error: <problem and fix>`, exit 2, no traceback.
The machine failing us while we read or write (a full disk or quota, a read-only or failing file
system, too many open files, a permission the file system denies mid-run, an output's folder removed
mid-run) is `error: <what> <path>: <reason>`, exit 74 (EX_IOERR of sysexits.h), so scripts can tell
"fix the input" from "fix the machine and run again".
Anything else is a bug: `internal error: ...`, exit 1. `--debug` anywhere on the command line
shows the traceback instead.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading


INTERRUPTED = 130  # the shell's code for a command ended by Ctrl-C
IO_ERROR = 74  # sysexits.h EX_IOERR: the disk or file system failed, not the input
IO_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EMFILE, errno.ENFILE, errno.EFBIG,
             errno.ENAMETOOLONG, errno.ELOOP, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EXDEV}


class PathVanished(OSError):
    """ENOENT while writing an output that was checked before any work: a folder on its way (or our temp file beside it)
    was removed or renamed meanwhile, by someone else. The machine changed under us: not bad input (it was checked), not a
    bug, so exit 74 as ddt-run's write_atomic does. Raised only by the writers (files.atomic_write, build.staging), which
    know the ENOENT is about their own path: any other FileNotFoundError stays a bug."""


def _machine(e: BaseException) -> bool:
    """`e` is the machine's failure, not a bug."""
    return isinstance(e, OSError) and (e.errno in IO_ERRNOS or isinstance(e, PathVanished))


def os_failure(e: BaseException) -> OSError | None:
    """The operating-system failure (an OSError of IO_ERRNOS, or PathVanished) behind `e`, itself or anywhere in its
    chain, or None."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if _machine(e):
            return e
        e = e.__cause__ or e.__context__
    return None


def io_failure(e: BaseException) -> str | None:
    """The one line for an operating-system failure while reading or writing (itself or its cause), or None if it is not one."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if _machine(e):
            where = " ".join(str(f) for f in (e.filename, e.filename2) if f is not None) or "a file"
            return f"{where}: {e.strerror or os.strerror(e.errno)}; nothing half-written was kept (free space or fix the path, then run again)"
        if isinstance(e, OSError) is False and "No space left on device" in str(e):  # libraries that wrap ENOSPC in their own type
            return f"{str(e).splitlines()[0][:200]}; nothing half-written was kept (free space, then run again)"
        e = e.__cause__ or e.__context__
    return None


class DDTError(Exception):
    """Raised for bad input or unusable artifacts. The CLI prints `error: <message>` and exits 2."""


def first_problem(e) -> str:
    """A pydantic ValidationError's first problem as `where: what (got value)`, the one line our errors quote."""
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    got = err.get("input")
    shown = repr(got) if not isinstance(got, (dict, list)) or len(repr(got)) < 40 else type(got).__name__
    return f"{where}: {err['msg'].rstrip('.')} (got {shown})"


def _click_modules() -> tuple:
    """click itself and, from typer 0.29, the copy typer vendors (`typer._click`): usage errors come from either."""
    import click

    mods = [click]
    try:
        from typer import _click  # type: ignore[attr-defined]

        mods.append(_click)
    except ImportError:
        pass
    return tuple(mods)


def run(application) -> None:
    """Run a typer app on sys.argv: `error: <message>` and exit 2 for DDTError and usage errors, exit 130 on Ctrl-C or
    SIGTERM (so `finally` blocks clean up), `internal error: ...` and exit 1 for anything else (a bug)."""
    import click
    import typer

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    argv = sys.argv[1:]
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    mods = _click_modules()
    usage = tuple(m.exceptions.UsageError for m in mods)
    clicks = tuple(m.exceptions.ClickException for m in mods)
    aborts = (click.exceptions.Abort, typer.Abort)  # typer 0.29 defines its own Abort beside the vendored click
    try:
        rc = application(args=argv, standalone_mode=False)
    except DDTError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except usage as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # a bare `ddt-export`: the help is the answer, not an error
            print(e.format_message())
            sys.exit(0)
        hint = f" (see `{e.ctx.command_path} --help`)" if getattr(e, "ctx", None) else ""
        print(f"error: {e.format_message()}{hint}", file=sys.stderr)
        sys.exit(2)
    except (*aborts, KeyboardInterrupt):
        rc = INTERRUPTED
    except clicks as e:
        print(f"error: {e.format_message()}", file=sys.stderr)
        sys.exit(e.exit_code)
    except Exception as e:  # a bug, not bad input: say so in one line, keep the traceback for --debug
        if debug:
            raise
        if io_failure(e) is not None:
            print(f"error: {io_failure(e)}", file=sys.stderr)
            sys.exit(IO_ERROR)
        print(f"internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback, and please report it)", file=sys.stderr)
        sys.exit(1)
    if rc == INTERRUPTED:  # typer 0.29 turns Ctrl-C (and our SIGTERM) into a plain return code of 130
        print("interrupted; nothing half-written was left behind", file=sys.stderr)
    sys.exit(rc if isinstance(rc, int) else 0)


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM ends a command like Ctrl-C: staging folders removed, nothing half-written
