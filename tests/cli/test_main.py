"""The CLI contract: flags, outputs, and one-line errors with exit 2 that leave nothing behind."""

import json
import shutil

import numpy as np
import pytest
import torch

from tests.conftest import rel_l2, seeded
from tests.reference.official_ddt import official_dp, official_sample


def one_line_error(r, *words):
    assert r.code == 2, (r.code, r.out, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.err
    assert "Traceback" not in r.err
    for w in words:
        assert w in lines[0], lines[0]


def test_generate_from_official_config_matches_official(cli, official, tmp_path):
    noise = seeded((2, 4, 8, 8), 3)
    np.save(tmp_path / "noise.npy", noise)
    r = cli("generate", "--config", official.config, "--ckpt", official.ckpt, "--backend", "torch", "--labels", "1,7",
            "--noise", tmp_path / "noise.npy", "--steps", 9, "--cfg", 2.5, "--interval", "0.2,0.7", "--timeshift", 2.0,
            "--recompute", "0,4,8", "--save-latents", tmp_path / "x.npy")
    assert r.code == 0, r.err
    want = official_sample(official.ema, torch.from_numpy(noise), torch.tensor([1, 7]), 10, 9, 2.5, 0.2, 0.7, 2.0, 0.05, [0, 4, 8])
    assert rel_l2(np.load(tmp_path / "x.npy"), want.numpy()) < 1e-5


def test_seed_draws_noise_like_the_official_app(cli, built, tmp_path):
    r = cli("generate", built, "--labels", "3", "--seed", 5, "--steps", 1, "--cfg", 1.0, "--save-latents", tmp_path / "a.npy")
    assert r.code == 0, r.err
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator("cpu").manual_seed(5)).numpy()
    r = cli("generate", built, "--labels", "3", "--noise", tmp_path / "n.npy", "--steps", 1, "--cfg", 1.0, "--save-latents", tmp_path / "b.npy") \
        if np.save(tmp_path / "n.npy", noise) is None else None
    assert r.code == 0, r.err
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_dp_sharing_calibrates_once_and_is_stored(cli, built, tmp_path):
    build = tmp_path / "b"
    shutil.copytree(built, build)
    r = cli("calibrate", build, "--steps", 12, "--samples", 2)
    assert r.code == 0, r.err
    manifest = json.loads((build / "manifest.json").read_text())
    (entry,) = [e for e in manifest["calibration"].values() if e["sampler"]["num_steps"] == 12]
    assert entry["samples"] == 2 and (build / entry["file"]).is_file() and (build / entry["heatmap"]).is_file()
    sim = np.load(build / entry["file"])
    assert sim.shape == (12, 12) and np.allclose(np.diag(sim), 1, atol=1e-5)
    r = cli("generate", build, "--labels", "1", "--sharing-ratio", 0.5, "--schedule", "dp", "--save-latents", tmp_path / "x.npy")
    assert r.code == 0, r.err
    assert f"encoder ran {len(official_dp(sim, 6))} times" in r.err
    np.save(tmp_path / "sim.npy", sim)
    r = cli("schedule", "--similarity", tmp_path / "sim.npy", "--budget", 6, "--json")
    assert json.loads(r.out.strip().splitlines()[-1]) == {"recompute": official_dp(sim, 6)}


def test_null_class_samples_unconditionally(cli, built, tmp_path):
    r = cli("generate", built, "--labels", "10", "--steps", 2, "--save-latents", tmp_path / "u.npy")
    assert r.code == 0, r.err and np.isfinite(np.load(tmp_path / "u.npy")).all()


def test_inspect(cli, built):
    r = cli("inspect", built)
    assert r.code == 0 and "encoder" in r.out and "decoder" in r.out and "null class 10" in r.out


def test_build_without_weights_names_the_checkpoints(cli, tmp_path):
    one_line_error(cli("build", "--res", 256, "--out", tmp_path / "x"), "--ckpt", "DDT-XL", "--random-weights")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "args,words",
    [
        (["build", "--preset", "xxl", "--random-weights"], ["unknown preset 'xxl'"]),
        (["build", "--preset", "b", "--res", 250, "--random-weights"], ["multiple of 16"]),
        (["build", "--preset", "b", "--res", 256, "--random-weights", "--precision", "fp4"], ["unknown precision"]),
        (["build", "--preset", "b", "--res", 256, "--random-weights", "--backend", "tensorrt"], ["TensorRT"]),
    ],
)
def test_bad_builds_write_nothing(cli, tmp_path, args, words):
    one_line_error(cli(*args, "--out", tmp_path / "out"), *words)
    assert list(tmp_path.iterdir()) == []


