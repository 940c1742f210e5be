"""TensorRT: engines built from a build's ONNX graphs (engines.py), what a GPU machine needs (env.py), and the runtime.

The runtime is `backend.py` (engines loaded and checked against this GPU) and `runner.py`
(one CFG batch size's CUDA buffers, contexts, stream and graphs). Nothing in this package
imports TensorRT, polygraphy or CUDA at import time.
"""
