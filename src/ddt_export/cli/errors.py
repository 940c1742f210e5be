"""How the CLIs fail: one line on stderr naming the problem and the fix, exit 2, no traceback.

`--debug` anywhere on the command line shows the traceback instead.
"""

from __future__ import annotations

import sys

import click
import typer

from ..errors import DDTError


def run(app: typer.Typer) -> None:
    argv = sys.argv[1:]
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        rc = app(args=argv, standalone_mode=False)
    except DDTError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except click.UsageError as e:
        hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx else ""
        print(f"error: {e.format_message()}{hint}", file=sys.stderr)
        sys.exit(2)
    except (click.Abort, KeyboardInterrupt):
        print("interrupted; nothing half-written was left behind", file=sys.stderr)
        sys.exit(130)
    except click.ClickException as e:
        print(f"error: {e.format_message()}", file=sys.stderr)
        sys.exit(e.exit_code)
    except Exception as e:  # a bug, not bad input: say so in one line, keep the traceback for --debug
        if debug:
            raise
        print(f"internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback, and please report it)", file=sys.stderr)
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)
