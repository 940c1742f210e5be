"""Does a half-precision build survive? fp32 islands, activation magnitudes, errors vs fp32.

`ddt-export check BUILD` measures instead of guessing. On the same inputs (t at 0, near 0,
0.5, near 1 and 1: the worst cases) it runs the build's graphs and the fp32 reference
(an fp32 build's graphs with `--against`, else the fp32 PyTorch model from the build's own
weights), reports each graph's error and a whole sampling run's, the largest activation
magnitudes per site of the fp32 model (how close they come to fp16's 65504), and which
sites of each graph compute in fp32 (the islands a strongly typed TensorRT network keeps).

Half-precision graphs are run by emulation on onnxruntime's CPU provider: every fp16/bf16
tensor becomes fp32 rounded to half after the node that makes it (`Cast` to half and
back), i.e. half storage with fp32 arithmetic, which is how GPU half kernels accumulate,
with overflow to inf where they would overflow. Running the graph as is would understate
fp16 errors: onnxruntime's CPU provider has fp16 kernels for few ops and computes the rest
in fp32, keeping fp32 values between consecutive such nodes (and it has no bf16 kernels).
"""

from __future__ import annotations

import ast
import copy
import math
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnx
from rich.console import Group
from rich.table import Table
import torch
from onnx import TensorProto, helper, numpy_helper

from .errors import DDTError
from .manifest import Manifest
from .model import DDT

FP16_MAX = 65504.0
WORST_T = (0.0, 1e-3, 0.5, 0.999, 1.0)  # t = 0 is pure noise, t = 1 data: where DiTs overflow first
LAYOUT = {"Reshape", "Transpose", "Slice", "Squeeze", "Unsqueeze", "Split", "Concat", "Gather", "Expand", "Identity"}
HALF_TYPES = {TensorProto.FLOAT16: "float16", TensorProto.BFLOAT16: "bfloat16"}


# ----------------------------------------------------------------------------- graphs


def half_types(model: onnx.ModelProto) -> set[int]:
    """The half-precision element types (FLOAT16, BFLOAT16) a graph uses anywhere."""
    g = model.graph
    found = {t.data_type for t in g.initializer}
    found |= {v.type.tensor_type.elem_type for v in list(g.input) + list(g.output) + list(g.value_info)}
    found |= {a.i for n in g.node for a in n.attribute if a.name == "to"}
    found |= {a.t.data_type for n in g.node for a in n.attribute if a.type == onnx.AttributeProto.TENSOR}
    return found & set(HALF_TYPES)


