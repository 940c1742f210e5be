"""`ddt-export demo BUILD [BUILD ...]`: a Gradio web page on the builds' compiled graphs (what the official `app.py` offers,
without eager PyTorch).

Pick a class by typing any of its names (or its id), the number of images, seed, steps, guidance and its interval, the
sharing ratio and schedule, the backend, and the precision when several builds of one model are given; the page shows
the images, the seconds per image and the encoder calls the run used. Requests are queued and run one at a time (a
second user waits instead of sharing the backend); every bad value comes back as a one-line message in the page (or
as the error of an API call), never a crash, and the server goes on serving. Gradio is an optional extra:
`pip install -e ".[demo]"`.

The page's one API endpoint, `/generate`, takes the same values in the order of `INPUTS` (gradio_client can call it).
"""

from __future__ import annotations

import math
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .errors import DDTError

MAX_IMAGES = 16  # per request: a bound on the batch one user can ask of a shared CPU
MAX_STEPS = 1000
MAX_GUIDANCE = 20.0
MAX_RATIO = 0.95  # the encoder runs at least once in 20 steps
MAX_QUEUE = 16  # requests waiting; one more is refused by Gradio ("the queue is full")
INSTALL = 'pip install -e ".[demo]"'
CPU_BACKENDS = ("onnxruntime", "openvino")  # compiled graphs on the CPU; torch would be eager PyTorch
INPUTS = ("class", "images", "seed", "steps", "guidance", "interval_min", "interval_max", "sharing_ratio", "schedule", "backend",
          "precision")


def import_gradio():
    """Gradio, with its telemetry and update check off (this server talks to its users only), or a one-line DDTError."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gradio
    except ImportError:
        raise DDTError(f"the demo needs Gradio, which is not installed; install it with `{INSTALL}`") from None
    return gradio


@dataclass
class Builds:
    """The builds the page serves: one model, one build per precision (the first is the default)."""

    dirs: dict[str, Path]  # precision -> build folder
    manifest: object  # the first build's Manifest: classes, names and sampler defaults

    @classmethod
    def read(cls, paths: Sequence[Path]) -> "Builds":
        from .manifest import read

        if not paths:
            raise DDTError("give a build folder, e.g. `ddt-export demo engines/digits`")
        dirs, first = {}, None
        for p in paths:
            m = read(p)
            if first is None:
                first = m
            elif m.arch != first.arch or m.null_class != first.null_class or m.space != first.space:
                raise DDTError(f"{p} is another model than {first.root}; give builds of one model (one per precision)")
            elif m.doc.model.class_names != first.doc.model.class_names:
                raise DDTError(f"{p} names its classes differently from {first.root}; give builds of one model (one per precision)")
            if m.precision in dirs:
                raise DDTError(f"{dirs[m.precision]} and {p} are both {m.precision} builds; give one build per precision")
            dirs[m.precision] = Path(p)
        from .pipeline import check_images

        check_images(first.space, first)  # a page without pictures is no demo: a latent build needs its VAE decoder
        return cls(dirs, first)

    def backends(self) -> list[str]:
        """The backends that run these builds here: the CPU ones, and TensorRT where the first build has engines and a GPU."""
        from .backends import tensorrt_available

        names = list(CPU_BACKENDS)
        if self.manifest.doc.engines is not None and tensorrt_available():
            names.insert(0, "tensorrt")
        return names


class Server:
    """What the page calls: pipelines opened on first use (per precision and backend) and kept, and `generate`."""

    def __init__(self, builds: Builds):
        self.builds = builds
        self.names = builds.manifest.class_names
        self.num_classes = builds.manifest.arch.num_classes
        self.defaults = builds.manifest.sampler
        self.pipes: dict[tuple[str, str], object] = {}

    def choices(self) -> list[tuple[str, int]]:
        """The class picker's entries: "id: names" (so typing any synonym or the id finds it), valued by id."""
        if self.names is None:
            return [(f"{i}", i) for i in range(self.num_classes)]
        return [(f"{i}: {line}", i) for i, line in enumerate(self.names.lines)]

    def default_class(self) -> int:
        return 207 if self.num_classes == 1000 and self.names is not None else 0  # ImageNet's golden retriever

    def pipe(self, precision: str, backend: str):
        from .pipeline import Pipeline

        if precision not in self.builds.dirs:
            raise DDTError(f"precision must be one of {', '.join(self.builds.dirs)} (got {precision!r})")
        if backend not in self.builds.backends():
            raise DDTError(f"backend must be one of {', '.join(self.builds.backends())} (got {backend!r})")
        key = (precision, backend)
        if key not in self.pipes:
            self.pipes[key] = Pipeline.load(self.builds.dirs[precision], backend)
        return self.pipes[key]

    def class_id(self, value) -> int:
        """The picker's value: an id (the picker's own values), or text typed into it: "id: names", an id, or a name."""
        from .class_names import is_id, label_ids

        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and ":" in value and is_id(value.split(":", 1)[0].strip()):  # the one grammar, not isdigit()
            value = value.split(":", 1)[0].strip()  # a picker entry's text, "207: golden retriever"
        if value is None or (isinstance(value, str) and not value.strip()):
            raise DDTError("pick a class (type a name or an id)")
        (y,) = label_ids([value], self.names, "class")
        if not 0 <= y < self.num_classes:
            raise DDTError(f"class must be an id from 0 to {self.num_classes - 1} or a class name (got {y})")
        return y

    def generate(self, cls, images, seed, steps, guidance, interval_min, interval_max, sharing_ratio, schedule, backend, precision):
        """One request: every value checked (a DDTError says which and why), then the run; returns (PIL images, status)."""
        from .labels import check_seed

        y = self.class_id(cls)
        n = whole(images, "number of images", 1, MAX_IMAGES)
        steps = whole(steps, "steps", 1, MAX_STEPS)
        guidance = number(guidance, "guidance", 0.0, MAX_GUIDANCE)
        lo, hi = number(interval_min, "interval min", 0.0, 1.0), number(interval_max, "interval max", 0.0, 1.0)
        ratio = number(sharing_ratio, "sharing ratio", 0.0, MAX_RATIO)
        if schedule not in ("dp", "uniform"):
            raise DDTError(f"schedule must be dp or uniform (got {schedule!r})")
        seed = check_seed(integral(seed, "seed"), "seed")
        pipe = self.pipe(precision, backend)
        out = pipe([y] * n, seed=seed, num_steps=steps, guidance=guidance, interval_min=lo, interval_max=hi,
                   sharing_ratio=ratio if ratio > 0 else None, schedule=schedule)
        return out.images, status(out, self.label(y), pipe, ratio > 0 and schedule)

    def label(self, y: int) -> str:
        return f"{y}" if self.names is None else f"{y} ({self.names.display(y)})"


