"""`ddt-bench quality`: sample quality vs sharing ratio and precision, on the bundled digits model.

Every row is judged independently of the DDT, in three feature spaces (FeatureSpaces): the
hidden layer of a small MLP classifier trained on scikit-learn's real 8x8 digits (which also
gives class accuracy), a PCA-16 of the real digits, and the raw 8x8 pixels (nothing learned).
The Frechet distance between generated and real digits in each is an FID analogue (FID uses
Inception features of ImageNet images), not FID itself. Rows pool at least two noise seeds;
comparisons (DP vs uniform, also at equal encoder calls; each precision vs fp32 at the same
ratio) are paired bootstraps over the same sample indices, and a claim is one every space and
every seed agree on (`verdict`).

A run, in steps: `Options` (validated once) -> `configurations` (the points on its axes) -> each
sampled and judged into a `Row` (quality_rows.py) -> bootstrapped and compared
(quality_compare.py) -> `result`, the JSON; quality_report.py draws the table and the plot.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from .. import schedules as sched
from ..errors import DDTError
from ..labels import MAX_SEED
from ..schedules import PAPER_RATIOS
from .judges import FeatureSpaces, Judge, bootstrap_frechet, frechet_distance, to_digit_space  # noqa: F401 (re-exported)
from .quality_compare import Comparisons, bootstrap, compare, real_floor, verdict  # noqa: F401 (verdict re-exported)
from .quality_report import frontier_table, plot, table  # noqa: F401 (re-exported: the CLI draws through this module)
from .quality_frontier import Reference, baseline_config, fidelity, frontier, reference
from .quality_rows import DP_AT_UNIFORM, Config, Inputs, Judging, Row, Solver, sample_config

RATIOS = PAPER_RATIOS
SCHEDULES = ("uniform", "dp")
# DDT-XL/2 ImageNet 256, 250 steps, FID (paper, Table 4); ratio -> (uniform, dp)
PAPER_TABLE4 = {0.0: (1.31, 1.31), 0.5: (1.31, None), 0.66: (1.32, None), 0.75: (1.34, None),
                0.8: (1.36, 1.33), 0.83: (1.37, 1.36), 0.87: (1.42, 1.40)}

PRECISIONS = ("fp32", "bf16", "int8", "fp8")
PRECISION_RATIOS = (0.0, 0.75, 0.87)
# where each precision runs in this benchmark: bf16 is OpenVINO's bf16 matmuls on the fp32 graphs,
# int8 the QDQ graphs on onnxruntime's CPU (VNNI kernels), fp8 the e4m3 QDQ graphs emulated by onnxruntime
PRECISION_BACKEND = {"fp32": None, "bf16": "openvino", "int8": "onnxruntime", "fp8": "onnxruntime"}
FLOAT = {"fp32", "bf16"}  # precisions that run on the fp32 build itself


@dataclass(frozen=True)
class Options:
    """What `ddt-bench quality` runs: its axes (fp32 over ratios x schedules, each other precision at its own ratios),
    the samples per configuration and their noise seeds, and where 8-bit builds come from. A new axis is a field here
    and a loop in `configurations`."""

    samples: int = 1000  # per noise seed (labels i % 10)
    steps: int | None = None  # None: the build's
    seed: int = 0  # also the bootstrap's and the floor's
    seeds: tuple[int, ...] | None = None  # noise seeds pooled per row; None: (seed, seed + 1)
    backend: str = "onnxruntime"
    ratios: tuple[float, ...] = RATIOS
    schedules: tuple[str, ...] = SCHEDULES
    equal_calls: bool = True  # also DP at uniform's encoder calls wherever the DP's budget N // R is below ceil(N / R)
    precisions: tuple[str, ...] = ("fp32",)
    precision_ratios: tuple[float, ...] = PRECISION_RATIOS
    precision_schedules: tuple[str, ...] = ("uniform",)
    builds: Mapping[str, Path] = field(default_factory=dict)  # {"int8": PATH}; any other 8-bit build is made into work_dir
    work_dir: Path | None = None  # where 8-bit builds are made and kept [default: a temp folder]
    chunk: int = 250  # samples per generate call
    resamples: int = 100  # bootstrap resamples
    guidance: float | None = None  # None: the build's
    # the solver axis (quality_frontier.py): solvers x step counts x ratios x schedules, judged against `baseline`
    solvers: tuple[str, ...] = ()  # "euler", "adams2", ...; empty: the build's sampler at `steps` alone
    step_counts: tuple[int, ...] = ()  # empty: `steps`
    baseline: str | None = None  # "euler:250": also run that row and report every row against it
    reference_steps: int = 0  # > 0: fidelity of every row to Euler at this many steps (0: no fidelity column)
    fidelity_samples: int = 20  # per seed, the first ones

    @property
    def solver_axis(self) -> bool:
        return bool(self.solvers or self.step_counts or self.baseline)

    def solver_grid(self) -> list[Solver]:
        """Every solver x step count of the axis, in order."""
        return [Solver.parse(name, n) for name in self.solvers or ("euler",) for n in self.step_counts or (self.steps,)]

    def validate(self) -> "Options":
        """Every check that needs no build, so bad input fails before the judge is trained."""
        if self.samples < 10:
            raise DDTError(f"--samples must be at least 10, one per class (got {self.samples})")
        for p in self.precisions:
            if p not in PRECISIONS:
                raise DDTError(f"unknown precision {p!r} for the quality benchmark; choose from {', '.join(PRECISIONS)}")
        for ratios, schedules in ((self.ratios, self.schedules), (self.precision_ratios, self.precision_schedules)):
            for r in ratios:
                for s in schedules:
                    sched.Request(ratio=r, method=s)
        if self.solver_axis:
            self.solver_grid()  # an unknown solver name fails here
            if self.baseline is not None:
                baseline_config(self.baseline)
            if set(self.precisions) != {"fp32"}:
                raise DDTError("the solver axis runs fp32 only; leave --precisions at fp32")
        if self.reference_steps < 0 or (self.reference_steps and not 1 <= self.fidelity_samples <= self.samples):
            raise DDTError(f"--reference-steps must be >= 0 and --fidelity-samples from 1 to --samples ({self.samples}), "
                           f"got {self.reference_steps} and {self.fidelity_samples}")
        seeds = self.noise_seeds
        if len(set(seeds)) != len(seeds) or max(seeds) > MAX_SEED:
            raise DDTError(f"the noise seeds {list(seeds)} must be distinct and at most 2^64 - 1; give --seeds, e.g. 0,1")
        return self

    @property
    def noise_seeds(self) -> tuple[int, ...]:
        return tuple(self.seeds) if self.seeds is not None else (self.seed, self.seed + 1)

    @property
    def needs_work_dir(self) -> bool:
        """An 8-bit build has to be made and no folder was given for it: a temp folder holds it."""
        return self.work_dir is None and not set(self.precisions) <= FLOAT and not set(self.builds) >= set(self.precisions) - FLOAT


def configurations(opts: Options, num_steps: int) -> list[Config]:
    """Every configuration, in order: fp32 over ratios x schedules (no sharing once; DP at uniform's calls where the DP
    gets fewer), every other precision at its ratios, then each fp32 counterpart those still lack."""
    def at(ratio, schedules):
        return schedules if ratio > 0 else ("uniform",)

    if opts.solver_axis:
        return solver_configurations(opts, num_steps, at)
    out = []
    for ratio in opts.ratios:
        out += [Config("fp32", ratio, s) for s in at(ratio, opts.schedules)]
        if opts.equal_calls and ratio > 0 and "dp" in opts.schedules and sched.budget(num_steps, ratio) < len(sched.uniform(num_steps, ratio)):
            out.append(Config("fp32", ratio, DP_AT_UNIFORM))
    others = [p for p in opts.precisions if p != "fp32"]
    for p in others:
        out += [Config(p, ratio, s) for ratio in opts.precision_ratios for s in at(ratio, opts.precision_schedules)]
    if "fp32" in opts.precisions and others:
        for ratio in opts.precision_ratios:  # every other precision's row needs its fp32 counterpart
            for s in at(ratio, opts.precision_schedules):
                if Config("fp32", ratio, s) not in out:
                    out.append(Config("fp32", ratio, s))
    return out


def solver_configurations(opts: Options, num_steps: int, at) -> list[Config]:
    """The solver axis: every solver x step count x ratio x schedule (fp32; DP at uniform's calls where the DP gets
    fewer), then the baseline row if it is not among them."""
    out = []
    for solver in opts.solver_grid():
        solver = Solver(solver.sampler, solver.order, solver.steps or num_steps)
        for ratio in opts.ratios:
            out += [Config("fp32", ratio, s, solver) for s in at(ratio, opts.schedules)]
            if (opts.equal_calls and ratio > 0 and "dp" in opts.schedules
                    and sched.budget(solver.steps, ratio) < len(sched.uniform(solver.steps, ratio))):
                out.append(Config("fp32", ratio, DP_AT_UNIFORM, solver))
    if opts.baseline is not None and baseline_config(opts.baseline) not in out:
        out.append(baseline_config(opts.baseline))
    return out


def quantised_build(build_dir: Path, precision: str, into: Path, progress: Callable[[str], None]) -> Path:
    """An int8/fp8 build of the same model and sampler as `build_dir`, made into `into`."""
    from ..build import build
    from ..manifest import read
    from ..official import ModelSource

    m = read(build_dir)
    src = ModelSource(m.name, m.arch, m.null_class, m.sampler, m.space)
    out = into / f"{m.name}-{precision}"
    progress(f"building {precision} ({out})")
    build(src, m.load_model(), out, precision=precision, weights_from=m.doc.model.weights)
    return out


def open_precision(build_dir: Path, precision: str, backend: str, builds: dict, into: Path | None, progress) -> "object":
    from ..backends.openvino_backend import OpenVinoBackend
    from ..manifest import read
    from ..pipeline import Pipeline

    if precision == "fp32":
        return Pipeline.load(build_dir, backend)
    if precision == "bf16":
        m = read(build_dir)
        ov = OpenVinoBackend(m, precision="bf16")
        return Pipeline(ov, arch=m.arch, null_class=m.null_class, sampler=m.sampler, space=m.space, manifest=m)
    path = builds.get(precision)
    if path is None:
        if into is None:
            raise DDTError(f"no {precision} build given; pass builds={{'{precision}': PATH}}")
        path = builds[precision] = quantised_build(build_dir, precision, into, progress)
    if read(path).precision != precision:
        raise DDTError(f"{path} is a {read(path).precision} build, not {precision}")
    return Pipeline.load(path, PRECISION_BACKEND[precision])


class Pipelines:
    """The pipeline of each precision, opened on first use. An 8-bit build that was not given is made once into
    `Options.work_dir`, else into a temp folder removed when the `with` block ends; `builds` then names each build used."""

    def __init__(self, build_dir: Path, fp32, opts: Options, progress: Callable[[str], None]):
        import tempfile

        self.build_dir, self.backend, self.progress = build_dir, opts.backend, progress
        self.builds = dict(opts.builds)
        self._tmp = tempfile.TemporaryDirectory(prefix="ddt-quality-") if opts.needs_work_dir else None
        self.into = Path(opts.work_dir) if opts.work_dir is not None else (Path(self._tmp.name) if self._tmp is not None else None)
        self._open: dict[str, object] = {"fp32": fp32}

    def __getitem__(self, precision: str):
        if precision not in self._open:
            self._open[precision] = open_precision(self.build_dir, precision, self.backend, self.builds, self.into, self.progress)
        return self._open[precision]

    def __enter__(self) -> "Pipelines":
        return self

    def __exit__(self, *exc) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def load_digits_pipeline(build_dir: Path, backend: str):
    """The fp32 pipeline of `build_dir`, which must be the bundled digits model (the judges know only digits)."""
    from ..pipeline import Pipeline

    pipe = Pipeline.load(build_dir, backend)
    if pipe.space != "pixel" or pipe.arch.latent_shape != (1, 16, 16):
        raise DDTError("the quality benchmark judges the bundled digits model; build it with `ddt-export build`")
    return pipe


def sample_and_judge(configs: list[Config], pipes: Pipelines, inputs: Inputs, judging: Judging, settings, chunk: int,
                     progress: Callable[[str], None], ref: Reference | None = None) -> tuple[list[Row], list[dict]]:
    """Every configuration sampled and judged (and its fidelity to `ref` measured), in order: (rows, their samples'
    features per space)."""
    rows, feats = [], []
    for n, config in enumerate(configs, 1):
        pipe = pipes[config.precision]
        progress(config.describe() if not config.solver.steps else f"[{n}/{len(configs)}] {config.describe()}")
        latents, sampling = sample_config(pipe, config, inputs, settings, chunk)
        f, scores = judging.score(to_digit_space(latents), inputs)
        feats.append(f)
        rows.append(Row(config, sampling, scores, fidelity=None if ref is None else fidelity(latents, inputs, ref)))
    return rows, feats


def run(build_dir: Path, opts: Options = Options(), progress: Callable[[str], None] = lambda m: None) -> dict:
    """Every configuration of `opts` (`configurations`): `opts.samples` digits per noise seed (labels i % 10), judged in
    every feature space, with paired bootstrap comparisons; the JSON-ready result.

    int8/fp8 builds come from `opts.builds` ({"int8": PATH}) or are built from `build_dir`'s model into
    `opts.work_dir` (a temp folder by default).
    """
    opts = opts.validate()
    pipe = load_digits_pipeline(build_dir, opts.backend)
    settings = pipe.defaults.with_overrides(num_steps=opts.steps, guidance=opts.guidance)
    inputs = Inputs.make(opts.samples, opts.noise_seeds, pipe.arch.latent_shape)
    ref = reference(pipe, inputs, settings, opts.reference_steps, opts.fidelity_samples, progress) if opts.reference_steps else None
    progress("training the judge on the real digits")
    judging = Judging()
    with Pipelines(build_dir, pipe, opts, progress) as pipes:
        rows, feats = sample_and_judge(configurations(opts, settings.num_steps), pipes, inputs, judging, settings, opts.chunk,
                                       progress, ref)
    progress("bootstrapping the distances")
    boot = bootstrap(rows, feats, judging.real, resamples=opts.resamples, seed=opts.seed)
    floor = real_floor(judging.real, opts.samples * len(inputs.seeds), seed=opts.seed)
    res = result(build_dir, opts, pipe, settings, rows, compare(rows, boot), floor, pipes.builds)
    if opts.baseline is not None:
        res["frontier"] = frontier(rows, boot, baseline_config(opts.baseline))
    if ref is not None:
        res["reference"] = ref.to_dict()
    return res


FEATURE_SPACES = {"mlp": "the judge's 128-wide ReLU hidden layer (learned)",
                  "pca16": "top 16 principal components of the real 8x8 digits (linear, fitted to real data)",
                  "pixels": "raw 8x8 pixels, 0..1 (nothing fitted)"}


def result(build_dir: Path, opts: Options, pipe, settings, rows: list[Row], cmp: Comparisons, floor: dict, builds: dict) -> dict:
    """The JSON-ready result of a run."""
    return {
        "build": str(build_dir),
        "backend": pipe.backend.name,
        "samples": opts.samples,
        "seeds": list(opts.noise_seeds),
        "steps": settings.num_steps,
        "seed": opts.seed,
        "sampler": settings.to_dict(),
        "judge": "MLPClassifier(128) on sklearn load_digits (real 8x8): accuracy; Frechet distance in three feature spaces",
        "feature_spaces": FEATURE_SPACES,
        "real_floor": floor,
        "rows": [r.to_dict() for r in rows],
        "dp_vs_uniform": cmp.dp_vs_uniform,
        "dp_equal_calls_vs_uniform": cmp.dp_equal_calls_vs_uniform,
        "precision_vs_fp32": cmp.precision_vs_fp32,
        "builds": {k: str(v) for k, v in builds.items()},
        "bootstrap": {"resamples": opts.resamples, "paired": "every row resampled with the same indices over the pooled seeds"},
        "verdict_rule": "lower/higher: in every feature space the 95% interval excludes 0 and every seed has that sign; "
                        "tie: every interval includes 0; otherwise mixed",
        "paper_table4_fid": {str(k): {"uniform": u, "dp": d} for k, (u, d) in PAPER_TABLE4.items()},
        "load_average": list(os.getloadavg()),
        "solver_axis": opts.solver_axis,
    }
