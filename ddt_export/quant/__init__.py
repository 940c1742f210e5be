"""int8/fp8 quantisation of a build's two graphs: the entry points `quantize_graphs` and `summary`, re-exported."""

from .run import quantize_graphs, summary  # noqa: F401
