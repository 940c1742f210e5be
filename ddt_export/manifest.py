"""`manifest.json`: the only contract between export, the runtimes and the C++ library.

A build folder is usable only through its manifest: the architecture, sampler defaults,
latent shape, null class, each graph's tensors, opset and precision, tool versions, the
measured error of each graph, the sha256 of every file, and the calibrated similarity
matrices. Reading a build checks the manifest against its schema (schema.py), checks that
each graph's tensors are the ones its architecture and precision imply (so an edited shape
is caught), and verifies every file's hash, all under the folder's shared lock (files.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import DDTError
from .files import file_entry, locked, sha256, write_json_atomic
from .graphs import GraphSpec, decoder_spec, encoder_spec
from .model import DDTConfig
from .sampler import SamplerSettings

FORMAT = 1
NAME = "manifest.json"


@dataclass
class Manifest:
    """A parsed, verified manifest and the folder it describes."""

    root: Path
    data: dict

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def arch(self) -> DDTConfig:
        return DDTConfig(**self.data["model"]["architecture"])

    @property
    def null_class(self) -> int:
        return int(self.data["model"]["null_class"])

    @property
    def space(self) -> str:
        return self.data["model"].get("space", "latent")

    @property
    def sampler(self) -> SamplerSettings:
        return SamplerSettings(**self.data["sampler"])

    @property
    def precision(self) -> str:
        return self.data["precision"]

    @property
    def identity(self) -> tuple:
        """What makes this build this build: when it was made and its graphs' and weights' hashes (a rebuild changes it)."""
        files = self.data["files"]
        return (self.data.get("created"), *(files.get(f, {}).get("sha256") for f in ("encoder.onnx", "decoder.onnx", self.data["weights_file"])))

    def graph(self, name: str) -> GraphSpec:
        if name not in self.data["graphs"]:
            raise DDTError(f"{self.root} has no {name} graph; rebuild with the option that adds it")
        return GraphSpec.from_dict(name, self.data["graphs"][name])

    def path(self, file: str) -> Path:
        return self.root / file

    def has(self, key: str) -> bool:
        return key in self.data["graphs"]

    def calibration(self, settings: SamplerSettings) -> dict | None:
        """The stored calibration measured under exactly these sampler settings, or None."""
        want = settings.to_dict()
        return next((e for e in self.data.get("calibration", {}).values() if e.get("sampler") == want), None)

    def similarity(self, settings: SamplerSettings) -> np.ndarray | None:
        entry = self.calibration(settings)
        if entry is None:
            return None
        with locked(self.root, shared=True):  # not while a rebuild swaps the folder
            return np.load(self.root / entry["file"], allow_pickle=False)

    def load_model(self):
        """The fp32 PyTorch model from the build's own weights (the reference every check compares with)."""
        from .model import DDT
        from .official import load_weights, read_weights

        path = self.path(self.data["weights_file"])
        return load_weights(DDT(self.arch), read_weights(path), str(path)).eval()


def read(root: str | Path, verify: bool = True) -> Manifest:
    """Open a build folder: schema, graph specs and (with `verify`) every listed file's sha256, under the shared lock."""
    root = Path(root)
    with locked(root, shared=True):  # a rebuild swaps the folder under the exclusive lock: never seen half-swapped
        if root.exists() and not root.is_dir():
            raise DDTError(f"{root} is a file, not a build folder; give the folder `ddt-export build` made")
        path = root / NAME
        if not path.is_file():
            hint = "run `ddt-export build` to make one" if not root.exists() else "it is not a ddt-export build; run `ddt-export build --out` for it"
            raise DDTError(f"{root} has no {NAME}: {hint}")
        data = _parse(path)
        if verify:
            verify_files(root, data)
    return Manifest(root, data)


def _parse(path: Path) -> dict:
    from .schema import check_manifest

    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DDTError(f"{path} is not valid JSON ({e}); rebuild the folder") from None
    except OSError as e:
        raise DDTError(f"cannot read {path} ({e.strerror}); check its permissions") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise DDTError(f"{path.parent} was built by an incompatible ddt-export (manifest format {found}, this version reads {FORMAT}); rebuild it with `ddt-export build`")
    check_manifest(data, path)
    if "digest" in data and data["digest"] != digest(data):
        raise DDTError(f"{path} was edited by hand (its digest no longer matches); rebuild the folder, or restore the manifest")
    arch = DDTConfig(**data["model"]["architecture"])
    for spec in (encoder_spec(arch, data["precision"]), decoder_spec(arch, data["precision"])):
        got = {k: data["graphs"][spec.name][k] for k in ("inputs", "outputs")}
        if got != {k: v for k, v in spec.to_dict().items() if k in ("inputs", "outputs")}:
            raise DDTError(f"{path}: the {spec.name} graph's tensors do not match the architecture (the manifest was edited?); rebuild the folder")
    return data


def digest(data: dict) -> str:
    """sha256 of the manifest's own content (everything but this field), so any edit shows."""
    body = {k: v for k, v in data.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write(root: Path, data: dict) -> None:
    """Stamp the digest and write atomically (callers hold the exclusive lock, or own the folder)."""
    data["digest"] = digest(data)
    write_json_atomic(Path(root) / NAME, data)


def verify_files(root: Path, data: dict) -> None:
    for file, entry in data["files"].items():
        p = root / file
        if not p.is_file():
            raise DDTError(f"{root}: {file} is missing; the build is incomplete, rebuild it")
        if p.stat().st_size != entry["bytes"] or sha256(p) != entry["sha256"]:
            raise DDTError(f"{root}: {file} does not match its sha256 in the manifest (modified or truncated); rebuild it")


def update(m: Manifest, change: Callable[[dict], None]) -> Manifest | None:
    """Read-modify-write of the manifest under the folder's exclusive lock, re-read there.

    `change(data)` edits the freshly read manifest (it may add files it wrote into the folder and
    record them with `record_file`). Returns the new manifest, or None when the folder now holds
    another build (rebuilt since `m` was read): nothing is written then.
    """
    with locked(m.root):
        path = m.root / NAME
        if not path.is_file():
            return None
        data = _parse(path)
        if Manifest(m.root, data).identity != m.identity:
            return None
        change(data)
        write(m.root, data)
    return Manifest(m.root, data)


def record_file(root: Path, data: dict, file: str) -> None:
    data["files"][file] = file_entry(Path(root) / file)


def is_build(folder: Path) -> bool:
    """Provably a ddt-export build: a manifest we can parse, and exactly the files it lists (sizes checked), nothing else."""
    try:
        data = _parse(folder / NAME)
    except DDTError:
        return False
    listed = set(data["files"]) | {NAME}
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()}
    if present != listed:
        return False
    return all((folder / f).stat().st_size == e["bytes"] for f, e in data["files"].items())