def integral(value, what: str) -> int:
    """A whole number from the page or an API call (Gradio's Number sends floats): not a bool, NaN or fraction."""
    if isinstance(value, bool) or value is None:
        raise DDTError(f"{what} must be a whole number (got {value!r})")
    if isinstance(value, str):
        from .labels import whole as whole_text

        return whole_text(value, what)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise DDTError(f"{what} must be a whole number (got {value!r})")
        return int(value)
    if isinstance(value, int):
        return value
    raise DDTError(f"{what} must be a whole number (got {value!r})")


def whole(value, what: str, lo: int, hi: int) -> int:
    v = integral(value, what)
    if not lo <= v <= hi:
        raise DDTError(f"{what} must be from {lo} to {hi} (got {v})")
    return v


def number(value, what: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DDTError(f"{what} must be a number from {lo:g} to {hi:g} (got {value!r})")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise DDTError(f"{what} must be a number from {lo:g} to {hi:g} (got {value!r})")
    return float(value)


def status(out, label: str, pipe, schedule) -> str:
    """The line under the images: speed, encoder calls, and what ran."""
    n, steps = len(out.labels), out.result.settings.num_steps
    shared = f" (sharing ratio {out.result.sharing_ratio:.2f}, {schedule} schedule)" if schedule else ""
    calibrated = f"; calibrated this setting once first ({out.calibration_seconds:.1f} s)" if out.calibration_seconds > 0.05 else ""
    return (f"{n} image{'s' * (n != 1)} of class {label}: {out.seconds:.2f} s, **{out.seconds_per_image:.3f} s per image**; "
            f"encoder ran {out.encoder_calls} of {steps} steps{shared}; {pipe.backend.name}, "
            f"{pipe.manifest.precision if pipe.manifest else 'fp32'}{calibrated}")


def app(server: Server, gr):
    """The page (a gr.Blocks); its Generate button is the `/generate` API endpoint, queued one request at a time."""
    d = server.defaults
    builds = server.builds
    with gr.Blocks(title=f"DDT: {builds.manifest.name}") as page:
        gr.Markdown(f"## DDT ({builds.manifest.name}): class-conditional images from the compiled graphs\n"
                    f"{server.num_classes} classes. Type a class name or id to find it; the encoder is shared across steps "
                    "by the sharing ratio.")
        with gr.Row():
            with gr.Column(scale=1):
                cls = gr.Dropdown(choices=server.choices(), value=server.default_class(), label="Class", filterable=True,
                                  allow_custom_value=True, elem_id="class")
                images = gr.Slider(1, MAX_IMAGES, value=4, step=1, label="Number of images", elem_id="images-count")
                seed = gr.Number(value=0, precision=0, label="Seed", elem_id="seed")
                steps = gr.Slider(1, MAX_STEPS, value=min(d.num_steps, MAX_STEPS), step=1, label="Steps", elem_id="steps")
                guidance = gr.Slider(0.0, MAX_GUIDANCE, value=d.guidance, step=0.1, label="Guidance (CFG scale)", elem_id="guidance")
                with gr.Row():
                    lo = gr.Slider(0.0, 1.0, value=d.interval_min, step=0.01, label="Guidance interval min", elem_id="interval-min")
                    hi = gr.Slider(0.0, 1.0, value=d.interval_max, step=0.01, label="Guidance interval max", elem_id="interval-max")
                ratio = gr.Slider(0.0, MAX_RATIO, value=0.0, step=0.05, label="Sharing ratio (steps that reuse the encoder)", elem_id="ratio")
                schedule = gr.Radio(["dp", "uniform"], value="dp", label="Schedule of encoder steps", elem_id="schedule")
                with gr.Row():
                    backend = gr.Dropdown(builds.backends(), value=builds.backends()[0], label="Backend", elem_id="backend")
                    precision = gr.Dropdown(list(builds.dirs), value=next(iter(builds.dirs)), label="Precision", elem_id="precision",
                                            interactive=len(builds.dirs) > 1)
            with gr.Column(scale=2):
                button = gr.Button("Generate", variant="primary", elem_id="generate")
                gallery = gr.Gallery(label="Images", columns=4, format="png", object_fit="contain", height=420, elem_id="gallery")
                info = gr.Markdown("", elem_id="status")

        def run(*values):
            try:
                return server.generate(*values)
            except DDTError as e:
                raise gr.Error(str(e), print_exception=False) from None
            except Exception as e:  # a bug: the user sees one line, the log keeps the traceback, the server goes on
                traceback.print_exc(file=sys.stderr)
                raise gr.Error(f"internal error: {type(e).__name__}: {e} (please report it)", print_exception=False) from None

        button.click(run, [cls, images, seed, steps, guidance, lo, hi, ratio, schedule, backend, precision], [gallery, info],
                     api_name="generate", concurrency_limit=1)
    page.queue(default_concurrency_limit=1, max_size=MAX_QUEUE)
    return page


def serve(paths: Sequence[Path], host: str, port: int, log=print) -> None:
    """Open the builds, start the page and serve until interrupted."""
    if not 1 <= port <= 65535:
        raise DDTError(f"--port must be from 1 to 65535 (got {port})")
    gr = import_gradio()
    builds = Builds.read(paths)
    server = Server(builds)
    started = time.perf_counter()
    precision = next(iter(builds.dirs))
    server.pipe(precision, builds.backends()[0])  # the default pipeline opened now: a broken build fails here, not in the page
    log(f"{builds.manifest.name}: {', '.join(builds.dirs)} on {', '.join(builds.backends())}; opened in "
        f"{time.perf_counter() - started:.1f}s")
    page = app(server, gr)
    css = "#gallery img { image-rendering: pixelated; }"  # small samples (16 px digits) stay sharp when shown large
    try:
        page.launch(server_name=host, server_port=port, share=False, ssr_mode=False, show_error=True, quiet=True,
                    footer_links=["api"], css=css, theme=gr.themes.Default(font=["system-ui", "sans-serif"],
                                                                           font_mono=["ui-monospace", "monospace"]),
                    prevent_thread_lock=True)
    except OSError as e:
        raise DDTError(f"cannot serve on {host}:{port} ({e}); pass a free --port") from None
    log(f"demo on http://{host}:{port}/ (Ctrl-C stops it)")
    try:
        page.block_thread()
    finally:
        page.close()
