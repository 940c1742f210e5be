"""One graph being quantised (ddt_export.quant.graph): site variants derived from the all-sites graph, float sites kept float."""

from __future__ import annotations

import numpy as np
import pytest

from ddt_export.manifest import read
from ddt_export.quant.graph import Graph
from ddt_export.quant.plan import QuantPlan
from ddt_export.quant.trajectories import record_runs
from tests.quant import matmul_inputs


@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_site_variants_derived_from_the_all_sites_graph_equal_the_quantisers_own(built, tmp_path, precision):
    """The sensitivity pass derives each site's graph from the one all-sites graph (Graph.only) instead of a
    quantiser pass per site; it must be the graph the quantiser writes for those sites, numerically."""
    import onnxruntime as ort

    from ddt_export.official import ModelSource

    m = read(built)
    src = ModelSource(m.name, m.arch, m.null_class, m.sampler, m.space)
    plan = QuantPlan(seeds=(0,), samples_per_seed=2, max_steps=4, heldout_seeds=(7,), heldout_samples=1)
    feeds = record_runs(built, src, plan, (0,), 2)
    for name in ("encoder", "decoder"):
        g = Graph(name, built / f"{name}.onnx", tmp_path, feeds[name], feeds[name][:3], precision, m.arch.num_encoder_blocks)
        full = g.quantised(list(g.sites))
        sites = list(g.sites)
        for chosen in ([], sites[:1], sites[1:3], sites[:-1], sites):
            derived, written = g.only(full, chosen), g.quantised(chosen)
            assert sorted(n.op_type for n in derived.graph.node) == sorted(n.op_type for n in written.graph.node), (name, chosen)
            a, b = (ort.InferenceSession(x.SerializeToString(), providers=["CPUExecutionProvider"]) for x in (derived, written))
            for f in g.heldout:
                want = b.run(None, f)[0]
                np.testing.assert_allclose(a.run(None, f)[0], want, rtol=0, atol=1e-6 * np.abs(want).max())


def test_a_float_site_sharing_a_graph_input_with_an_int8_site_stays_float(built, tmp_path):
    """The decoder's adaLN and final adaLN both read the graph input s; quantize_static rewires every consumer of a
    quantised graph input to its DQ, so the digits build's "float" decoder adaLN was reading int8 s."""
    from ddt_export.official import ModelSource

    m = read(built)
    src = ModelSource(m.name, m.arch, m.null_class, m.sampler, m.space)
    plan = QuantPlan(seeds=(0,), samples_per_seed=2, max_steps=3, heldout_seeds=(7,), heldout_samples=1)
    feeds = record_runs(built, src, plan, (0,), 2)["decoder"]
    g = Graph("decoder", built / "decoder.onnx", tmp_path, feeds, feeds[:1], "int8", m.arch.num_encoder_blocks)
    model = g.quantised(["final_adaln"])
    inputs = matmul_inputs(model)
    assert all(inputs[n] == ["DequantizeLinear", "DequantizeLinear"] for n in g.sites["final_adaln"])
    for site, nodes in g.sites.items():
        if site != "final_adaln":
            assert all("DequantizeLinear" not in inputs[n] for n in nodes), site
