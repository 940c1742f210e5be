"""`ddt-export check BUILD`: does a half-precision build survive? Errors vs fp32, activation magnitudes, fp32 islands.

It measures instead of guessing. On the same inputs (t at 0, near 0, 0.5, near 1 and 1: the
worst cases) it runs the build's graphs and the fp32 reference (an fp32 build's graphs with
`--against`, else the fp32 PyTorch model from the build's own weights), reports each graph's
error and a whole sampling run's, the largest activation magnitudes per site of the fp32
model (how close they come to fp16's 65504), and which sites of each graph compute in fp32
(the islands a strongly typed TensorRT network keeps). Both sides run on the real backends
and the real sampling loop: the build on onnxruntime with half storage emulated the way GPU
kernels store it (half.py), the reference on torch or onnxruntime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnx
import torch
from rich.console import Group
from rich.table import Table

from ..backends.onnxruntime_backend import OnnxRuntimeBackend
from ..backends.torch_backend import TorchBackend
from ..errors import DDTError
from ..manifest import Manifest, read
from ..metrics import error_report
from ..model import DDT
from ..class_names import label_ids
from ..pipeline import check_labels, seeded_noise
from ..sampler import SamplerSettings, sample
from .half import islands

FP16_MAX = 65504.0
WORST_T = (0.0, 1e-3, 0.5, 0.999, 1.0)  # t = 0 is pure noise, t = 1 data: where DiTs overflow first


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


# ----------------------------------------------------------------------------- the check


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




def graph_outputs(runner, inp: dict, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(s, v) of one runner on the worst-case inputs: the encoder's state, and the decoder's velocity on `state`
    (the runner's own s when None), each read back as float32."""
    runner.x[...], runner.t[...], runner.y[...] = (runner.array(inp[k]) for k in ("x", "t", "y"))
    runner.encode()
    s = runner.host(runner.s).copy()
    if state is not None:
        runner.s[...] = runner.array(state)  # into the buffer the decoder reads
    runner.decode()
    return s, runner.host(runner.v).copy()


def check(
    build_dir: str | Path,
    against: str | Path | None = None,
    *,
    steps: int | None = None,
    batch: int | None = None,
    seed: int = 0,
    sampler: str | None = None,
    order: int | None = None,
    labels: Sequence[int | str] | None = None,
    progress: Callable[[str], None] = lambda msg: None,
) -> dict:
    """The whole report as a JSON-ready dict (see the module docstring); the sampling run uses the build's sampler
    (or `sampler`/`order`) at `steps` (default: the build's, at most 50), on `labels` (ids or names; default: `batch`
    labels drawn from `seed`, batch 2)."""
    m, ref_m = _builds(build_dir, against)
    if labels is not None:
        labels = list(check_labels(label_ids(labels, m.class_names, "--labels"), m.arch, m.null_class))
        if batch is not None and batch != len(labels):
            raise DDTError(f"--batch {batch} but {len(labels)} --labels; give one of them (the run samples one image per label)")
    batch = len(labels) if labels is not None else 2 if batch is None else batch
    settings = m.sampler.with_overrides(num_steps=min(m.sampler.num_steps, 50) if steps is None else steps, sampler=sampler, order=order)
    progress("loading graphs")
    got_backend = OnnxRuntimeBackend(m, emulate_half=True)
    model = m.load_model()
    ref_backend = OnnxRuntimeBackend(ref_m) if ref_m is not None else TorchBackend(model)

    inp = worst_case_inputs(m, seed=seed)
    progress("running the graphs on worst-case inputs")
    graphs, per_t = graph_errors(got_backend, ref_backend, inp, m)

    progress("measuring activation magnitudes")
    magnitudes = activation_magnitudes(model, *map(torch.from_numpy, (inp["x"], inp["t"], inp["y"])))
    run = sampling_run(got_backend, ref_backend, m, settings, batch, seed, progress, labels)
    return {
        "build": str(m.root),
        "precision": m.precision,
        "emulated": f"{m.precision} storage emulated on onnxruntime CPU: fp32 arithmetic, every {m.precision} tensor rounded" if m.precision in ("fp16", "bf16") else None,
        "reference": f"fp32 graphs of {ref_m.root}" if ref_m is not None else "fp32 PyTorch model from the build's weights",
        "worst_case_t": list(WORST_T),
        "graphs": graphs,
        "per_t": per_t,
        "sampling_run": run,
        "activation_magnitudes": magnitudes,
        "fp32_islands": {name: islands(onnx.load(str(m.path(m.graph(name).file)), load_external_data=False)) for name in ("encoder", "decoder")},
    }


