"""--backend auto on an int8 build: the runtime measured faster on this host, measured once per build, CPU and versions."""

from __future__ import annotations

import json
import math

import pytest

from ddt_export.backends import probe, resolve_name
from ddt_export.manifest import read


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DDT_EXPORT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / probe.CACHE_FILE


def fake(seconds: dict, calls: list):
    def measure(name, manifest):
        calls.append(name)
        return seconds[name]
    return measure


@pytest.mark.parametrize("winner", probe.CANDIDATES)
def test_auto_picks_the_faster_runtime_and_measures_it_once(built_int8, cache, winner):
    m, calls = read(built_int8), []
    seconds = {name: (0.1 if name == winner else 0.3) for name in probe.CANDIDATES}
    assert probe.fastest(m, fake(seconds, calls)) == winner
    assert sorted(calls) == sorted(probe.CANDIDATES)
    assert probe.fastest(m, fake(seconds, calls)) == winner and len(calls) == len(probe.CANDIDATES)  # the cache answered
    entry = json.loads(cache.read_text())[probe.host_key(m)]
    assert entry == {"backend": winner, "seconds_per_call_pair": seconds}


def test_another_cpu_measures_again(built_int8, cache, monkeypatch):
    m, calls = read(built_int8), []
    probe.fastest(m, fake({"onnxruntime": 1.0, "openvino": 2.0}, calls))
    monkeypatch.setattr(probe, "cpu_name", lambda: "Some Other CPU")
    assert probe.fastest(m, fake({"onnxruntime": 2.0, "openvino": 1.0}, calls)) == "openvino"
    assert len(calls) == 4 and len(json.loads(cache.read_text())) == 2  # both hosts remembered


@pytest.mark.parametrize("junk", ["{", "[1, 2]", '{"x": 1', "\\u0000", '{"KEY": {"backend": "torch"}}'])
def test_an_unreadable_cache_is_measured_again_and_rewritten(built_int8, cache, junk):
    m, calls = read(built_int8), []
    cache.parent.mkdir(parents=True)
    cache.write_text(junk.replace("KEY", probe.host_key(m)))
    assert probe.fastest(m, fake({"onnxruntime": 1.0, "openvino": 2.0}, calls)) == "onnxruntime" and len(calls) == 2
    assert json.loads(cache.read_text())[probe.host_key(m)]["backend"] == "onnxruntime"


def test_a_cache_that_cannot_be_written_costs_a_probe_not_the_run(built_int8, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("DDT_EXPORT_CACHE", str(blocker / "cache"))  # a path under a regular file: ENOTDIR
    said = []
    assert probe.fastest(read(built_int8), fake({"onnxruntime": 2.0, "openvino": 1.0}, []), say=said.append) == "openvino"
    assert any("could not remember" in line for line in said)


def test_auto_probes_int8_builds_only(built_int8, built, monkeypatch):
    asked = []
    monkeypatch.setattr(probe, "fastest", lambda m, measure, say=None: asked.append(m.precision) or "openvino")
    assert resolve_name("auto", read(built_int8)) == "openvino"
    assert resolve_name("auto", read(built)) == "onnxruntime"
    assert resolve_name("onnxruntime", read(built_int8)) == "onnxruntime"  # a named backend is never second-guessed
    assert asked == ["int8"]


def test_the_real_probe_times_every_candidate_on_the_build(built_int8, cache):
    from ddt_export.backends import backend_class

    m = read(built_int8)
    measure = lambda name, manifest: probe.time_calls(backend_class(name)(manifest))  # noqa: E731  (as resolve_name measures)
    for name in probe.CANDIDATES:
        seconds = measure(name, m)
        assert math.isfinite(seconds) and seconds > 0
    assert probe.fastest(m, measure) in probe.CANDIDATES
    assert set(json.loads(cache.read_text())[probe.host_key(m)]["seconds_per_call_pair"]) == set(probe.CANDIDATES)
