"""One decimal grammar on both sides (issue 26): the C++ runtime's ddt::decimal, what `ddt-run` reads --cfg, --interval,
--timeshift, --last-step and --sharing-ratio with, against ddt_export/decimals.py's decimal; and Ctrl-C or SIGTERM ending
`ddt-run` as ddt_export.errors.run ends `ddt-export`: exit 130, one line, nothing half-written and no temporary file.

The table goes through `ddt_runtime_probe` (texts as hex, so spaces, tabs, newlines and any UTF-8 arrive as they are):
both sides accept a text with the same double, bit for bit, or refuse it with the same message. Then every decimal option
of `ddt-run` against `ddt-export generate` on the session's build: the same line and exit 2, or both run.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import time

import numpy as np
import pytest

from ddt_export.decimals import decimal
from ddt_export.errors import INTERRUPTED, DDTError
from tests.runtime.conftest import run
from tests.runtime.test_cpp_labels import hexed
from tests.runtime.test_cpp_limits import probe

ACCEPTED = [
    "0.75", ".5", "1.", "1e-3", "1E+30", "0", "-0", "-0.0", "-.5e-2", "1e+0", "1e0001", "00012", "4.0 ", " 4.0", "\t1\t",
    " \t0.25 \t", "0.1", "3.141592653589793238462643383279", "123456789012345678901234567890", "9" * 400 + "e-400",
    "0." + "0" * 500 + "1", "1e-400", "-1e-400", "1e-99999999999999999999", "1e-310", "4.9e-324", "2.4703282292062328e-324",
    "2.4703282292062327e-324", "1.7976931348623157e308", "1.7976931348623158e308", "-1.7976931348623157e308", "1e308",
]
REFUSED_TEXT = [
    "", " ", "\t", "+1", "+.5", "+0", "1_0", "0.7_5", "\uff11", "\u0661", "\u0967", "\U0001d7cf", "\u00b2", "0x1p2", "0x10",
    "0X1P-2", "1 2", "4 .0", "1\u00a0", "\u00a01", "1\u3000", "\u200b1", "\ufeff1", "1e", "e5", ".", "-", "--1", "-+1", "1..",
    "1.2.3", "1e3.5", "1e+-3", "1e 3", ".e1", "-.e1", "nan(1)", "infinit", "infinityy", "in f", "-in", "1,2", "1;", "'1'",
    '"1"', "1\n", "\n1", "1\r", "\r1", "1\x0b", "1f", "1d", "0b1", "1\\", "it's", "1\udcff", "\udc80", "strong", "1/2",
    "1e+", "1 e3", "−1",  # U+2212 MINUS SIGN
]
REFUSED_FINITE = [
    "nan", "NaN", "-nan", "+nan", "NAN", "inf", "-inf", "+inf", "Inf", "Infinity", "-INFINITY", "+infinity", " inf ",
    "\tnan", "1e400", "-1e400", "1e999999999999", "1" + "0" * 400, "1.7976931348623159e308", "-1.7976931348623159e308",
]


def python_decimal(text: str, what: str = "--cfg", example: str = "4.0") -> str:
    try:
        return "ok " + struct.pack(">d", decimal(text, what, example)).hex()
    except DDTError as e:
        return f"error: {e}"


def test_the_table_covers_every_rule():
    answers = [python_decimal(t) for t in ACCEPTED + REFUSED_TEXT + REFUSED_FINITE]
    assert [a.startswith("ok") for a in answers] == [True] * len(ACCEPTED) + [False] * (len(REFUSED_TEXT) + len(REFUSED_FINITE))
    assert sum("must be a decimal number of ASCII digits" in a for a in answers) == len(REFUSED_TEXT)
    assert sum("must be a finite number" in a for a in answers) == len(REFUSED_FINITE)
    assert python_decimal("1e-400") == "ok " + "00" * 8  # float() reads an underflow as 0: taken, as decimals.py takes it
    assert python_decimal("1e-310") != "ok " + "00" * 8  # a subnormal stays one


@pytest.mark.parametrize("what,example", [("--cfg", "4.0"), ("--interval LO", "0.3"), ("--sharing-ratio", "0.75")])
def test_decimal_agrees_with_decimals_py(runtime_build, what, example):
    texts = ACCEPTED + REFUSED_TEXT + REFUSED_FINITE
    cpp = probe(runtime_build, [f"decimal {hexed(what)} {hexed(example)} {hexed(t)}" for t in texts])
    wrong = [f"{t!r}\n  python: {p}\n  c++:    {c}" for t, c in zip(texts, cpp) if (p := python_decimal(t, what, example)) != c]
    assert not wrong, "\n".join(wrong)


# every decimal option of ddt-run, with texts each refused for one reason, through both command lines
CLI_CASES = [
    ("--cfg", "+4"), ("--cfg", "0x1p2"), ("--cfg", "nan"), ("--cfg", "1e400"), ("--cfg", ""), ("--cfg", "it's"),
    ("--timeshift", "1_0"), ("--timeshift", "Infinity"),
    ("--last-step", "\u0661"), ("--last-step", "-inf"),
    ("--sharing-ratio", "0.7_5"), ("--sharing-ratio", "nan"),
    ("--interval", "+0.3,1"), ("--interval", "0.3,1e999"), ("--interval", "0.3,"), ("--interval", "1,2,it's"), ("--interval", "0.5"),
]


def both(built, ddt_run, tmp_path, option: str, text: str) -> tuple:
    out = tmp_path / "lat.npy"
    common = ["--labels", "1", "--steps", "1", f"{option}={text}", "--save-latents", out]
    python = run(["ddt-export", "generate", built, *common], timeout=300)
    cpp = run([ddt_run, built, *common, "--threads", "1"], timeout=300)
    return python, cpp


@pytest.mark.parametrize("option,text", CLI_CASES, ids=[f"{o}={t!r}" for o, t in CLI_CASES])
def test_ddt_run_refuses_as_ddt_export_does(built, ddt_run, tmp_path, option, text):
    python, cpp = both(built, ddt_run, tmp_path, option, text)
    assert python.returncode == 2 and len(python.stderr.splitlines()) == 1, python.stderr[-2000:]
    assert (cpp.returncode, cpp.stderr, cpp.stdout) == (2, python.stderr, ""), (cpp.stderr, python.stderr)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option,text", [("--cfg", "1e-400"), ("--cfg", " 4. "), ("--timeshift", "1E0"), ("--last-step", ".04"),
                                         ("--interval", "-0, 1.")])
def test_ddt_run_takes_what_ddt_export_takes(built, ddt_run, tmp_path, option, text):
    """Accepted texts run on both sides, and ddt-run reads the value Python reads: its latents are bit-identical to those of
    the same run given Python's value as repr writes it."""
    out, ref = tmp_path / "lat.npy", tmp_path / "ref.npy"
    common = ["--labels", "1,3", "--steps", "2", "--backend", "openvino"]
    python = run(["ddt-export", "generate", built, *common, f"{option}={text}", "--save-latents", out], timeout=300)
    assert python.returncode == 0, python.stderr[-2000:]
    values = [repr(decimal(t, option)) for t in text.split(",")]
    for given, path in ((text, out), (",".join(values), ref)):
        cpp = run([ddt_run, built, *common, f"{option}={given}", "--save-latents", path, "--threads", "1"], timeout=300)
        assert cpp.returncode == 0, cpp.stderr[-2000:]
    assert np.load(out).tobytes() == np.load(ref).tobytes()


