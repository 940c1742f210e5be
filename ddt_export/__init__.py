"""ddt-export: compiled inference for DDT, the Decoupled Diffusion Transformer."""

__version__ = "0.1.0"

from .errors import DDTError  # noqa: E402
from .pipeline import Pipeline, Result  # noqa: E402

__all__ = ["DDTError", "Pipeline", "Result", "__version__"]
