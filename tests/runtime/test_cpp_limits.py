"""One set of limits: the C++ runtime's bounds and settings validation agree with the Python side's.

`ddt/runtime.h`'s kMaxSteps and kMaxBatch against `ddt_export.sampler.MAX_STEPS` and `MAX_BATCH`
(read back through `ddt_runtime_probe`), and `SamplerSettings::validate()` against
`ddt_export.sampler.SamplerSettings.validate` on boundary values of every rule (steps range,
finite numbers, last step in (0, 1), timeshift > 0, LO <= HI, sampler euler or adams, order 1-4
and 1 for Euler): for each case both accept or both refuse, with the same message (Python's repr
of a bad sampler name included). Then the batch limit end to end: `ddt-run` and the Python pipeline
both take MAX_BATCH labels and both refuse one more.
"""

from __future__ import annotations

import math
import subprocess

import pytest

from ddt_export.errors import DDTError
from ddt_export.sampler import MAX_BATCH, MAX_STEPS, SamplerSettings
from tests.runtime.conftest import run

TINY = 5e-324  # the smallest positive double
BELOW_ONE = 1 - 2**-53  # the largest double below 1
NAN, INF = math.nan, math.inf
BASE = dict(num_steps=12, guidance=3.0, interval_min=0.3, interval_max=0.9, timeshift=1.5, last_step=None)

CASES = [  # overrides of BASE; each is asked of both validators
    {},
    # steps: 1..MAX_STEPS
    *({"num_steps": n} for n in (-1, 0, 1, 2, MAX_STEPS - 1, MAX_STEPS, MAX_STEPS + 1, 2**31 - 1)),
    # every number finite (last_step may be None)
    *({key: v} for key in ("guidance", "interval_min", "interval_max", "timeshift", "last_step") for v in (NAN, INF, -INF)),
    {"guidance": 0.0}, {"guidance": -4.0}, {"guidance": 1e308}, {"guidance": -1e308},
    # last step in (0, 1), open at both ends
    *({"last_step": v} for v in (0.0, -0.0, TINY, 1e-5, 0.5, BELOW_ONE, 1.0, 1 + 2**-52, -0.5, 2.0)),
    # timeshift > 0
    *({"timeshift": v} for v in (0.0, -0.0, -TINY, TINY, 1e-5, -1.0, 1e308)),
    # LO <= HI (equal is allowed: an empty interval)
    {"interval_min": 0.5, "interval_max": 0.5}, {"interval_min": 0.5, "interval_max": 0.5 - 2**-54},
    {"interval_min": 0.9, "interval_max": 0.3}, {"interval_min": -1.0, "interval_max": 2.0},
    {"interval_min": -INF, "interval_max": 0.5}, {"interval_min": 0.0, "interval_max": 0.0},
    # several problems at once: the first rule that fails is reported, on both sides
    {"num_steps": 0, "guidance": NAN}, {"guidance": NAN, "timeshift": 0.0}, {"last_step": 1.0, "timeshift": 0.0},
    {"timeshift": 0.0, "interval_min": 0.9, "interval_max": 0.1},
    # the solver: euler or adams (case-sensitive), order 1..4, and 1 for Euler
    *({"sampler": "adams", "order": k} for k in (-1, 0, 1, 2, 3, 4, 5, 2**31 - 1, -2**31, 2**31, 99999999999, 2**63 - 1, -2**63)),
    *({"sampler": "euler", "order": k} for k in (0, 1, 2, 4, 5)),
    *({"sampler": name} for name in ("heun", "Euler", "ADAMS", "", " adams", "adams ", "it's", 'say "hi"', "a'b\"c", "back\\slash",
                                     "tab\there", "nl\n", "\x01", "\x7f", "euler\x00")),
    {"order": 2}, {"order": 9},
    # the first failing rule wins: the numbers before the solver, the sampler's name before its order
    {"num_steps": 0, "sampler": "heun"}, {"timeshift": 0.0, "order": 3}, {"interval_min": 0.9, "interval_max": 0.1, "sampler": "x"},
    {"sampler": "heun", "order": 9}, {"sampler": "euler", "order": 7},
]


def python_answer(s: dict) -> str:
    try:
        SamplerSettings(**s).validate()
    except DDTError as e:
        return f"error: {e}"
    return "ok"


def probe_command(s: dict) -> str:
    last = "none" if s["last_step"] is None else repr(s["last_step"])
    numbers = " ".join(repr(float(s[k])) for k in ("guidance", "interval_min", "interval_max", "timeshift"))
    sampler = "x" + s.get("sampler", "euler").encode().hex()  # any bytes, spaces and quotes included
    return f"settings {s['num_steps']} {numbers} {last} {sampler} {s.get('order', 1)}"


def probe(runtime_build, commands: list[str]) -> list[str]:
    done = subprocess.run([str(runtime_build / "ddt_runtime_probe")], input="\n".join(commands) + "\n", capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(commands), done.stdout
    return lines


def test_bounds_are_the_same_numbers(runtime_build):
    assert probe(runtime_build, ["limits"]) == [f"{MAX_STEPS} {MAX_BATCH}"]


def test_settings_validation_agrees_on_boundary_values(runtime_build):
    settings = [{**BASE, **case} for case in CASES]
    cpp = probe(runtime_build, [probe_command(s) for s in settings])
    py = [python_answer(s) for s in settings]
    disagree = [(s, p, c) for s, p, c in zip(settings, py, cpp) if p != c]
    assert not disagree, "\n".join(f"{s}\n  python: {p}\n  c++:    {c}" for s, p, c in disagree)
    # the table exercises every rule on both sides of its boundary
    assert py.count("ok") >= 15 and len(py) - py.count("ok") >= 30
    for rule in ("steps must be between", "must be a finite number", "last step must be in (0, 1)", "timeshift must be > 0",
                 "is reversed", "unknown sampler", "order must be from 1 to 4", "is for the Adams sampler"):
        assert any(rule in answer for answer in py), rule


@pytest.mark.parametrize("count, ok", [(MAX_BATCH, True), (MAX_BATCH + 1, False)])
def test_batch_limit_agrees_end_to_end(built, ddt_run, count, ok):
    labels = ",".join(str(i % 10) for i in range(count))
    result = run([ddt_run, built, "--labels", labels, "--steps", "1", "--threads", "1", "--backend", "openvino",
                  "--inference-precision", "f32"])
    assert (result.returncode == 0) == ok, result.stderr[-2000:]
    if not ok:
        assert result.returncode == 2 and f"at most {MAX_BATCH}" in result.stderr
    from ddt_export.pipeline import Pipeline

    pipe = Pipeline.load(built, "onnxruntime")
    if ok:
        assert pipe.generate([i % 10 for i in range(count)], num_steps=1).latents.shape[0] == count
    else:
        with pytest.raises(DDTError, match=f"at most {MAX_BATCH} per call"):
            pipe.generate([i % 10 for i in range(count)], num_steps=1)
