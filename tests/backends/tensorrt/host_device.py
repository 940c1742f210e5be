"""The stand-in GPU for the TensorRT scenarios: buffers in host memory and a stream that orders nothing.

There is no GPU here. The signature-checked TensorRT stand-in (fake_trt.py) reads and writes
the addresses it is bound to as host memory, so the runner's buffers must be CPU tensors; the
scenarios install this device as `Device.here()` and the production code runs unchanged.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from ddt_export.backends.tensorrt.env import Device


class HostStream:
    """Stream handle 0 (what the stand-in's execute_async_v3 is given), nothing to wait for."""

    stream = None
    handle = 0

    def scope(self):
        return nullcontext()

    def join(self):
        return None

    def release(self, caller) -> None:
        pass

    def synchronize(self) -> None:
        pass


@dataclass(frozen=True)
class HostDevice(Device):
    @property
    def torch_device(self):
        return torch.device("cpu")

    def stream(self) -> HostStream:
        return HostStream()
