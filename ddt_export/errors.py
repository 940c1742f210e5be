"""The one exception type users see (a problem they can fix, said in one line with the fix) and the CLIs' funnel for it.

Bad input is a `DDTError` or a usage error: `error: <problem and fix>`, exit 2, no traceback.
Anything else is a bug: `internal error: ...`, exit 1. `--debug` anywhere on the command line
shows the traceback instead.
"""

from __future__ import annotations

import signal
import sys
import threading


INTERRUPTED = 130  # the shell's code for a command ended by Ctrl-C


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
        print(f"internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback, and please report it)", file=sys.stderr)
        sys.exit(1)
    if rc == INTERRUPTED:  # typer 0.29 turns Ctrl-C (and our SIGTERM) into a plain return code of 130
        print("interrupted; nothing half-written was left behind", file=sys.stderr)
    sys.exit(rc if isinstance(rc, int) else 0)


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM ends a command like Ctrl-C: staging folders removed, nothing half-written