def _builds(build_dir: str | Path, against: str | Path | None) -> tuple[Manifest, Manifest | None]:
    """(the build checked, the fp32 build it is checked against or None), refused when they cannot be compared."""
    m = read(build_dir)
    ref_m = read(against) if against is not None else None
    if ref_m is not None:
        if ref_m.precision != "fp32":
            raise DDTError(f"--against {against} is a {ref_m.precision} build; give an fp32 build of the same model")
        if ref_m.arch != m.arch:
            raise DDTError(f"--against {against} is a different architecture than {build_dir}; build both from the same model")
    return m, ref_m


def graph_errors(got_backend, ref_backend, inp: dict, m: Manifest) -> tuple[dict, list[dict]]:
    """({graph: error report} over every worst-case input, [the same per worst-case t]); the decoder also as chained."""
    B = len(inp["t"])
    ref_runner, got_runner = ref_backend.runner(B), got_backend.runner(B)
    s_ref, v_ref = graph_outputs(ref_runner, inp)
    s_got, v_chain = graph_outputs(got_runner, inp)
    # The decoder alone: fed the reference state (rounded to the build's state dtype), so only its own error shows.
    _, v_got = graph_outputs(got_runner, inp, state=_as_state(s_ref, m))
    per_t = []
    for t in WORST_T:
        rows = inp["t"] == np.float32(t)
        per_t.append({"t": t, "encoder": error_report(s_got[rows], s_ref[rows]), "decoder": error_report(v_got[rows], v_ref[rows]),
                      "encoder+decoder": error_report(v_chain[rows], v_ref[rows])})
    graphs = {"encoder": error_report(s_got, s_ref), "decoder": error_report(v_got, v_ref), "encoder+decoder": error_report(v_chain, v_ref)}
    return graphs, per_t


def sampling_run(got_backend, ref_backend, m: Manifest, settings: SamplerSettings, batch: int, seed: int,
                 progress: Callable[[str], None], labels: Sequence[int] | None = None) -> dict:
    """A whole sampling run of the build against the reference, the encoder at every step, non-finite values counted;
    `labels` None: drawn from `seed`."""
    noise = seeded_noise(batch, m.arch.latent_shape, seed)
    if labels is None:
        labels = [int(v) for v in torch.randint(0, m.arch.num_classes, (batch,), generator=torch.Generator().manual_seed(seed))]
    every = list(range(settings.num_steps))  # the encoder at every step: sharing does not change precision
    progress(f"sampling {settings.num_steps} steps with the {m.precision} graphs")
    run_runner, nonfinite = got_backend.runner(2 * batch), [0]

    def count(i: int) -> None:  # non-finite values seen in s or v over the run
        nonfinite[0] += int((~np.isfinite(run_runner.host(run_runner.s))).sum() + (~np.isfinite(run_runner.host(run_runner.v))).sum())

    got = sample(run_runner, noise, labels, m.null_class, settings, every, count)
    progress(f"sampling {settings.num_steps} steps with the fp32 reference")
    want = sample(ref_backend.runner(2 * batch), noise, labels, m.null_class, settings, every)
    return {**error_report(got, want), "nonfinite_values_seen": nonfinite[0], "steps": settings.num_steps, "batch": batch,
            "sampler": settings.sampler, "order": settings.order, "guidance": settings.guidance, "labels": labels, "noise_seed": seed}


def _as_state(s: np.ndarray, m: Manifest) -> np.ndarray:
    """The reference state rounded as the build stores it, kept in fp32 for the emulated graph."""
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(m.precision)
    s = torch.from_numpy(np.ascontiguousarray(s, np.float32))
    return (s.to(dtype) if dtype is not None else s).float().numpy()
