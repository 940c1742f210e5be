"""Stops the local Ray a `ddt-export sample` driver started when that driver dies without cleaning up (SIGKILL, OOM).

    python -m ddt_export.scale.watchdog DRIVER_PID

The driver starts it in its own session right after starting Ray. Once a second it records the
driver's descendants (Ray's GCS, raylet, agents, workers) by pid and start time; when the driver
is gone it kills every recorded process still running under the same start time (so a reused
pid is never hit), then exits. A driver that ends normally shuts Ray down and stops the watchdog.
Linux only (/proc); elsewhere the driver simply does not start it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

POLL = 1.0  # seconds


def stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ..., starttime is the 20th
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """{pid: start time} of every process below `root`."""
    parents: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            s = stat(int(entry))
            if s is not None:
                parents.setdefault(s[0], []).append(int(entry))
                starts[int(entry)] = s[1]
    out, todo = {}, [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in out:
                out[child] = starts[child]
                todo.append(child)
    return out


def watch(driver: int) -> None:
    me = os.getpid()
    born = stat(driver)
    seen: dict[int, int] = {}
    while born is not None and stat(driver) == born:
        seen.update({p: t for p, t in descendants(driver).items() if p != me})
        time.sleep(POLL)
    for pid, start in seen.items():  # the driver is gone: whatever of its Ray is left goes too
        s = stat(pid)
        if s is not None and s[1] == start:
            for child in descendants(pid):
                _kill(child)
            _kill(pid)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def start() -> "subprocess.Popen | None":  # noqa: F821
    """Start the watchdog for this process (the driver), or None where there is no /proc."""
    import subprocess

    if not Path("/proc/self/stat").exists():
        return None
    return subprocess.Popen([sys.executable, "-m", "ddt_export.scale.watchdog", str(os.getpid())], start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    watch(int(sys.argv[1]))
