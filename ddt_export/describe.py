"""`ddt-export inspect`: a manifest as a person reads it."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table

from .manifest import Manifest


def render(m: Manifest) -> Group:
    d = m.doc
    arch = d.model.architecture
    head = Table.grid(padding=(0, 2))
    for k, v in (
        ("build", f"{m.name}  ({m.root})"),
        ("model", f"{arch.num_encoder_blocks} encoder + {arch.num_blocks - arch.num_encoder_blocks} decoder blocks, "
                  f"hidden {arch.hidden_size}, {arch.num_groups} heads, patch {arch.patch_size}, "
                  + (f"{d.model.parameters / 1e6:.1f}M parameters" if d.model.parameters is not None else "parameters not recorded")),
        ("latent", f"{d.model.latent_shape} ({d.model.space} space), {d.model.num_classes} classes, null class {d.model.null_class}"),
        ("weights", d.model.weights),
        ("sampler", ", ".join(f"{k}={v}" for k, v in d.sampler.model_dump().items())),
        ("precision", f"{d.precision}, opset {d.opset}"),
        ("tools", ", ".join(f"{k} {v}" for k, v in d.tools.items())),
    ):
        head.add_row(f"[bold]{k}[/]", str(v))
    calib = Table(title="calibrations (DP similarity matrices; a run uses one only under exactly its settings)", title_justify="left")
    for col in ("sampler", "steps", "guidance", "interval", "timeshift", "last step", "samples", "file"):
        calib.add_column(col)
    for e in d.calibration.values():
        s = e.sampler
        calib.add_row("euler" if s.sampler == "euler" else f"adams-{s.order}", str(s.num_steps), f"{s.guidance:g}", f"{s.interval_min:g}-{s.interval_max:g}", f"{s.timeshift:g}",
                      "default" if s.last_step is None else f"{s.last_step:g}", str(e.samples), e.file)
    if not d.calibration:
        calib.add_row("none yet: `ddt-export calibrate BUILD --steps N` (or the first DP run calibrates)", "", "", "", "", "", "", "")
    graphs = Table(title="graphs", title_justify="left")
    for col in ("graph", "inputs", "outputs", "max rel. error vs PyTorch"):
        graphs.add_column(col)
    fmt = lambda ts: "\n".join(f"{t.name} {t.dtype} {t.shape}" for t in ts)  # noqa: E731
    for name, g in d.graphs.items():
        graphs.add_row(name, fmt(g.inputs), fmt(g.outputs), "-" if g.check is None else f"{g.check.max_rel_error:.1e}")
    files = Table(title="files", title_justify="left")
    for col in ("file", "bytes", "sha256"):
        files.add_column(col)
    for f, e in d.files.items():
        files.add_row(f, f"{e.bytes:,}", e.sha256[:16] + "…")
    return Group(head, calib, graphs, files)
