"""TensorRT: engines built from a build's ONNX graphs (engines.py), and what a GPU machine needs (env.py).

The runtime that runs them is `runner.py`.
"""