def emulate_half(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with its fp16/bf16 storage emulated in fp32 (see the module docstring).

    Every half tensor becomes fp32 holding a half-representable value: each node computes
    in fp32 and its half outputs are rounded (`Cast` to half and back), so overflow to inf
    and rounding happen where a GPU kernel writing half would have them. Graph inputs and
    outputs of half type become fp32.
    """
    types = tensor_types(model)
    m = copy.deepcopy(model)
    g = m.graph
    for i, t in enumerate(g.initializer):
        if t.data_type in HALF_TYPES:
            g.initializer[i].CopyFrom(numpy_helper.from_array(_half_to_f32(t), t.name))
    nodes = []
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type in HALF_TYPES:
                a.t.CopyFrom(numpy_helper.from_array(_half_to_f32(a.t), a.t.name))
        rounded = []
        for o in n.output:
            half = _cast_to(n) if n.op_type == "Cast" else types.get(o)
            if half in HALF_TYPES:
                rounded.append((o, half))
        if n.op_type == "Cast" and _cast_to(n) in HALF_TYPES:
            next(a for a in n.attribute if a.name == "to").i = TensorProto.FLOAT  # rounded below instead
        nodes.append(n)
        for o, half in rounded:  # node -> raw fp32 -> Cast(half) -> Cast(fp32), under the original name
            raw = f"{o}__fp32"
            n.output[list(n.output).index(o)] = raw
            nodes.append(helper.make_node("Cast", [raw], [f"{o}__half"], to=half, name=f"{o}__round"))
            nodes.append(helper.make_node("Cast", [f"{o}__half"], [o], to=TensorProto.FLOAT, name=f"{o}__back"))
    del g.node[:]
    g.node.extend(nodes)
    for v in list(g.input) + list(g.output):
        if v.type.tensor_type.elem_type in HALF_TYPES:
            v.type.tensor_type.elem_type = TensorProto.FLOAT
    del g.value_info[:]
    return m


def tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """{tensor name: element type} by shape inference on a weightless copy (XL graphs pass protobuf's 2 GB)."""
    g = model.graph
    weights = [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in g.initializer]
    skeleton = helper.make_model(helper.make_graph(list(g.node), "types", list(g.input) + weights, list(g.output)),
                                 opset_imports=list(model.opset_import), ir_version=model.ir_version)
    inferred = onnx.shape_inference.infer_shapes(skeleton).graph
    return {v.name: v.type.tensor_type.elem_type for v in list(inferred.value_info) + list(inferred.input) + list(inferred.output)}


def _cast_to(node: onnx.NodeProto) -> int:
    return next(a.i for a in node.attribute if a.name == "to")


def _half_to_f32(t: onnx.TensorProto) -> np.ndarray:
    if t.data_type == TensorProto.FLOAT16:
        return numpy_helper.to_array(t).astype(np.float32)
    if t.raw_data:
        bits = np.frombuffer(t.raw_data, np.uint16)
    else:  # int32_data holds one bf16 bit pattern per element
        bits = np.asarray(t.int32_data, np.uint32).astype(np.uint16)
    return (bits.astype(np.uint32) << 16).view(np.float32).reshape(tuple(t.dims))


INLINE_LIMIT = 1_800_000_000  # bytes: larger emulated graphs go through a temporary file with external weights


def cpu_session(path: str | Path):
    """An onnxruntime CPU session for a build's graph, fp16/bf16 storage emulated (half inputs and outputs become fp32)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    model = onnx.load(str(path), load_external_data=False)
    if not half_types(model):
        return ort.InferenceSession(str(path), opts, providers=providers)  # fp32: as saved, weights read by onnxruntime
    if _has_external(model):
        onnx.load_external_data_for_model(model, str(Path(path).parent))
    model = emulate_half(model)
    if model.ByteSize() < INLINE_LIMIT:
        return ort.InferenceSession(model.SerializeToString(), opts, providers=providers)
    tmp = tempfile.TemporaryDirectory(prefix="ddt-emulated-")
    file = Path(tmp.name) / "graph.onnx"
    onnx.save(model, str(file), save_as_external_data=True, location="graph.onnx.data")
    session = ort.InferenceSession(str(file), opts, providers=providers)
    session._ddt_tmp = tmp  # the weights file lives as long as the session
    return session


def _has_external(model: onnx.ModelProto) -> bool:
    return any(t.data_location == TensorProto.EXTERNAL for t in model.graph.initializer)


def _site(node: onnx.NodeProto) -> str:
    """Which part of the model a node computes, from the exporter's module and stack metadata."""
    meta = {p.key: p.value for p in node.metadata_props}
    try:
        classes = ast.literal_eval(meta.get("pkg.torch.onnx.class_hierarchy", "[]"))
    except (ValueError, SyntaxError):
        classes = []
    module = classes[-2].rsplit(".", 1)[-1] if len(classes) >= 2 else ""
    trace = meta.get("pkg.torch.onnx.stack_trace", "").strip().splitlines()
    code = trace[-1] if trace else ""  # the innermost module's source line (free functions get no frame)
    if node.op_type in ("MatMul", "Gemm"):
        return "linear/attention matmul"
    if node.op_type in LAYOUT:
        return "layout only (reshape, transpose, slice, ...)"
    if module == "RMSNorm":
        return "RMSNorm"
    if module == "Attention" and "apply_rope(" in code:
        return "RoPE"
    if node.op_type == "LayerNormalization" or "norm_final" in code:
        return "final LayerNorm"
    if module == "TimestepEmbedder":
        return "timestep features"
    if module in ("Block", "FinalLayer") and node.op_type in ("Add", "Mul", "Sub", "Split", "Slice", "Squeeze"):
        return "residual stream, adaLN modulation, gates"
    if node.op_type == "Softmax":
        return "softmax"
    if module == "Linear":
        return "linear/attention matmul"  # the bias add
    return "other (SiLU, embeddings)"


def islands(model: onnx.ModelProto) -> dict[str, dict[str, int]]:
    """{site: {dtype name: nodes}} by each node's output dtype (Cast and shape nodes left out)."""
    g = model.graph
    types = tensor_types(model)
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for n in g.node:
        dtype = types.get(n.output[0])
        if n.op_type in ("Cast", "Shape", "Constant") or dtype not in (TensorProto.FLOAT, *HALF_TYPES):
            continue
        out[_site(n)][HALF_TYPES.get(dtype, "float32")] += 1
    return {k: dict(v) for k, v in sorted(out.items())}


def op_inventory(model: onnx.ModelProto) -> dict[str, int]:
    """{"domain::Op": count} over the main graph and any local functions."""
    counts: dict[str, int] = defaultdict(int)
    for n in list(model.graph.node) + [n for f in model.functions for n in f.node]:
        counts[f"{n.domain or 'ai.onnx'}::{n.op_type}"] += 1
    return dict(sorted(counts.items()))


# ----------------------------------------------------------------------------- activations


def activation_magnitudes(model: DDT, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> dict[str, dict]:
    """Largest |value| per site of the fp32 model on (x, t, y), with the block it occurs in."""
    peak: dict[str, dict] = {}

    def note(site: str, value: torch.Tensor, where: str) -> None:
        v = float(value.detach().abs().max())
        if site not in peak or v > peak[site]["max_abs"]:
            peak[site] = {"max_abs": v, "where": where}

    hooks = []
    for i, block in enumerate(model.blocks):
        where = f"block {i} ({'encoder' if i < model.cfg.num_encoder_blocks else 'decoder'})"

        def on_mod(mod, inp, out, where=where):
            for name, part in zip(("shift", "scale", "gate") * 2, out.chunk(6, dim=-1)):
                note(f"adaLN {name}", part, where)

        hooks += [
            block.adaLN_modulation.register_forward_hook(on_mod),
            block.attn.qkv.register_forward_hook(lambda m, i, o, w=where: note("qkv", o, w)),
            block.attn.register_forward_hook(lambda m, i, o, w=where: note("attention output", o, w)),
            block.mlp.w2.register_forward_hook(lambda m, i, o, w=where: note("MLP hidden (SwiGLU product)", i[0], w)),
            block.mlp.register_forward_hook(lambda m, i, o, w=where: note("MLP output", o, w)),
            block.register_forward_hook(lambda m, i, o, w=where: note("residual stream", o, w)),
        ]
    hooks.append(model.t_embedder.register_forward_hook(lambda m, i, o: note("timestep embedding", o, "t_embedder")))
    hooks.append(model.final_layer.register_forward_hook(lambda m, i, o: note("final layer output", o, "final_layer")))
    try:
        with torch.no_grad():
            s = model.encode(x, t, y)
            note("state s", s, "encoder output")
            note("velocity v", model.decode(x, s), "decoder output")
    finally:
        for h in hooks:
            h.remove()
    for v in peak.values():
        v["fraction_of_fp16_max"] = v["max_abs"] / FP16_MAX
    return dict(sorted(peak.items(), key=lambda kv: -kv[1]["max_abs"]))


# ----------------------------------------------------------------------------- runners


class SessionRunner:
    """The sampling loop's Runner over two plain onnxruntime CPU sessions (numpy in, numpy out)."""

    def __init__(self, encoder, decoder, names: dict[str, str], batch: int, latent_shape: Sequence[int]):
        self._enc, self._dec, self._n = encoder, decoder, names
        self.x = np.zeros((batch, *latent_shape), np.float32)
        self.t = np.zeros((batch,), np.float32)
        self.y = np.zeros((batch,), np.int64)
        self.v = np.zeros((batch, *latent_shape), np.float32)
        self.s = None
        self.nonfinite = 0  # non-finite values seen in s or v over the run

    def encode(self) -> None:
        n = self._n
        (self.s,) = self._enc.run([n["enc_s"]], {n["enc_x"]: self.x, n["enc_t"]: self.t, n["enc_y"]: self.y})
        self.nonfinite += int((~np.isfinite(np.asarray(self.s, np.float32))).sum())

    def decode(self) -> None:
        n = self._n
        (v,) = self._dec.run([n["dec_v"]], {n["dec_x"]: self.x, n["dec_s"]: self.s})
        self.v[...] = v
        self.nonfinite += int((~np.isfinite(v)).sum())

    def array(self, a: np.ndarray) -> np.ndarray:
        return a

    def host(self, a) -> np.ndarray:
        return np.asarray(a, np.float32)


class TorchRunner(SessionRunner):
    """The same Runner over the fp32 PyTorch model: the reference when no fp32 build is given."""

    def __init__(self, model: DDT, batch: int):
        self.model = model.eval()
        super().__init__(None, None, {}, batch, model.cfg.latent_shape)

    @torch.no_grad()
    def encode(self) -> None:
        self.s = self.model.encode(torch.from_numpy(self.x), torch.from_numpy(self.t), torch.from_numpy(self.y))

    @torch.no_grad()
    def decode(self) -> None:
        self.v[...] = self.model.decode(torch.from_numpy(self.x), self.s).numpy()


def _names(m: Manifest) -> dict[str, str]:
    from .backends.roles import Roles

    r = Roles.of(m)
    return {k: getattr(r, k) for k in ("enc_x", "enc_t", "enc_y", "enc_s", "dec_x", "dec_s", "dec_v")}


def reference_model(m: Manifest) -> DDT:
    from .official import load_weights, read_weights

    path = m.path(m.data["weights_file"])
    return load_weights(DDT(m.arch), read_weights(path), str(path)).eval()


# ----------------------------------------------------------------------------- the check


def _err(got: np.ndarray, want: np.ndarray) -> dict:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    finite = bool(np.isfinite(got).all())
    diff = np.abs(got - want) if finite else np.full_like(want, np.inf)
    peak = max(float(np.abs(want).max()), 1e-12)
    return {
        "max_abs_error": float(diff.max()),
        "max_rel_error": float(diff.max()) / peak,  # max |got - want| / max |want|, as the build's check
        "rel_l2_error": float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-12)) if finite else math.inf,
        "finite": finite,
        "max_abs_output": float(np.nanmax(np.abs(np.where(np.isfinite(got), got, np.nan)))) if np.isfinite(got).any() else math.nan,
    }


def worst_case_inputs(m: Manifest, per_t: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """x ~ N(0, 1) (times 3 on half of them: large latents near t = 1), t at WORST_T, labels with the null class."""
    g = torch.Generator().manual_seed(seed)
    ts = np.repeat(np.asarray(WORST_T, np.float32), per_t)
    B = len(ts)
    x = torch.randn((B, *m.arch.latent_shape), generator=g).numpy()
    x[1::2] *= 3.0
    y = np.where(np.arange(B) % 2 == 0, m.null_class, torch.randint(0, m.arch.num_classes, (B,), generator=g).numpy()).astype(np.int64)
    return {"x": x.astype(np.float32), "t": ts, "y": y}

def _fmt(v: float) -> str:
    return f"{v:.2e}"


def render(report: dict) -> Group:
    head = Table.grid(padding=(0, 2))
    head.add_row("[bold]build[/]", f"{report['build']} ({report['precision']})")
    head.add_row("[bold]reference[/]", report["reference"])
    if report["emulated"]:
        head.add_row("[bold]note[/]", report["emulated"])
    errors = Table(title="error vs fp32 (rel = max|err| / max|fp32|)", title_justify="left")
    for col in ("graph", "t", "max abs", "max rel", "rel L2", "finite", "max |out|"):
        errors.add_column(col, justify="right" if col not in ("graph",) else "left")
    for name, e in report["graphs"].items():
        errors.add_row(name, "all", _fmt(e["max_abs_error"]), _fmt(e["max_rel_error"]), _fmt(e["rel_l2_error"]), str(e["finite"]), _fmt(e["max_abs_output"]))
    for row in report["per_t"]:
        for name in ("encoder", "decoder"):
            e = row[name]
            errors.add_row(f"  {name}", f"{row['t']:g}", _fmt(e["max_abs_error"]), _fmt(e["max_rel_error"]), _fmt(e["rel_l2_error"]), str(e["finite"]), _fmt(e["max_abs_output"]))
    r = report["sampling_run"]
    errors.add_row(f"sampling run ({r['steps']} steps, batch {r['batch']}, cfg {r['guidance']:g})", "0->1", _fmt(r["max_abs_error"]),
                   _fmt(r["max_rel_error"]), _fmt(r["rel_l2_error"]), str(r["finite"] and r["nonfinite_values_seen"] == 0), _fmt(r["max_abs_output"]))
    mags = Table(title="largest activations of the fp32 model on the same inputs (fp16 max 65504)", title_justify="left")
    for col in ("site", "max |value|", "of fp16 max", "where"):
        mags.add_column(col, justify="right" if col in ("max |value|", "of fp16 max") else "left")
    for site, m in report["activation_magnitudes"].items():
        mags.add_row(site, _fmt(m["max_abs"]), f"{m['fraction_of_fp16_max']:.1e}", m["where"])
    isl = Table(title="nodes per site by the dtype they compute in (fp32 islands)", title_justify="left")
    for col in ("site", "encoder", "decoder"):
        isl.add_column(col)
    sites = sorted(set(report["fp32_islands"]["encoder"]) | set(report["fp32_islands"]["decoder"]))
    fmt = lambda d: ", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "-"  # noqa: E731
    for site in sites:
        isl.add_row(site, fmt(report["fp32_islands"]["encoder"].get(site, {})), fmt(report["fp32_islands"]["decoder"].get(site, {})))
    return Group(head, errors, mags, isl)




def check(
    build_dir: str | Path,
    against: str | Path | None = None,
    *,
    steps: int | None = None,
    batch: int = 2,
    seed: int = 0,
    progress: Callable[[str], None] = lambda msg: None,
) -> dict:
    """The whole report as a JSON-ready dict (see the module docstring)."""
    from .manifest import read
    from .pipeline import seeded_noise
    from .sampler import sample

    m = read(build_dir)
    ref_m = read(against) if against is not None else None
    if ref_m is not None:
        if ref_m.precision != "fp32":
            raise DDTError(f"--against {against} is a {ref_m.precision} build; give an fp32 build of the same model")
        if ref_m.data["model"]["architecture"] != m.data["model"]["architecture"]:
            raise DDTError(f"--against {against} is a different architecture than {build_dir}; build both from the same model")
    names = _names(m)
    progress("loading graphs")
    enc, dec = cpu_session(m.path(m.graph("encoder").file)), cpu_session(m.path(m.graph("decoder").file))
    model = reference_model(m)
    if ref_m is not None:
        ref_names = _names(ref_m)
        ref_enc, ref_dec = cpu_session(ref_m.path(ref_m.graph("encoder").file)), cpu_session(ref_m.path(ref_m.graph("decoder").file))

        def ref_encode(x, t, y):
            return ref_enc.run([ref_names["enc_s"]], {ref_names["enc_x"]: x, ref_names["enc_t"]: t, ref_names["enc_y"]: y})[0]

        def ref_decode(x, s):
            return ref_dec.run([ref_names["dec_v"]], {ref_names["dec_x"]: x, ref_names["dec_s"]: s})[0]
    else:

        def ref_encode(x, t, y):
            with torch.no_grad():
                return model.encode(*map(torch.from_numpy, (x, t, y))).numpy()

        def ref_decode(x, s):
            with torch.no_grad():
                return model.decode(torch.from_numpy(x), torch.from_numpy(s)).numpy()

    inp = worst_case_inputs(m, seed=seed)
    progress("running the graphs on worst-case inputs")
    s_ref = ref_encode(inp["x"], inp["t"], inp["y"])
    (s_got,) = enc.run([names["enc_s"]], {names["enc_x"]: inp["x"], names["enc_t"]: inp["t"], names["enc_y"]: inp["y"]})
    v_ref = ref_decode(inp["x"], s_ref)
    # The decoder alone: fed the reference state (rounded to the build's state dtype), so only its own error shows.
    (v_got,) = dec.run([names["dec_v"]], {names["dec_x"]: inp["x"], names["dec_s"]: _as_state(s_ref, m)})
    (v_chain,) = dec.run([names["dec_v"]], {names["dec_x"]: inp["x"], names["dec_s"]: s_got})
    per_t = []
    for t in WORST_T:
        rows = inp["t"] == np.float32(t)
        per_t.append({"t": t, "encoder": _err(s_got[rows], s_ref[rows]), "decoder": _err(v_got[rows], v_ref[rows]),
                      "encoder+decoder": _err(v_chain[rows], v_ref[rows])})
    graphs = {"encoder": _err(s_got, s_ref), "decoder": _err(v_got, v_ref), "encoder+decoder": _err(v_chain, v_ref)}

    progress("measuring activation magnitudes")
    magnitudes = activation_magnitudes(model, *map(torch.from_numpy, (inp["x"], inp["t"], inp["y"])))

    settings = m.sampler.with_overrides(num_steps=steps or min(m.sampler.num_steps, 50))
    noise = seeded_noise(batch, m.arch.latent_shape, seed)
    labels = [int(v) for v in torch.randint(0, m.arch.num_classes, (batch,), generator=torch.Generator().manual_seed(seed))]
    every = list(range(settings.num_steps))  # the encoder at every step: sharing does not change precision
    progress(f"sampling {settings.num_steps} steps with the {m.precision} graphs")
    got_run = SessionRunner(enc, dec, names, 2 * batch, m.arch.latent_shape)
    got = sample(got_run, noise, labels, m.null_class, settings, every)
    progress(f"sampling {settings.num_steps} steps with the fp32 reference")
    if ref_m is not None:
        want = sample(SessionRunner(ref_enc, ref_dec, ref_names, 2 * batch, m.arch.latent_shape), noise, labels, m.null_class, settings, every)
    else:
        want = sample(TorchRunner(model, 2 * batch), noise, labels, m.null_class, settings, every)
    run = {**_err(got, want), "nonfinite_values_seen": got_run.nonfinite, "steps": settings.num_steps, "batch": batch,
           "guidance": settings.guidance, "labels": labels, "noise_seed": seed}
    return {
        "build": str(m.root),
        "precision": m.precision,
        "emulated": f"{m.precision} storage emulated on onnxruntime CPU: fp32 arithmetic, every {m.precision} tensor rounded" if m.precision != "fp32" else None,
        "reference": f"fp32 graphs of {ref_m.root}" if ref_m is not None else "fp32 PyTorch model from the build's weights",
        "worst_case_t": list(WORST_T),
        "graphs": graphs,
        "per_t": per_t,
        "sampling_run": run,
        "activation_magnitudes": magnitudes,
        "fp32_islands": {name: islands(onnx.load(str(m.path(m.graph(name).file)), load_external_data=False)) for name in ("encoder", "decoder")},
    }


def _as_state(s: np.ndarray, m: Manifest) -> np.ndarray:
    """The reference state rounded as the build stores it, kept in fp32 for the emulated graph."""
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(m.precision)
    s = torch.from_numpy(np.ascontiguousarray(s, np.float32))
    return (s.to(dtype) if dtype is not None else s).float().numpy()
