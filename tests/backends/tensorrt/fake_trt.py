"""A stand-in `tensorrt` module whose every call is checked against the real Python bindings.

The real bindings (`tensorrt_bindings`, imported with stub libnvinfer; see bindings.py)
carry every class, method, property and enum with its pybind11 signature in `__doc__`.
This module wraps them: enums, `Dims` and the logger classes are the real ones; every
other class is a fake whose attribute lookups must exist on the real class (a missing one
raises AttributeError exactly as TensorRT would), whose calls must bind to one of the real
overloads (argument count, keyword names, and the types where they are simple: str, int,
bool, bytes, TensorRT classes and enums), and whose return value is a fake of the declared
return type, or what a behaviour hook returns. Property writes must hit a real property
with a setter. Every call is recorded, so tests can assert what was asked of TensorRT.

Behaviour hooks (keyed "Class.member") give the few results that need meaning: the ONNX
parser reads the real graph's inputs, a "plan" is JSON naming the ONNX file, and an
execution context runs that graph with onnxruntime on the host pointers bound to it. No
GPU and no TensorRT kernel is involved: this checks the calls, not TensorRT's results.
"""

from __future__ import annotations

import ctypes
import json
import re
import types
from typing import Any, Callable

import numpy as np

REAL_PASSTHROUGH = {"ILogger", "Logger", "Dims", "Dims2", "Dims3", "Dims4", "DimsHW", "Weights", "Permutation"}
SIG = re.compile(r"^(?:\d+\.\s+)?(\w+)?\((.*)\)\s*->\s*(.+)$")