def test_bad_generate_inputs(cli, built, official, tmp_path):
    np.save(tmp_path / "n3.npy", seeded((3, 4, 8, 8), 0))
    np.save(tmp_path / "shape.npy", seeded((2, 4, 4, 4), 0))
    np.save(tmp_path / "int.npy", np.zeros((2, 4, 8, 8), np.int32))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    cases = [
        (["--labels", "11"], ["label 11", "[0, 9]"]),
        (["--labels", "-1"], ["label -1"]),
        (["--labels", "1,x"], ["comma-separated whole numbers"]),
        (["--labels", "1,2", "--noise", tmp_path / "n3.npy"], ["batch 3", "2 labels"]),
        (["--labels", "1,2", "--noise", tmp_path / "shape.npy"], ["expected (2, 4, 8, 8)"]),
        (["--labels", "1,2", "--noise", tmp_path / "int.npy"], ["float32"]),
        (["--labels", "1", "--noise", tmp_path / "junk.npy"], ["cannot read noise"]),
        (["--labels", "1", "--seed", 1, "--noise", tmp_path / "n3.npy"], ["either a seed or noise"]),
        (["--labels", "1", "--steps", 0], ["steps must be between 1 and 10,000"]),
        (["--labels", "1", "--sharing-ratio", 1.0], ["[0, 1)"]),
        (["--labels", "1", "--recompute", "1,2"], ["start at step 0"]),
        (["--labels", "1", "--recompute", "0,5,3"], ["strictly increasing"]),
        (["--labels", "1", "--recompute", "0,12"], ["out of range"]),
        (["--labels", "1", "--interval", "0.9,0.1"], ["reversed"]),
        (["--labels", "1", "--out", tmp_path / "x.png"], ["no VAE", "--vae"]),
    ]
    for args, words in cases:
        r = cli("generate", built, *args, "--save-latents", tmp_path / "out.npy")
        one_line_error(r, *words)
        assert not (tmp_path / "out.npy").exists() and not (tmp_path / "x.png").exists()
    one_line_error(cli("generate", "--config", official.config, "--ckpt", official.ckpt, "--backend", "onnxruntime", "--labels", "1",
                       "--save-latents", tmp_path / "x.npy"),
                   "ddt-export build")


def test_broken_build_folders(cli, built, tmp_path):
    one_line_error(cli("generate", tmp_path / "nothing", "--labels", "1", "--save-latents", tmp_path / "x.npy"), "no manifest.json")
    bad = tmp_path / "bad"
    shutil.copytree(built, bad)
    with open(bad / "decoder.onnx", "r+b") as f:  # flip a byte: the hash must catch it
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 0xFF]))
    one_line_error(cli("generate", bad, "--labels", "1", "--save-latents", tmp_path / "x.npy"), "decoder.onnx", "sha256", "rebuild")
    trunc = tmp_path / "trunc"
    shutil.copytree(built, trunc)
    data = (trunc / "encoder.onnx").read_bytes()
    (trunc / "encoder.onnx").write_bytes(data[: len(data) // 3])
    one_line_error(cli("generate", trunc, "--labels", "1", "--save-latents", tmp_path / "x.npy"), "encoder.onnx")
    old = tmp_path / "old"
    shutil.copytree(built, old)
    m = json.loads((old / "manifest.json").read_text())
    m["format"] = 0
    (old / "manifest.json").write_text(json.dumps(m))
    one_line_error(cli("generate", old, "--labels", "1", "--save-latents", tmp_path / "x.npy"), "incompatible", "rebuild")


def test_schedule_errors(cli, tmp_path):
    np.save(tmp_path / "sim.npy", np.eye(5, dtype=np.float32))
    one_line_error(cli("schedule", "--similarity", tmp_path / "sim.npy", "--budget", 6), "budget")
    one_line_error(cli("schedule", "--similarity", tmp_path / "sim.npy", "--budget", 0), "budget")
    one_line_error(cli("schedule", "--similarity", tmp_path / "none.npy", "--budget", 1), "cannot read similarity")


def test_mismatched_checkpoint_is_refused(cli, official, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(official.config.read_text().replace("num_blocks: 5", "num_blocks: 6"))
    r = cli("build", "--config", cfg, "--ckpt", official.ckpt, "--out", tmp_path / "o")
    one_line_error(r, "does not fit the config", "missing: blocks.5")
    assert not (tmp_path / "o").exists()
