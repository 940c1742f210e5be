"""`ddt-export sample` refuses bad input at once: one line, exit 2, nothing computed or written, no Ray."""

from __future__ import annotations

import socket
import sys
import time
from dataclasses import replace

import pytest

from ddt_export import DDTError
from ddt_export.scale.run import SampleOptions, plan, sample_many
from ddt_export.scale.store import Store


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(num_samples=0), "--num-samples must be a whole number >= 1"),
        (dict(sharing_ratio=1.0), r"sharing ratio must be in \[0, 1\)"),
        (dict(sharing_ratio=-0.25), r"sharing ratio must be in \[0, 1\)"),
        (dict(schedule="cosine", sharing_ratio=0.5), "unknown schedule 'cosine'"),
        (dict(classes="3,11"), r"label 11 is outside \[0, 9\]"),
        (dict(classes="thre"), '--classes: no class is named "thre"; closest: three'),  # "three" names class 3
        (dict(batch=0), "--batch must be a whole number >= 1"),
        (dict(per_class=0), "--per-class must be a whole number >= 1"),
        (dict(workers=0), "--workers must be at least 1"),
        (dict(backend="cuda"), "unknown backend 'cuda'"),
    ],
)
def test_bad_input_fails_before_any_work(pixel_build, tmp_path, kw, message):
    out = tmp_path / "out"
    with pytest.raises(DDTError, match=message):
        sample_many(SampleOptions(pixel_build, **{"num_samples": 10, "out": out, **kw}))
    assert not out.exists()


def test_unknown_build_is_named(tmp_path):
    with pytest.raises(DDTError, match="has no manifest.json: run `ddt-export build`"):
        sample_many(SampleOptions(tmp_path / "nope", num_samples=10, out=tmp_path / "out"))


def test_unreachable_cluster_fails_fast_with_the_fix(pixel_build, tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(DDTError, match=r"cannot reach a Ray cluster at 127\.0\.0\.1:\d+ .*ray start --head.*drop --address"):
        sample_many(SampleOptions(pixel_build, num_samples=10, out=tmp_path / "out", address=f"127.0.0.1:{closed_port()}"))
    assert time.perf_counter() - t0 < 10  # well before ray.init's own 20 s of retries
    assert not (tmp_path / "out").exists()
    with pytest.raises(DDTError, match="is not HOST:PORT"):
        sample_many(SampleOptions(pixel_build, num_samples=10, out=tmp_path / "out", address="head:port"))


def test_latent_build_without_vae_is_refused_up_front(built, tmp_path):
    with pytest.raises(DDTError, match="latent model and the build has no VAE decoder"):
        sample_many(SampleOptions(built, num_samples=10, out=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_out_of_another_configuration_is_refused(pixel_build, tmp_path):
    out = tmp_path / "out"
    job, _ = plan(SampleOptions(pixel_build, num_samples=10, seed=1, sharing_ratio=0.5, schedule="uniform"))
    Store(out).begin(job)
    with pytest.raises(DDTError, match=r"holds samples of another configuration \(seed: 1 there, 2 now\); use another --out"):
        sample_many(SampleOptions(pixel_build, num_samples=10, seed=2, sharing_ratio=0.5, schedule="uniform", out=out))
    Store(out).check(job)  # the same job is welcome
    with pytest.raises(DDTError, match="num_samples: 10 there, 11 now"):
        Store(out).check(replace(job, num_samples=11))


def test_cli_prints_one_line_and_exits_2(pixel_build, tmp_path, monkeypatch, capsys):
    from ddt_export.cli import main

    monkeypatch.setattr(sys, "argv", ["ddt-export", "sample", str(pixel_build), "--num-samples", "5", "--sharing-ratio", "1.5",
                                      "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: sharing ratio must be in [0, 1)") and err.count("\n") == 1


def test_missing_ray_is_named_with_the_install_command(pixel_build, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(DDTError, match=r"needs Ray: pip install 'ddt-export\[scale\]'"):
        sample_many(SampleOptions(pixel_build, num_samples=10, out=tmp_path / "out"))


def test_worker_count_fits_the_cluster(monkeypatch):
    ray = pytest.importorskip("ray")
    from ddt_export.scale.cluster import worker_count

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 16.0, "GPU": 4.0})
    assert worker_count(None, 1, 1, shards=100) == 4  # one per GPU
    assert worker_count(None, 1, 0.5, shards=100) == 8  # two per GPU
    assert worker_count(None, 2, 0, shards=100) == 8  # CPU only
    assert worker_count(None, 1, 1, shards=3) == 3  # never more workers than shards
    with pytest.raises(DDTError, match="5 workers of 1 CPU \\+ 1 GPU do not fit the Ray cluster's 16 CPUs and 4 GPUs; use --workers 4"):
        worker_count(5, 1, 1, shards=100)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 8.0})
    with pytest.raises(DDTError, match="not enough for one worker of 1 CPU \\+ 1 GPU"):
        worker_count(None, 1, 1, shards=100)
