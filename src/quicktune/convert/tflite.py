"""Read the layers of a TFLite flatbuffer as dequantised float arrays (via the `tflite` package).

Only what weight conversion needs: the operators in execution order with their constant inputs
(weights and biases) dequantised as real = scale * (q - zero_point), per channel where the file
quantises per channel, plus stride/padding/activation options and the input tensor's quantisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import tflite  # (untyped: its classes are Any to mypy)

# tflite.TensorType values -> numpy dtypes (only the ones weight files use).
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16, 9: np.int8}
_PADDING = {0: "SAME", 1: "VALID"}
_ACTIVATION = {0: None, 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


@dataclass
class TFLiteOp:
    """One operator. `weight`/`bias` are float32 arrays in TFLite layout:
    CONV_2D (out x kh x kw x in), DEPTHWISE_CONV_2D (1 x kh x kw x channels),
    FULLY_CONNECTED (out x in); bias (out,)."""

    kind: str
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: str | None = None
    activation: str | None = None
    output_shape: tuple[int, ...] = ()
    name: str = ""  # the weight tensor's name (TF variable scope), for error messages
    weight_quant: dict[str, bool | int] = field(default_factory=dict)


@dataclass
class TFLiteGraph:
    ops: list[TFLiteOp]
    input_shape: tuple[int, ...]  # (1 x H x W x 3)
    input_scale: float | None  # real = scale * (q - zero_point) for the uint8/int8 input
    input_zero_point: int | None
    output_shape: tuple[int, ...]


def _op_names() -> dict[int, str]:
    from tflite.BuiltinOperator import BuiltinOperator

    return {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}


def _quant(tensor: tflite.Tensor) -> tuple[np.ndarray | None, np.ndarray | None, int]:
    q = tensor.Quantization()
    if q is None or q.ScaleLength() == 0:
        return None, None, 0
    return q.ScaleAsNumpy().astype(np.float64), q.ZeroPointAsNumpy().astype(np.float64), q.QuantizedDimension()


def _const(model: tflite.Model, tensor: tflite.Tensor) -> np.ndarray | None:
    """A constant tensor's value, dequantised to float32 (None for activations)."""
    buf = model.Buffers(tensor.Buffer())
    if buf is None or buf.DataLength() == 0:
        return None
    dtype = _DTYPES.get(tensor.Type())
    if dtype is None:
        raise ValueError(f"tensor {tensor.Name().decode()!r} has unsupported TFLite type {tensor.Type()}")
    shape = tuple(int(s) for s in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
    raw = np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=dtype).reshape(shape)
    scale, zero, axis = _quant(tensor)
    if scale is None or dtype in (np.float32, np.float16):
        return raw.astype(np.float32)
    assert zero is not None  # (_quant gives both or neither)
    # Per-channel quantisation: one (scale, zero point) per index of the quantised dimension.
    bshape = [1] * raw.ndim
    if scale.size > 1:
        bshape[axis] = scale.size
    real = (raw.astype(np.float64) - zero.reshape(bshape)) * scale.reshape(bshape)
    out: np.ndarray = real.astype(np.float32)
    return out


def _options(op: tflite.Operator, kind: str) -> tuple[tuple[int, int], str | None, str | None]:
    import tflite

    cls = {
        "CONV_2D": tflite.Conv2DOptions,
        "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
        "FULLY_CONNECTED": tflite.FullyConnectedOptions,
        "AVERAGE_POOL_2D": tflite.Pool2DOptions,
        "ADD": tflite.AddOptions,
    }.get(kind)
    if cls is None or op.BuiltinOptions() is None:
        return (1, 1), None, None
    opt = cls()
    opt.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
    stride = (opt.StrideH(), opt.StrideW()) if hasattr(opt, "StrideH") else (1, 1)
    padding = _PADDING.get(opt.Padding()) if hasattr(opt, "Padding") else None
    act = _ACTIVATION.get(opt.FusedActivationFunction()) if hasattr(opt, "FusedActivationFunction") else None
    return stride, padding, act


def read_tflite(path: str | Path) -> TFLiteGraph:
    """Parse the first subgraph of the TFLite file at `path`."""
    import tflite

    data = Path(path).read_bytes()
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        graph = model.Subgraphs(0)
    except Exception as e:  # flatbuffers raises assorted errors on garbage
        raise ValueError(f"{path} is not a readable TFLite model ({type(e).__name__}: {e})") from e
    if graph is None:
        raise ValueError(f"{path} holds no TFLite subgraph")
    names = _op_names()
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = codes[op.OpcodeIndex()]
        # Newer files put the code in BuiltinCode; old ones (and codes < 127) in the deprecated field.
        kind = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "UNKNOWN")
        stride, padding, act = _options(op, kind)
        inputs = [graph.Tensors(j) for j in op.InputsAsNumpy() if j >= 0]
        out = graph.Tensors(op.Outputs(0))
        rec = TFLiteOp(kind=kind, stride=stride, padding=padding, activation=act,
                       output_shape=tuple(int(s) for s in out.ShapeAsNumpy()))
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(inputs) >= 2:
            rec.weight = _const(model, inputs[1])
            rec.name = inputs[1].Name().decode()
            scale, zero, axis = _quant(inputs[1])
            rec.weight_quant = dict(per_channel=bool(scale is not None and scale.size > 1), axis=axis)
            rec.bias = _const(model, inputs[2]) if len(inputs) >= 3 else None
        ops.append(rec)
    inp = graph.Tensors(graph.Inputs(0))
    scale, zero, _ = _quant(inp)
    out = graph.Tensors(graph.Outputs(0))
    return TFLiteGraph(
        ops=ops,
        input_shape=tuple(int(s) for s in inp.ShapeAsNumpy()),
        input_scale=float(scale[0]) if scale is not None else None,
        input_zero_point=int(zero[0]) if zero is not None else None,
        output_shape=tuple(int(s) for s in out.ShapeAsNumpy()),
    )
