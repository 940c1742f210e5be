"""`manifest.json`: the only contract between export, the runtimes and the C++ library.

A build folder is usable only through its manifest: the architecture, sampler defaults,
latent shape, null class, each graph's tensors, opset and precision, tool versions, the
measured error of each graph, the sha256 of every file, and the calibrated similarity
matrices. Reading a build verifies every file's hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DDTError
from .graphs import GraphSpec
from .model import DDTConfig
from .sampler import SamplerSettings

FORMAT = 1
NAME = "manifest.json"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def file_entry(path: Path) -> dict:
    return {"sha256": sha256(path), "bytes": path.stat().st_size}


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


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

    def graph(self, name: str) -> GraphSpec:
        if name not in self.data["graphs"]:
            raise DDTError(f"{self.root} has no {name} graph; rebuild with the option that adds it")
        return GraphSpec.from_dict(name, self.data["graphs"][name])

    def path(self, file: str) -> Path:
        return self.root / file

    def has(self, key: str) -> bool:
        return key in self.data["graphs"]

    def similarity(self, num_steps: int) -> np.ndarray | None:
        entry = self.data.get("calibration", {}).get(str(num_steps))
        return None if entry is None else np.load(self.root / entry["file"])

    def add_file(self, file: str) -> None:
        self.data["files"][file] = file_entry(self.root / file)

    def save(self) -> None:
        write_json_atomic(self.root / NAME, self.data)


def read(root: str | Path, verify: bool = True) -> Manifest:
    """Open a build folder; every file the manifest lists must exist with its recorded sha256."""
    root = Path(root)
    path = root / NAME
    if not path.is_file():
        hint = "run `ddt-export build` to make one" if not root.exists() else "it is not a ddt-export build; run `ddt-export build --out` for it"
        raise DDTError(f"{root} has no {NAME}: {hint}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DDTError(f"{path} is not valid JSON ({e}); rebuild the folder") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise DDTError(f"{root} was built by an incompatible ddt-export (manifest format {found}, this version reads {FORMAT}); rebuild it with `ddt-export build`")
    if verify:
        for file, entry in data["files"].items():
            p = root / file
            if not p.is_file():
                raise DDTError(f"{root}: {file} is missing; the build is incomplete, rebuild it")
            if p.stat().st_size != entry["bytes"] or sha256(p) != entry["sha256"]:
                raise DDTError(f"{root}: {file} does not match its sha256 in the manifest (modified or truncated); rebuild it")
    return Manifest(root, data)
