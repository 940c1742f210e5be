"""Reading what users have: official YAML configs and checkpoints, and refusing what is unsafe or wrong."""

import collections

import pytest
import torch
from safetensors.torch import save_file

from ddt_export.errors import DDTError
from ddt_export.model import DDT
from ddt_export.official import load_weights, read_config, read_weights
from tests.conftest import ARCH, SAMPLER


def test_official_yaml_with_anchors(official):
    src = read_config(official.config)
    assert src.arch.hidden_size == ARCH["hidden_size"] and src.arch.latent_size == 8
    assert src.null_class == ARCH["num_classes"]
    assert src.sampler.num_steps == SAMPLER["num_steps"] and src.sampler.guidance == SAMPLER["guidance"]
    assert (src.sampler.interval_min, src.sampler.interval_max) == (SAMPLER["interval_min"], SAMPLER["interval_max"])
    assert src.sampler.last_step == SAMPLER["last_step"] and src.sampler.timeshift == SAMPLER["timeshift"]


def test_yaml_with_python_tags_is_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(DDTError, match="not safe YAML"):
        read_config(bad)


def test_yaml_missing_sections(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model: {denoiser: {init_args: {hidden_size: 64}}}\n")
    with pytest.raises(DDTError, match="model.denoiser.init_args.in_channels: Field required"):
        read_config(p)


def test_ema_by_default_raw_on_request(official):
    ema, raw = read_weights(official.ckpt), read_weights(official.ckpt, ema=False)
    key = "blocks.0.attn.qkv.weight"
    assert torch.equal(ema[key], official.ema.state_dict()[key])
    assert torch.equal(raw[key], official.raw.state_dict()[key])


def test_safetensors_with_bare_keys(tmp_path, official):
    path = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in official.ema.state_dict().items()}, str(path))
    state = read_weights(path)
    model = load_weights(DDT(read_config(official.config).arch), state, str(path))
    assert torch.equal(model.state_dict()["final_layer.linear.weight"], official.ema.state_dict()["final_layer.linear.weight"])


class Custom:  # a class the safe unpickler will not reconstruct
    pass


def test_pickle_needing_full_unpickling_is_refused_unless_trusted(tmp_path, official):
    path = tmp_path / "custom.ckpt"
    sd = {f"ema_denoiser.{k}": v for k, v in official.ema.state_dict().items()}
    torch.save({"state_dict": sd, "hyper_parameters": Custom()}, path)
    with pytest.raises(DDTError, match="arbitrary code.*--trust-checkpoint"):
        read_weights(path)
    assert "blocks.0.norm1.weight" in read_weights(path, trust=True)


def test_truncated_and_corrupt_checkpoints(tmp_path, official):
    data = official.ckpt.read_bytes()
    (tmp_path / "trunc.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(DDTError, match="truncated or corrupt"):
        read_weights(tmp_path / "trunc.ckpt")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(DDTError, match="truncated or corrupt"):
        read_weights(tmp_path / "junk.safetensors")
    with pytest.raises(DDTError, match="does not exist"):
        read_weights(tmp_path / "nope.ckpt")


def test_key_problems_are_listed_never_partially_loaded(official):
    arch = read_config(official.config).arch
    good = read_weights(official.ckpt)
    missing = dict(good)
    del missing["blocks.1.mlp.w1.weight"]
    extra = {**good, "blocks.9.norm1.weight": torch.ones(64)}
    shaped = {**good, "y_embedder.embedding_table.weight": torch.zeros(1001, 64)}
    for state, words in ((missing, "1 missing: blocks.1.mlp.w1.weight"), (extra, "1 unexpected: blocks.9.norm1.weight"),
                         (shaped, "mis-shaped.*y_embedder.embedding_table.weight \\(1001, 64\\) vs \\(11, 64\\)")):
        model = DDT(arch)
        before = collections.OrderedDict((k, v.clone()) for k, v in model.state_dict().items())
        with pytest.raises(DDTError, match=words):
            load_weights(model, state, "ckpt")
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
