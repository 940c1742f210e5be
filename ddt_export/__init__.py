"""ddt-export: compiled inference for DDT, the Decoupled Diffusion Transformer.

`Pipeline` and `Result` are loaded on first use, so importing a low layer (`ddt_export.graphs`,
`ddt_export.schedules`) does not pull in torch and every backend.
"""

__version__ = "0.1.0"

from .errors import DDTError  # noqa: E402

__all__ = ["DDTError", "Pipeline", "Result", "__version__"]


def __getattr__(name: str):
    if name in ("Pipeline", "Result"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'ddt_export' has no attribute {name!r}")
