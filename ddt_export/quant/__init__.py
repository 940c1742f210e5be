"""W8A8 post-training quantisation of a build's two graphs: the entry points `quantize_graphs` and `summary`.

int8 serves CPUs and TensorRT, fp8 e4m3 TensorRT on Ada/Hopper. The quantiser is
onnxruntime.quantization (`quantize_static`, QDQ format): it ships with the runtime ddt-export
already depends on, measures activation ranges on the CPU, and writes standard-domain
QuantizeLinear/DequantizeLinear pairs that onnxruntime, OpenVINO and TensorRT all read. It is set
up the way TensorRT's explicit quantisation wants it and the way NVIDIA Model Optimizer's ONNX PTQ
drives the same function: activation ranges by max |x| (onnxruntime's MinMax method, what those
tools call max calibration), symmetric int8 activations per tensor, symmetric int8 weights per
output channel, only MatMul/Gemm inputs quantised, biases left in float. fp8 follows Model
Optimizer's recipe for fp8 from such an int8 graph: every scale times 127/448 (amax/448, e4m3's
largest value) and the weights re-quantised from the fp32 weights (fp8.py).

Before int8, SmoothQuant is folded into a copy of the weights (smoothing.py): large activation
channels are scaled down and the matching weight columns up, exactly, so per-tensor activation
scales stop wasting their range; the graphs quantised are exported from that copy.

The range data are the model's own sampling trajectories (trajectories.py): the encoder and
decoder inputs of every step of full CFG runs (both halves, several seeds and classes), recorded
from the build's fp32 graphs, because activation ranges move with t. A second, held-out set of runs
(other seeds and classes) measures each quantisable site's sensitivity (sites.py): the graph's
error against fp32 with only that site quantised. Sites far more sensitive than the median site
stay in float, then more go float while the graph's max error is too large (`sites.choose_sites`);
the manifest records every number (record.py). A float site can still go int8 per token
(per_token.py): int8 weights per output channel (NNCF's compress_weights) with activations
quantised per token and channel group at run time by OpenVINO, where one per-tensor scale fails;
onnxruntime runs those matmuls in fp32 over the same int8-rounded weights. Each site's variant is derived from the one
all-sites graph (graph.Graph.only) instead of a quantiser pass per site; the saved graph is written
by the quantiser itself. run.py takes these steps in order; plan.py holds what they are run with.

Both entry points load on first use, so `ddt_export.quant.sites` imports neither onnx nor torch.
"""

__all__ = ["QuantPlan", "quantize_graphs", "summary"]


def __getattr__(name: str):
    if name == "quantize_graphs":
        from .run import quantize_graphs

        return quantize_graphs
    if name == "summary":
        from .record import summary

        return summary
    if name == "QuantPlan":
        from .plan import QuantPlan

        return QuantPlan
    raise AttributeError(f"module 'ddt_export.quant' has no attribute {name!r}")
