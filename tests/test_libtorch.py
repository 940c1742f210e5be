"""`ddt-export build --libtorch`'s extra: TorchScript modules equal to eager PyTorch at any batch.

The C++ runtime that loads them is tested in tests/runtime/test_cpp_runtime.py.
"""

from types import SimpleNamespace

import pytest
import torch

from ddt_export.errors import DDTError
from ddt_export.export import example_inputs
from ddt_export.graphs import decoder_spec, encoder_spec
from ddt_export.libtorch import FORMAT, check, fp32, libtorch_extra
from ddt_export.config import DDTConfig
from ddt_export.manifest_schema import GraphEntry
from ddt_export.model import DDT, DecoderGraph, init_random

ARCH = DDTConfig(hidden_size=32, num_groups=2, num_blocks=3, num_encoder_blocks=2, num_classes=4, latent_size=4)


def graphs(precision: str) -> dict:
    return {s.name: GraphEntry(**s.to_dict()) for s in (encoder_spec(ARCH, precision), decoder_spec(ARCH, precision))}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.load: TorchScript is what LibTorch loads
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_modules_match_eager_at_other_batches(tmp_path, precision):
    model = init_random(DDT(ARCH), seed=3).eval()
    doc = SimpleNamespace(graphs=graphs(precision), libtorch=None)  # the two fields the extra reads and sets
    libtorch_extra()(tmp_path, doc, model)
    sec = doc.libtorch
    assert sec.format == FORMAT and sec.precision == "fp32" and sec.torch == torch.__version__
    assert sec.encoder.inputs == ["x", "t", "y"] and sec.decoder.inputs == ["x", "s"]
    enc = torch.jit.load(str(tmp_path / sec.encoder.file))
    dec = torch.jit.load(str(tmp_path / sec.decoder.file))
    for batch in (1, 5, 8):  # traced at 2: the CFG batch (2 x labels) must stay symbolic
        x, t, y = torch.randn(batch, 4, 4, 4), torch.rand(batch), torch.randint(0, 5, (batch,))
        with torch.no_grad():
            s = model.encode(x, t, y)
            assert torch.equal(enc(x, t, y), s)
            assert torch.equal(dec(x, s), model.decode(x, s))
    # an fp16 build's decoder declares s as float16; the LibTorch modules take fp32 s
    assert fp32(decoder_spec(ARCH, "fp16")).inputs[1].dtype == "float32"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.trace, called here on purpose
def test_check_rejects_a_module_that_differs_from_eager(tmp_path):
    model = init_random(DDT(ARCH), seed=0).eval()
    other = init_random(DDT(ARCH), seed=1).eval()
    spec = decoder_spec(ARCH)
    inputs = example_inputs(spec, other, batch=2)
    with torch.no_grad():
        torch.jit.trace(DecoderGraph(other), (inputs["x"], inputs["s"]), check_trace=False).save(str(tmp_path / "decoder.ts"))
    with pytest.raises(DDTError, match="traced decoder differs from PyTorch"):
        check(tmp_path / "decoder.ts", DecoderGraph(model), spec, model)
