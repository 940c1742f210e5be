"""Where the quantisable matmuls sit and which stay float (ddt_export.quant.sites); the choice is tested on plain dicts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ddt_export.quant.sites import SITES, SiteChoice, SiteRules, choose_float_sites, choose_sites, median_error, site_nodes

# five sites quantised alone: relative L2 error (median 1.1e-2, d is 2.3x it) and max relative error
ALONE = {"a": 1.0e-2, "b": 1.1e-2, "c": 0.9e-2, "d": 2.5e-2, "e": 1.6e-2}
ALONE_MAX = {"a": 0.02, "b": 0.08, "c": 0.01, "d": 0.30, "e": 0.05}
SITE_ORDER = ["e", "a", "d", "b", "c"]  # the graph's order, which the quantised list keeps


class Measured:
    """A stand-in for the graph measurement: the max error of a set of quantised sites is the sum of theirs alone."""

    def __init__(self, alone_max: dict[str, float] = ALONE_MAX):
        self.alone_max, self.calls = alone_max, []

    def __call__(self, quantised: list[str]) -> float:
        self.calls.append(list(quantised))
        return sum(self.alone_max[s] for s in quantised)


def test_every_matmul_of_both_graphs_belongs_to_one_named_site(built):
    import onnx

    from ddt_export.manifest import read

    m = read(built)
    arch = m.arch
    want = {
        "encoder": {"timestep_embedder": 2, "patch_embedding": 1, **{s: arch.num_encoder_blocks for s in (
            "encoder_adaln", "qkv", "attention_scores", "attention_values", "attention_proj", "swiglu_w2")},
            "swiglu_w1_w3": 2 * arch.num_encoder_blocks},
        "decoder": {"patch_embedding": 1, "final_adaln": 1, "final_linear": 1, **{s: arch.num_decoder_blocks for s in (
            "decoder_adaln", "qkv", "attention_scores", "attention_values", "attention_proj", "swiglu_w2")},
            "swiglu_w1_w3": 2 * arch.num_decoder_blocks},
    }
    for name in ("encoder", "decoder"):
        sites = site_nodes(onnx.load(str(built / f"{name}.onnx")), arch.num_encoder_blocks)
        assert {s: len(v) for s, v in sites.items()} == want[name]
        assert set(sites) <= set(SITES)


def test_the_site_choice_needs_neither_onnx_nor_torch():
    code = "import sys, ddt_export.quant.sites; print(sorted(m for m in ('onnx', 'torch', 'onnxruntime') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", out


def test_float_sites_are_the_sensitivity_outliers():
    alone = {"a": 1.0e-2, "b": 1.1e-2, "c": 0.9e-2, "d": 2.5e-2, "e": 1.6e-2}  # median 1.1e-2
    assert choose_float_sites(alone, 1.5) == ["d"]
    assert choose_float_sites(alone, 1.4) == ["d", "e"]
    assert choose_float_sites({}, 1.5) == []


def test_the_median_of_an_even_count_is_the_mean_of_the_middle_two():
    assert median_error({"a": 1.0, "b": 4.0, "c": 2.0, "d": 3.0}) == 2.5
    assert choose_float_sites({"a": 1.0, "b": 4.0, "c": 2.0, "d": 3.0}, 1.5) == ["b"]  # 4 >= 1.5 x 2.5, 3 is not


def test_ratio_rule_alone_when_the_rest_meet_the_max_error_bound():
    measure = Measured()
    choice = choose_sites(SITE_ORDER, ALONE, ALONE_MAX, SiteRules(threshold=1.5, max_rel=0.2), measure)
    assert choice == SiteChoice(float_sites=["d"], quantised=["e", "a", "b", "c"], guarded=[])
    assert measure.calls == [["e", "a", "b", "c"]]  # the rest measured once, together


def test_the_guard_sends_the_largest_max_error_float_until_the_bound_holds():
    measure, told = Measured(), []
    choice = choose_sites(SITE_ORDER, ALONE, ALONE_MAX, SiteRules(threshold=1.5, max_rel=0.1), measure,
                          on_guard=lambda site, error: told.append((site, error)))
    # e, a, b, c quantised: 0.16 > 0.1, so b (largest max error alone, 0.08) goes float; e, a, c: 0.08 <= 0.1
    assert choice.float_sites == ["b", "d"] and choice.quantised == ["e", "a", "c"]
    assert choice.guarded == [{"site": "b", "max_rel_error_before": pytest.approx(0.16)}]
    assert [s for s, _ in told] == ["b"] and told[0][1] == pytest.approx(0.16)
    assert measure.calls == [["e", "a", "b", "c"], ["e", "a", "c"]]
    assert choice.by_guard("b") and not choice.by_guard("d")
    # what the manifest's record checks: the rule's choice plus the guard's additions
    assert sorted(choice.float_sites) == sorted(choose_float_sites(ALONE, 1.5) + [g["site"] for g in choice.guarded])


def test_the_guard_can_send_every_site_float_and_never_measures_an_empty_set():
    measure = Measured({s: 1.0 for s in ALONE})
    choice = choose_sites(SITE_ORDER, ALONE, {"a": 0.5, "b": 0.4, "c": 0.3, "d": 0.2, "e": 0.1}, SiteRules(max_rel=0.1), measure)
    assert choice.quantised == [] and choice.float_sites == sorted(ALONE)
    assert [g["site"] for g in choice.guarded] == ["a", "b", "c", "e"]  # d was float by the ratio rule already
    assert [] not in measure.calls


def test_forced_float_sites_replace_both_rules_and_nothing_is_measured():
    measure = Measured()
    choice = choose_sites(SITE_ORDER, ALONE, ALONE_MAX, SiteRules(max_rel=0.0, forced=("c", "e", "not-a-site")), measure)
    assert choice == SiteChoice(float_sites=["e", "c"], quantised=["a", "d", "b"], guarded=[])  # in site order
    assert measure.calls == []


def test_the_ratio_rule_compares_only_the_graphs_own_sites():
    # a site of another graph in the dicts does not move this graph's median
    choice = choose_sites(["a", "b", "c"], {**ALONE, "x": 1.0}, {**ALONE_MAX, "x": 1.0}, SiteRules(threshold=1.05), Measured())
    assert choice.float_sites == ["b"]  # median of a, b, c is 1.0e-2; b is 1.1x it
