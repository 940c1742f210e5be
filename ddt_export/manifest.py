"""`manifest.json`: reading, verifying and writing the only contract between export, the runtimes and C++.

A build folder is usable only through its manifest: the architecture, sampler defaults,
latent shape, null class, each graph's tensors, opset and precision, tool versions, the
measured error of each graph, the sha256 of every file, and the calibrated similarity
matrices. Its shape is declared once, as typed models (manifest_schema.py); nothing else
reads the raw JSON. Reading a build checks the manifest against those models, checks that
each graph's tensors are the ones its architecture and precision imply (so an edited shape is
caught), that every path it names is one of its hashed files, and verifies every file's hash,
all under the folder's shared lock (files.py). The digest is an unkeyed checksum: it shows
accidental edits and damage (integrity), it does not prove who wrote the folder (authenticity).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from pydantic import ValidationError

from .class_names import ClassNames, check_names
from .config import DDTConfig
from .errors import DDTError, first_problem
from .files import file_entry, locked, read_json, sha256, write_json_atomic
from .graphs import GraphSpec, decoder_spec, encoder_spec
from .manifest_schema import FORMAT, CalibrationEntry, FileEntry, ManifestDoc
from .sampler import SamplerSettings

NAME = "manifest.json"


@dataclass
class Manifest:
    """A parsed, verified manifest and the folder it describes."""

    root: Path
    doc: ManifestDoc

    @property
    def name(self) -> str:
        return self.doc.name

    @property
    def arch(self) -> DDTConfig:
        return self.doc.model.architecture.config()

    @property
    def null_class(self) -> int:
        return self.doc.model.null_class

    @property
    def class_names(self) -> ClassNames | None:
        """The classes' names (class_names.py), or None for a build without them (ids only)."""
        names = self.doc.model.class_names
        return None if names is None else ClassNames(tuple(names))

    @property
    def space(self) -> str:
        return self.doc.model.space

    @property
    def sampler(self) -> SamplerSettings:
        return self.doc.sampler.settings()

    @property
    def precision(self) -> str:
        return self.doc.precision

    @property
    def identity(self) -> tuple:
        """What makes this build this build: when it was made and its graphs' and weights' hashes (a rebuild changes it)."""
        files = self.doc.files
        return (self.doc.created, *(files[f].sha256 if f in files else None for f in ("encoder.onnx", "decoder.onnx", self.doc.weights_file)))

    def graph(self, name: str) -> GraphSpec:
        if name not in self.doc.graphs:
            raise DDTError(f"{self.root} has no {name} graph; rebuild with the option that adds it")
        g = self.doc.graphs[name]
        return GraphSpec.from_dict(name, g.model_dump(include={"inputs", "outputs"}))

    def path(self, file: str) -> Path:
        return self.root / file

    def has(self, key: str) -> bool:
        return key in self.doc.graphs

    def calibration(self, settings: SamplerSettings) -> CalibrationEntry | None:
        """The stored calibration measured under exactly these sampler settings, or None."""
        return next((e for e in self.doc.calibration.values() if e.sampler.settings() == settings), None)

    def similarity(self, settings: SamplerSettings) -> np.ndarray | None:
        entry = self.calibration(settings)
        if entry is None:
            return None
        with locked(self.root, shared=True):  # not while a rebuild swaps the folder
            doc = self.doc
            if (self.root / NAME).is_file():  # `calibrate --samples` may have replaced the entry since this was read
                fresh = Manifest(self.root, _parse(self.root / NAME))
                if fresh.identity == self.identity and fresh.calibration(settings) is not None:
                    doc, entry = fresh.doc, fresh.calibration(settings)
            check_file(self.root, entry.file, doc.files[entry.file])  # read only what the manifest hashed
            return np.load(self.root / entry.file, allow_pickle=False)

    def load_model(self):
        """The fp32 PyTorch model from the build's own weights (the reference every check compares with)."""
        from .model import DDT
        from .official import load_weights, read_weights

        path = self.path(self.doc.weights_file)
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
        doc = _parse(path)
        if verify:
            verify_files(root, doc)
    return Manifest(root, doc)


def migrate(data: object, path: Path) -> dict:
    """The manifest in the current format, or one error naming the format it has (older formats are converted here)."""
    found = data.get("format") if isinstance(data, dict) else None
    if found != FORMAT:  # format 1 is the first: nothing older to convert yet
        raise DDTError(f"{path.parent} was built by an incompatible ddt-export (manifest format {found!r}, this version reads "
                       f"{FORMAT}); rebuild it with `ddt-export build`")
    return data


