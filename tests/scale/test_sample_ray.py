"""Sampling over a local Ray with 2 workers: the same bytes as 1 worker and as the Pipeline
in this process, and a run interrupted after some shards resumes to the same file.

One local Ray (2 CPUs) serves the whole module; a small job (22 samples in shards of 8, 8, 6,
6 steps, DP schedule at sharing ratio 0.5) keeps each run to a few seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is the `scale` extra: pip install -e '.[scale]'")

from ddt_export import __version__  # noqa: E402
from ddt_export.scale.run import SampleOptions, plan, sample_many  # noqa: E402
from ddt_export.scale.workers import ShardWorker  # noqa: E402

JOB = dict(num_samples=22, batch=8, steps=6, sharing_ratio=0.5, schedule="dp", classes="1,3,7", per_class=2, seed=11)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def one_worker(local_ray, pixel_build, tmp_path_factory):
    """The reference: one worker with both CPUs (2 threads), shards kept."""
    out = tmp_path_factory.mktemp("one") / "out"
    summary = sample_many(SampleOptions(pixel_build, **JOB, out=out, workers=1, cpus_per_worker=2, keep_shards=True), show_progress=False)
    return summary


def test_two_workers_write_the_same_bytes_as_one(one_worker, pixel_build, tmp_path):
    two = sample_many(SampleOptions(pixel_build, **JOB, out=tmp_path / "out", workers=2), show_progress=False)
    assert two.workers == 2 and one_worker.workers == 1
    assert two.samples_file.read_bytes() == one_worker.samples_file.read_bytes()
    assert not (tmp_path / "out" / "shards").exists()  # merged, then removed without --keep-shards
    manifest = json.loads(two.manifest_file.read_text())
    assert manifest["sha256"] == json.loads(one_worker.manifest_file.read_text())["sha256"]
    steps = manifest["schedule"]["recompute"]
    assert manifest["schedule"]["method"] == "dp" and len(steps) == 3 and steps[0] == 0  # K = int(6 / 2), calibrated in the driver
    assert manifest["class_counts"] == {"1": 8, "3": 8, "7": 6} and manifest["seeds"]["seed"] == 11


def test_merged_file_is_what_the_pipeline_samples_in_process(one_worker, pixel_build):
    """Workers add nothing of their own: each shard equals ShardWorker.run here, without Ray."""
    with np.load(one_worker.samples_file) as z:
        images, labels = z["arr_0"], z["arr_1"]
    assert images.dtype == np.uint8 and images.shape[0] == 22 and images.shape[-1] == 3
    job, _ = plan(SampleOptions(pixel_build, **JOB))  # as the driver planned it (the DP calibration is stored by now)
    assert job.key_hash() == json.loads(one_worker.manifest_file.read_text())["key_sha256"]
    worker = ShardWorker(job, threads=1, driver_version=__version__)
    assert worker.ready() is None
    for shard in job.shards():
        _, got, got_labels = worker.run(shard)
        assert np.array_equal(got, images[shard.lo : shard.hi]) and np.array_equal(got_labels, labels[shard.lo : shard.hi])
    assert labels.tolist()[:8] == [1, 1, 3, 3, 7, 7, 1, 1]


def test_interrupted_run_resumes_to_the_same_file(one_worker, pixel_build, tmp_path):
    out = tmp_path / "out"
    seen = []

    def stop_after_one(shard):
        seen.append(shard)
        raise KeyboardInterrupt  # as Ctrl-C in the driver after the first saved shard

    with pytest.raises(KeyboardInterrupt):
        sample_many(SampleOptions(pixel_build, **JOB, out=out, workers=2), show_progress=False, on_shard=stop_after_one)
    saved = sorted(p.name for p in (out / "shards").iterdir())
    assert saved == [f"shard-{seen[0].index:06d}.npz"] and not (out / "samples.npz").exists()

    resumed = sample_many(SampleOptions(pixel_build, **JOB, out=out, workers=2), show_progress=False)
    assert resumed.resumed == 1 and resumed.sampled == 22 - seen[0].size
    assert resumed.samples_file.read_bytes() == one_worker.samples_file.read_bytes()

    again = sample_many(SampleOptions(pixel_build, **JOB, out=out), show_progress=False)  # nothing left to do
    assert again.already_complete and again.workers == 0


def test_sigkill_of_the_driver_leaves_no_ray_processes(pixel_build, tmp_path):
    """`kill -9` of the `ddt-export sample` driver: the watchdog it started stops the local Ray it had started."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from ddt_export.scale.watchdog import descendants

    out = tmp_path / "out"
    driver = subprocess.Popen([sys.executable, "-c", "from ddt_export.cli import main; main()", "sample", str(pixel_build),
                               "--num-samples", "4000", "--batch", "4", "--steps", "40", "--workers", "1", "--out", str(out)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    deadline = time.time() + 240
    while not (out / "shards").is_dir() and driver.poll() is None and time.time() < deadline:
        time.sleep(0.5)  # the shards folder appears once Ray and the workers are up
    assert driver.poll() is None, driver.stderr.read()
    time.sleep(2)
    ray_processes = {p: t for p, t in descendants(driver.pid).items()}
    assert len(ray_processes) >= 3, ray_processes  # GCS, raylet, a worker (and the watchdog)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.time() + 30
    from ddt_export.scale.watchdog import stat

    while time.time() < deadline:
        alive = [p for p, t in ray_processes.items() if (s := stat(p)) is not None and s[1] == t]
        if not alive:
            break
        time.sleep(0.5)
    assert not alive, f"still running after the driver's SIGKILL: {alive}"