class HostBytes(bytes):
    """Stands for IHostMemory: a buffer (what TensorRT's supports too) usable in `with`."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def split_top(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[(<{":
            depth += 1
        elif ch in "])>}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def signatures(doc: str | None) -> list[tuple[list[tuple[str, str, bool]], str]]:
    """[(params [(name, annotation, has_default)] without self, return annotation)] from a pybind11 docstring."""
    sigs = []
    for line in (doc or "").splitlines():
        m = SIG.match(line.strip())
        if not m or m.group(2) == "*args, **kwargs":
            continue
        params = []
        for p in split_top(m.group(2)):
            name, _, rest = p.partition(":")
            ann, eq, _ = rest.partition("=")
            params.append((name.strip(), ann.strip(), bool(eq)))
        if params and params[0][0] in ("self", "arg0"):
            params = params[1:]
        sigs.append((params, m.group(3).strip()))
    return sigs


def short(ann: str) -> str:
    return ann.rsplit(".", 1)[-1].strip()


class Recorder:
    def __init__(self):
        self.calls: list[tuple[str, tuple, dict]] = []
        self.sets: list[tuple[str, Any]] = []

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


class FakeModule(types.ModuleType):
    """`import tensorrt` for code under test; `real` is the imported bindings module."""

    def __init__(self, real, behaviours: dict[str, Callable] | None = None):
        super().__init__("tensorrt")
        self.__dict__["_real"] = real
        self.__dict__["_fakes"] = {}
        self.__dict__["behaviours"] = dict(behaviours or {})
        self.__dict__["record"] = Recorder()
        self.__dict__["__version__"] = real.__version__

    def __getattr__(self, name: str):
        real = getattr(self._real, name)  # AttributeError if TensorRT has no such name
        return self._wrap(name, real)

    def _wrap(self, name: str, real):
        if not isinstance(real, type) or name in REAL_PASSTHROUGH or hasattr(real, "__members__"):
            return real  # enums, Dims, loggers, functions and constants are the real objects
        if name not in self._fakes:
            self._fakes[name] = FakeMeta(name, (FakeObject,), {"_real": real, "_module": self})
        return self._fakes[name]

    def fake_for(self, ann: str):
        name = short(ann)
        real = getattr(self._real, name, None)
        return self._wrap(name, real) if isinstance(real, type) else None


class FakeMeta(type):
    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(cls._real, name)  # nested enums (ILogger.Severity) and static members


class FakeObject:
    _real: type
    _module: FakeModule

    def __init__(self, *args, _state: dict | None = None, **kwargs):
        object.__setattr__(self, "state", dict(_state or {}))
        if _state is None:  # constructed by the code under test: check the real constructor
            self._check(f"{type(self).__name__}.__init__", type(self)._real.__init__.__doc__, args, kwargs)
            self.state["init"] = (args, kwargs)

    # ---------------------------------------------------------------- checking

    def _check(self, what: str, doc: str | None, args: tuple, kwargs: dict) -> str:
        sigs = signatures(doc)
        if not sigs:
            raise TypeError(f"{what}: no signature in TensorRT's docstring")
        problems = []
        for params, ret in sigs:
            why = self._bind(params, args, kwargs)
            if why is None:
                self._module.record.calls.append((what, args, kwargs))
                return ret
            problems.append(why)
        raise TypeError(f"{what}{args!r}{kwargs!r} matches no TensorRT overload: {'; '.join(problems)}")

    def _bind(self, params, args, kwargs) -> str | None:
        if len(args) > len(params):
            return f"{len(args)} positional arguments for {len(params)} parameters"
        names = [p[0] for p in params]
        for k in kwargs:
            if k not in names[len(args):]:
                return f"no keyword {k!r} (parameters: {names})"
        for i, (name, ann, has_default) in enumerate(params):
            if i < len(args):
                value = args[i]
            elif name in kwargs:
                value = kwargs[name]
            elif has_default:
                continue
            else:
                return f"missing {name!r}"
            if not self._type_ok(ann, value):
                return f"{name}={value!r} is not {ann}"
        return None

    def _type_ok(self, ann: str, value) -> bool:
        a = short(ann)
        if a == "str":
            return isinstance(value, str)
        if a in ("int", "SupportsInt"):
            return isinstance(value, (int, np.integer)) or hasattr(value, "__int__")
        if a == "bool":
            return isinstance(value, (bool, int, np.bool_))
        if a in ("float", "SupportsFloat"):
            return isinstance(value, (int, float))
        if a == "Dims":
            return isinstance(value, (tuple, list)) or type(value).__name__.startswith("Dims")
        if a == "buffer":
            return isinstance(value, (bytes, bytearray, memoryview))
        real = getattr(self._module._real, a, None)
        if isinstance(real, type):
            return isinstance(value, real) or (isinstance(value, FakeObject) and issubclass(type(value)._real, real))
        return True  # containers, callables, numpy: not checked

    def _result(self, key: str, ret: str, value_from_hook):
        if value_from_hook is not _NO_HOOK:
            return value_from_hook
        a = short(ret)
        if a == "None":
            return None
        if a == "bool":
            return True
        if a in ("int", "SupportsInt"):
            return 0
        if a == "str":
            return ""
        cls = self._module.fake_for(ret)
        if isinstance(cls, type) and issubclass(cls, FakeObject):
            return cls(_state={"from": key})
        members = getattr(cls, "__members__", None)
        if members:  # a real enum: its first value
            return next(iter(members.values()))
        return None

    # ---------------------------------------------------------------- access

    def __getattr__(self, name: str):
        real_cls = type(self)._real
        member = getattr(real_cls, name)  # AttributeError: TensorRT has no such member either
        key = f"{type(self).__name__}.{name}"
        hook = self._module.behaviours.get(key)
        if isinstance(member, property):
            ret = self._check(key, member.fget.__doc__, (), {})
            return self._result(key, ret, hook(self) if hook else _NO_HOOK)
        if callable(member):
            def call(*args, **kwargs):
                ret = self._check(key, member.__doc__, args, kwargs)
                return self._result(key, ret, hook(self, *args, **kwargs) if hook else _NO_HOOK)

            return call
        return member

    def __setattr__(self, name: str, value) -> None:
        member = getattr(type(self)._real, name, None)
        key = f"{type(self).__name__}.{name}"
        if not isinstance(member, property) or member.fset is None:
            raise AttributeError(f"{key} is not a settable TensorRT property")
        self._check(f"{key}=", member.fset.__doc__, (value,), {})
        self._module.record.sets.append((key, value))
        self.state[name] = value

    def __len__(self) -> int:
        if not hasattr(type(self)._real, "__len__"):
            raise TypeError(f"{type(self).__name__} has no len() in TensorRT")
        hook = self._module.behaviours.get(f"{type(self).__name__}.__len__")
        return hook(self) if hook else 0

    def __getitem__(self, i):
        if not hasattr(type(self)._real, "__getitem__"):
            raise TypeError(f"{type(self).__name__} is not indexable in TensorRT")
        if i >= len(self):
            raise IndexError(i)
        raise NotImplementedError

    def __bool__(self) -> bool:
        return True

    def __enter__(self):
        if not hasattr(type(self)._real, "__enter__"):
            raise TypeError(f"{type(self).__name__} is not a context manager in TensorRT")
        return self

    def __exit__(self, *exc):
        return False


_NO_HOOK = object()


# ----------------------------------------------------------------------------- behaviours


def onnx_behaviours(trt_real) -> dict[str, Callable]:
    """Hooks that make the fake parse real ONNX files, 'build' JSON plans and run them with onnxruntime."""
    import onnx
    import onnxruntime as ort

    to_trt = {onnx.TensorProto.FLOAT: trt_real.DataType.FLOAT, onnx.TensorProto.FLOAT16: trt_real.DataType.HALF,
              onnx.TensorProto.BFLOAT16: trt_real.DataType.BF16, onnx.TensorProto.INT64: trt_real.DataType.INT64}
    np_of = {int(trt_real.DataType.FLOAT): np.float32, int(trt_real.DataType.HALF): np.float16, int(trt_real.DataType.INT64): np.int64}

    def io_of(path: str) -> list[dict]:
        g = onnx.load(path, load_external_data=False).graph
        out = []
        for mode, vals in (("INPUT", g.input), ("OUTPUT", g.output)):
            for v in vals:
                tt = v.type.tensor_type
                shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
                out.append({"name": v.name, "mode": mode, "dtype": int(to_trt[tt.elem_type]), "shape": shape})
        return out

    def parse_from_file(parser, path):
        args, kwargs = parser.state["init"]
        network = args[0] if args else kwargs["network"]
        network.state["io"], network.state["onnx"] = io_of(path), path
        return True

    def build_serialized_network(builder, network, config):
        return HostBytes(json.dumps({"onnx": network.state["onnx"], "io": network.state["io"]}).encode())

    def deserialize(runtime, plan):
        d = json.loads(bytes(plan))
        engine = runtime._module.ICudaEngine(_state=d)
        return engine

    def create_context(engine):
        return engine._module.IExecutionContext(_state={"engine": engine.state, "shapes": {}, "addresses": {}})

    def io(engine_state, name):
        return next(t for t in engine_state["io"] if t["name"] == name)

    def execute(ctx, stream):
        eng = ctx.state["engine"]
        sess = ctx.state.get("session")
        if sess is None:
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            sess = ctx.state["session"] = ort.InferenceSession(eng["onnx"], opts, providers=["CPUExecutionProvider"])
        feeds, outs = {}, []
        for t in eng["io"]:
            dtype = np_of[t["dtype"]]
            if t["mode"] == "INPUT":
                shape = ctx.state["shapes"][t["name"]]
            else:
                shape = out_shape(ctx, t)
            n = int(np.prod(shape)) * np.dtype(dtype).itemsize
            buf = (ctypes.c_char * n).from_address(ctx.state["addresses"][t["name"]])
            arr = np.frombuffer(buf, dtype=dtype).reshape(shape)  # the bound memory itself, no copy
            if t["mode"] == "INPUT":
                feeds[t["name"]] = arr.copy()
            else:
                outs.append((t["name"], arr))
        results = sess.run([n for n, _ in outs], feeds)
        for (_, arr), r in zip(outs, results):
            arr[...] = r
        ctx.state.setdefault("executions", 0)
        ctx.state["executions"] += 1
        return True

    def out_shape(ctx, t):
        batch = next(iter(ctx.state["shapes"].values()))[0]
        return tuple(batch if d == -1 else d for d in t["shape"])

    def get_tensor_shape(ctx, name):
        t = io(ctx.state["engine"], name)
        return ctx.state["shapes"].get(name) or out_shape(ctx, t)

    def set_input_shape(ctx, name, shape):
        ctx.state["shapes"][name] = tuple(shape)
        return True

    def set_tensor_address(ctx, name, ptr):
        ctx.state["addresses"][name] = int(ptr)
        return True

    return {
        "OnnxParser.parse_from_file": parse_from_file,
        "INetworkDefinition.num_inputs": lambda net: sum(t["mode"] == "INPUT" for t in net.state.get("io", [])),
        "INetworkDefinition.num_outputs": lambda net: sum(t["mode"] == "OUTPUT" for t in net.state.get("io", [])),
        "INetworkDefinition.get_input": lambda net, i: net._module.ITensor(_state=[t for t in net.state["io"] if t["mode"] == "INPUT"][i]),
        "INetworkDefinition.num_layers": lambda net: 0,
        "ITensor.name": lambda t: t.state["name"],
        "ITensor.shape": lambda t: trt_real.Dims(t.state["shape"]),
        "ITensor.is_shape_tensor": lambda t: False,
        "ITensor.dtype": lambda t: trt_real.DataType(t.state["dtype"]),
        "OnnxParser.num_errors": lambda p: 0,
        "Builder.build_serialized_network": build_serialized_network,
        "ITimingCache.serialize": lambda cache: HostBytes(b"timing-cache"),
        "Runtime.deserialize_cuda_engine": deserialize,
        "ICudaEngine.num_io_tensors": lambda e: len(e.state["io"]),
        "ICudaEngine.get_tensor_name": lambda e, i: e.state["io"][i]["name"],
        "ICudaEngine.get_tensor_mode": lambda e, n: getattr(trt_real.TensorIOMode, io(e.state, n)["mode"]),
        "ICudaEngine.get_tensor_dtype": lambda e, n: trt_real.DataType(io(e.state, n)["dtype"]),
        "ICudaEngine.create_execution_context": create_context,
        "IExecutionContext.set_input_shape": set_input_shape,
        "IExecutionContext.set_tensor_address": set_tensor_address,
        "IExecutionContext.infer_shapes": lambda ctx: [],
        "IExecutionContext.get_tensor_shape": get_tensor_shape,
        "IExecutionContext.execute_async_v3": execute,
    }