# ---------------------------------------------------------------- Ctrl-C and SIGTERM

def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def wait_until_sampling(proc: subprocess.Popen) -> None:
    """Until the run has used 2 s of CPU (opening the tiny build takes a fraction of that: it is sampling), still running."""
    deadline = time.monotonic() + 120
    while proc.poll() is None and cpu_seconds(proc.pid) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_ends_the_run_cleanly(built, ddt_run, tmp_path, signum):
    """A run far from done (10,000 steps of 64 samples), interrupted while it samples: exit 130, Python's one line, and the
    output folder as it was (an old latents file kept byte for byte, no new file, no temporary file)."""
    out = tmp_path / "lat.npy"
    out.write_bytes(b"the old latents")
    labels = ",".join(str(i % 10) for i in range(64))
    proc = subprocess.Popen([str(ddt_run), str(built), "--labels", labels, "--steps", "10000", "--threads", "1",
                             "--save-latents", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_sampling(proc)
        start = time.monotonic()
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert time.monotonic() - start < 5, "the signal did not end the run promptly"
    assert proc.returncode == INTERRUPTED, (proc.returncode, stderr[-2000:])
    assert stderr.splitlines() == ["interrupted; nothing half-written was left behind"] and stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lat.npy"] and out.read_bytes() == b"the old latents"


def test_python_says_the_same_line():
    """The line ddt-run prints is ddt_export.errors.run's (read from its source, so a change there fails here)."""
    import inspect

    from ddt_export import errors

    assert 'print("interrupted; nothing half-written was left behind", file=sys.stderr)' in inspect.getsource(errors.run)
    assert INTERRUPTED == 130
