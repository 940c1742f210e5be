"""Finite results only, in C++ as in Python (issue 26, item 1): `ddt-run` refuses settings float32 cannot hold before any
work, with ddt_export/finite.py's messages (the table below against finite.check_representable), and a run whose latents
are not finite exits 2 with one line naming the setting or input that blew up and the first step whose velocity went
nan/inf, the same line as the Python pipeline's, on every CPU backend, and writes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from ddt_export import finite
from ddt_export.errors import DDTError
from ddt_export.sampler import SamplerSettings
from tests.runtime.conftest import run
from tests.runtime.test_cpp_limits import BASE, probe, probe_command

F32_MAX = float(np.finfo(np.float32).max)

REPRESENTABLE = [  # overrides of BASE, each asked of both sides
    {}, {"guidance": 1e30}, {"guidance": F32_MAX}, {"guidance": -F32_MAX}, {"guidance": np.nextafter(F32_MAX, np.inf)},
    {"guidance": 3.5e38}, {"guidance": 1e39}, {"guidance": -1e39}, {"guidance": 1e308},
    *({"timeshift": v} for v in (1e-300, 1e-45, 1e-38, 1e-30, 1e-8, 1e8, 1e30, 1e38, 3.5e38, 1e300)),
    *({"timeshift": v, "sampler": "adams", "order": k} for v in (1e-300, 1e-30, 1e-8, 1e30, 1e300) for k in (2, 4)),
    *({"last_step": v} for v in (1e-300, 1e-30, 1e-8, 5.9e-8, 6e-8, 1e-7, 0.5, 1 - 1e-9)),
    {"num_steps": 1, "last_step": 1e-300}, {"num_steps": 10_000, "timeshift": 1e-30}, {"num_steps": 2, "timeshift": 1e30},
    {"guidance": 1e39, "last_step": 1e-300}, {"last_step": 1e-300, "timeshift": 1e300},  # the first failing rule wins
]


def python_answer(s: dict) -> str:
    try:
        settings = SamplerSettings(**s)
        settings.validate()
        finite.check_representable(settings)
    except DDTError as e:
        return f"error: {e}"
    return "ok"


def test_representable_settings_agree(runtime_build):
    settings = [{**BASE, **case} for case in REPRESENTABLE]
    cpp = probe(runtime_build, [probe_command(s).replace("settings", "representable", 1) for s in settings])
    py = [python_answer(s) for s in settings]
    wrong = [f"{s}\n  python: {p}\n  c++:    {c}" for s, p, c in zip(settings, py, cpp) if p != c]
    assert not wrong, "\n".join(wrong)
    for rule in ("does not fit in float32", "below float32's resolution", "is not finite in float32"):
        assert any(rule in a for a in py), rule
    assert py.count("ok") >= 8


def python_line(build, **kw) -> str:
    from ddt_export import Pipeline

    with pytest.raises(DDTError) as e:
        Pipeline.load(build, "onnxruntime").generate([1], **kw)
    return f"error: {e.value}"


BACKENDS = {"openvino": ["--backend", "openvino", "--inference-precision", "f32"], "libtorch": ["--backend", "libtorch"]}


def cpp_line(ddt_run, build, backend, tmp_path, *args) -> str:
    out = tmp_path / "x.npy"
    r = run([ddt_run, build, *BACKENDS[backend], "--labels", "1", "--threads", "1", *args, "--save-latents", out])
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and len(lines) == 1 and r.stdout == "", (r.returncode, r.stderr[-2000:])
    assert not out.exists()
    return lines[0]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_huge_guidance_is_named_after_the_run_and_nothing_is_written(lt_build, ddt_run, tmp_path, backend):
    line = cpp_line(ddt_run, lt_build, backend, tmp_path, "--steps", "6", "--cfg", "1e30")
    assert "guidance scale (--cfg) 1e+30" in line and "nothing was written" in line, line
    assert line == python_line(lt_build, num_steps=6, guidance=1e30)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_extreme_noise_is_named(lt_build, ddt_run, tmp_path, backend):
    noise = np.full((1, 4, 8, 8), 1e30, np.float32)
    np.save(tmp_path / "n.npy", noise)
    line = cpp_line(ddt_run, lt_build, backend, tmp_path, "--steps", "3", "--noise", tmp_path / "n.npy")
    assert "the noise (values up to 1e+30" in line, line
    assert line == python_line(lt_build, num_steps=3, noise=noise)
    assert [p.name for p in tmp_path.iterdir()] == ["n.npy"]


def test_an_ordinary_run_is_untouched(built, ddt_run, tmp_path):
    """Guidance 1e30 outside the interval never applies: the run is finite and written (the check is on the result)."""
    out = tmp_path / "x.npy"
    r = run([ddt_run, built, "--labels", "1", "--steps", "4", "--cfg", "1e30", "--interval", "0.99,1", "--threads", "1",
             "--save-latents", out])
    assert r.returncode == 0, r.stderr
    assert np.isfinite(np.load(out)).all()
