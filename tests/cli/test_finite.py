"""Non-finite results are never written: every backend's run checks its result before any file is written and says,
in one line, which setting or input blew up (issue 26, item 1); settings float32 cannot hold are refused up front."""

from __future__ import annotations

import numpy as np
import pytest

from tests.cli.test_main import one_line_error

BACKENDS = ["torch", "onnxruntime", "openvino"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_huge_guidance_is_refused_after_the_run_and_nothing_is_written(cli, built, tmp_path, backend):
    out = tmp_path / "x.npy"
    r = cli("generate", built, "--backend", backend, "--labels", "1", "--steps", 6, "--cfg", "1e30", "--save-latents", out)
    one_line_error(r, "not finite", "guidance scale (--cfg) 1e+30", "nothing was written")
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_extreme_noise_is_named(cli, built, tmp_path, backend):
    np.save(tmp_path / "n.npy", np.full((1, 4, 8, 8), 1e30, np.float32))
    r = cli("generate", built, "--backend", backend, "--labels", "1", "--steps", 3, "--noise", tmp_path / "n.npy",
            "--save-latents", tmp_path / "x.npy")
    one_line_error(r, "not finite", "the noise (values up to 1e+30")
    assert not (tmp_path / "x.npy").exists()


def test_the_api_raises_too(built):
    from ddt_export import Pipeline
    from ddt_export.errors import DDTError

    pipe = Pipeline.load(built, "onnxruntime")
    with pytest.raises(DDTError, match="guidance scale"):
        pipe.generate([1], num_steps=4, guidance=1e30)
    assert np.isfinite(pipe.generate([1], num_steps=4, guidance=3.0).latents).all()  # an ordinary run is untouched


@pytest.mark.parametrize("args,words", [
    (["--cfg", "1e39"], "does not fit in float32"),
    (["--timeshift", "1e300"], "is not finite in float32"),
    (["--timeshift", "1e-300", "--sampler", "adams", "--order", "4"], "is not finite in float32"),
    (["--last-step", "1e-300"], "below float32's resolution"),
])
def test_settings_float32_cannot_hold_are_refused_up_front(cli, built, tmp_path, args, words):
    one_line_error(cli("generate", built, "--labels", "1", "--steps", 5, *args, "--save-latents", tmp_path / "x.npy"), words)
    assert list(tmp_path.iterdir()) == []


def test_a_non_finite_calibration_is_not_stored(cli, built, tmp_path):
    import shutil

    from ddt_export.manifest import read

    build = tmp_path / "b"
    shutil.copytree(built, build)
    before = (build / "manifest.json").read_bytes()
    one_line_error(cli("calibrate", build, "--steps", 4, "--samples", 1, "--cfg", "1e30", "--backend", "onnxruntime"),
                   "calibrating: the result is not finite", "guidance scale (--cfg) 1e+30")
    assert (build / "manifest.json").read_bytes() == before
    read(build)