def _parse(path: Path) -> ManifestDoc:
    data = migrate(read_json(path, "a ddt-export manifest", "rebuild the folder"), path)  # every parse failure is one line
    try:
        doc = ManifestDoc.model_validate(data)
    except ValidationError as e:
        raise DDTError(f"{path}: {first_problem(e)}; the manifest is damaged or was edited, rebuild the folder") from None
    if doc.digest is not None and doc.digest != digest(data):
        raise DDTError(f"{path} was edited by hand (its digest no longer matches); rebuild the folder, or restore the manifest")
    unlisted = {where: f for where, f in doc.named_files().items() if f not in doc.files}
    if unlisted:
        where, f = next(iter(unlisted.items()))
        raise DDTError(f"{path}: {where} names {f!r}, which is not one of the build's hashed files; rebuild the folder")
    arch = doc.model.architecture.config()
    if doc.model.class_names is not None:  # one name per class, each usable on a command line
        check_names(doc.model.class_names, arch.num_classes, f"{path}: model.class_names")
    for spec in (encoder_spec(arch, doc.precision), decoder_spec(arch, doc.precision)):
        got = doc.graphs[spec.name].model_dump(include={"inputs", "outputs"})
        if got != {k: v for k, v in spec.to_dict().items() if k in ("inputs", "outputs")}:
            raise DDTError(f"{path}: the {spec.name} graph's tensors do not match the architecture (the manifest was edited?); rebuild the folder")
    return doc


def digest(data: dict) -> str:
    """sha256 of the manifest's own content (everything but this field), so any edit shows."""
    body = {k: v for k, v in data.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write(root: Path, doc: ManifestDoc) -> ManifestDoc:
    """Check, stamp the digest and write atomically (callers hold the exclusive lock, or own the folder); returns what was written."""
    try:
        doc = ManifestDoc.model_validate(doc.dump())  # what build and the extras assembled obeys the schema
    except ValidationError as e:
        raise DDTError(f"internal error: the manifest being written is invalid ({first_problem(e)}); please report it") from None
    data = doc.dump()
    data["digest"] = digest(data)
    write_json_atomic(Path(root) / NAME, data)
    return ManifestDoc.model_validate(data)


def check_file(root: Path, file: str, entry: FileEntry) -> None:
    p = root / file
    if not p.is_file():
        raise DDTError(f"{root}: {file} is missing; the build is incomplete, rebuild it")
    if p.stat().st_size != entry.bytes or sha256(p) != entry.sha256:
        raise DDTError(f"{root}: {file} does not match its sha256 in the manifest (modified or truncated); rebuild it")


def verify_files(root: Path, doc: ManifestDoc) -> None:
    for file, entry in doc.files.items():
        check_file(root, file, entry)


def update(m: Manifest, change: Callable[[ManifestDoc], None]) -> Manifest | None:
    """Read-modify-write of the manifest under the folder's exclusive lock, re-read there.

    `change(doc)` edits the freshly read manifest (it may add files it wrote into the folder and
    record them with `record_file`). Returns the new manifest, or None when the folder now holds
    another build (rebuilt since `m` was read): nothing is written then.
    """
    with locked(m.root):
        path = m.root / NAME
        if not path.is_file():
            return None
        doc = _parse(path)
        if Manifest(m.root, doc).identity != m.identity:
            return None
        listed = set(doc.files)
        try:
            change(doc)
            doc = write(m.root, doc)
        except BaseException:  # a full disk, Ctrl-C: files the change added but the manifest never listed are removed
            for f in set(doc.files) - listed:
                (m.root / f).unlink(missing_ok=True)
            raise
    return Manifest(m.root, doc)


def record_file(root: Path, doc: ManifestDoc, file: str) -> None:
    entry = file_entry(Path(root) / file)
    doc.files[file] = FileEntry(**entry)


def is_build(folder: Path) -> bool:
    """Provably a ddt-export build: a manifest we can parse, and exactly the files it lists (sizes checked), nothing else."""
    try:
        doc = _parse(folder / NAME)
    except DDTError:
        return False
    listed = set(doc.files) | {NAME}
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()}
    if present != listed:
        return False
    return all((folder / f).stat().st_size == e.bytes for f, e in doc.files.items())
