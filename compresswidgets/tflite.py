"""TFLite: conversion (in a recycled worker process), sizes, running a model, weight errors.

Example:
    >>> blob = convert(model, "dynamic")                     # doctest: +SKIP
    >>> sizes(blob)                                           # doctest: +SKIP
    (41864, 28391)
    >>> evaluate(blob, x_test, y_test)                        # doctest: +SKIP
    0.9711
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from compresswidgets import _converter, _jobs, _keras, _process
from compresswidgets._converter import (
    CALIBRATED,
    MODES,
    ConversionError,
    converter_code,
    input_spec,
    save_forward,
    summarise,
)
from compresswidgets._data import Metric, default_metric, single_io
from compresswidgets.inspection import snr_db

__all__ = ["CALIBRATED", "IDEAL_RMSE_SCALE", "MODES", "RMSE_SCALE_LIMIT", "TYPICAL_STEPS_LIMIT",
           "ConversionError", "Int8Report", "LayerError", "LstmWeights", "convert",
           "converter_code", "dequantized_kernels", "dynamic_lstm_notes", "evaluate",
           "fixed_batch", "int8_debugged", "lstm_weights", "quantization_error", "sizes",
           "summarise"]


def shutdown() -> None:
    """Stop the worker process (a new one starts with the next job)."""
    _process.shutdown()


def convert(model: Any, mode: str = "float32", representative: np.ndarray | None = None) -> bytes:
    """Convert a Keras model to a .tflite flatbuffer with the settings of ``mode``.

    Conversion runs in a separate, recycled process. Models of built-in tf_keras layers are
    sent as JSON and weights and rebuilt there; others are exported as a SavedModel here.
    A model that does not convert with a dynamic batch (Keras LSTM/GRU in TF 2.21) is
    converted again with a fixed batch of 1, as TFLite's guide for Keras RNNs does;
    :func:`fixed_batch` tells which one you got.

    Raises:
        ConversionError: one readable sentence; ``.details`` has the converter's output.
    """
    return _converted(model, mode, representative)["tflite"]


def _converted(model: Any, mode: str, representative: np.ndarray | None,
               debug: dict[str, Any] | None = None) -> dict[str, Any]:
    """The worker's answer for :func:`convert` (and :func:`int8_debugged`)."""
    if mode not in MODES:
        raise ValueError(f"Unknown conversion mode {mode!r}. Expected one of {', '.join(MODES)}.")
    if mode in CALIBRATED and (representative is None or len(representative) == 0):
        raise ValueError(
            f"Mode {mode!r} calibrates activation ranges and needs representative samples, but "
            "none were given. Pass representative=x_train[:100] (a Workbench does this from "
            "its training split)."
        )
    _refuse_known_crash(model, mode)
    folder = tempfile.mkdtemp(prefix="cw-convert-")
    try:
        rep_path = None
        if representative is not None and mode in CALIBRATED:
            rep_path = os.path.join(folder, "representative.npy")
            np.save(rep_path, np.asarray(representative, dtype=np.float32))
        result = None
        if _jobs.portable(model):  # rebuilt and converted in the worker: nothing traced here
            _jobs.write_model(model, folder)
            key = _architecture(folder)
            result = _run(("keras", folder, mode, rep_path, key in _NEEDS_FIXED_BATCH, debug))
            if result.get("fixed"):  # variants of this architecture go straight to batch 1
                _NEEDS_FIXED_BATCH.add(key)
        if result is None or "rebuild" in result:
            saved = os.path.join(folder, "saved_model")
            _export(model, saved)
            extra = _converter.extra_settings(model, mode)
            result = _run(("saved_model", saved, mode, rep_path, False, debug, extra))
            if "error" in result and _converter.retry_fixed(model, result["error"]):
                shutil.rmtree(saved, ignore_errors=True)
                _export(model, saved, batch=1)
                result = _run(("saved_model", saved, mode, rep_path, False, debug, extra))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if "error" in result:
        if result.get("type") == "ValueError" and debug is not None:
            raise ValueError(result["error"])  # a keep_float the model cannot honour
        raise summarise(mode, result["error"])
    return result


@dataclass(frozen=True)
class LayerError:
    """The activation error of one op of a full-integer model, against the float op fed the
    same (dequantized) input, as TFLite's ``QuantizationDebugger`` measures it.

    ``rmse_scale`` is the root-mean-square error in quantization steps: about 0.29
    (:data:`IDEAL_RMSE_SCALE`) is rounding alone; well above means the op's int8 arithmetic
    loses more than its output's rounding. ``typical_steps`` is how many steps a typical
    (median nonzero) output value spans: below :data:`TYPICAL_STEPS_LIMIT` (in an op whose
    range is calibrated, not in :data:`FIXED_RANGE_OPS`), a few huge
    values stretch the range and int8 rounds the ordinary ones away, although their error
    is small against the huge step. :attr:`misfit` says which, if either.
    """

    layer: str | None
    tensor: str
    op: str
    scale: float
    zero_point: int
    rmse_scale: float
    max_abs_error: float
    mean_error: float
    mean_squared_error: float
    typical_steps: float = math.inf

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def named(self, user_name: Callable[[str], str]) -> LayerError:
        """The same error with its layer as the user spells it."""
        return dataclasses.replace(self, layer=user_name(self.layer) if self.layer else None)

    @property
    def misfit(self) -> str:
        """Why this op's activations do not fit int8 (empty when they do)."""
        if self.rmse_scale > RMSE_SCALE_LIMIT:
            return f"rmse/scale {self.rmse_scale:.2f} (above {RMSE_SCALE_LIMIT:g})"
        if self.typical_steps < TYPICAL_STEPS_LIMIT and self.op not in FIXED_RANGE_OPS:
            return (f"a typical value is {self.typical_steps:.2g} steps (below "
                    f"{TYPICAL_STEPS_LIMIT:g}: it rounds to zero); outliers stretch the range")
        return ""


#: rmse/scale of a tensor whose range fits int8: rounding alone gives 1/sqrt(12).
IDEAL_RMSE_SCALE = 1 / math.sqrt(12)
#: Above this an op's int8 output is several quantization steps off.
RMSE_SCALE_LIMIT = 1.0
#: Below half a step a typical (median nonzero) output value rounds to zero: most of the
#: op's information is lost, its range stretched by a few large values.
TYPICAL_STEPS_LIMIT = 0.5
#: Ops whose int8 output range is fixed by the op, not calibrated (softmax and logistic on
#: [0, 1] in steps of 1/256, tanh on [-1, 1]): no outlier can stretch it, and their many
#: near-zero outputs are meant to round to zero.
FIXED_RANGE_OPS = frozenset({"SOFTMAX", "LOG_SOFTMAX", "LOGISTIC", "TANH"})


@dataclass(frozen=True)
class Int8Report:
    """What :func:`int8_debugged` gives: the .tflite, its per-op errors, the denylist."""

    tflite: bytes
    errors: tuple[LayerError, ...]
    denylist: tuple[str, ...]


def int8_debugged(model: Any, representative: np.ndarray,
                  keep_float: list[str] | None = None) -> Int8Report:
    """Full-integer ("int8") conversion through TFLite's ``QuantizationDebugger``: the
    .tflite and the per-op activation errors; with ``keep_float``, the ops of those layers
    stay float (the debugger's denylist; the errors are then of that model).

    Every op of a kept layer is verified in the .tflite: its weights and outputs float32.

    Raises:
        ValueError: a ``keep_float`` layer has no op of its own in the .tflite, or one of its
            ops is still quantized there.
        ConversionError: as :func:`convert`.
    """
    layers = [layer.name for layer in getattr(model, "layers", [])]
    result = _converted(model, "int8", representative, {"keep_float": keep_float,
                                                        "layers": layers})
    if keep_float:
        check_kept_float(result["tflite"], keep_float, layers)
    errors = []
    for row in result["stats"]:
        name = row["tensor_name"]
        owner = next((n for n in layers if _converter.owns(name, n)), None) or next(
            (n for n in layers if _converter.owns(name, n, layers)), None)
        scale = float(row["scale"]) or 1.0
        errors.append(LayerError(
            owner, name, row["op_name"], float(row["scale"]), int(row["zero_point"]),
            math.sqrt(max(0.0, float(row["mean_squared_error"]))) / scale,
            float(row["max_abs_error"]), float(row["mean_error"]),
            float(row["mean_squared_error"]), float(row.get("typical_steps", math.inf))))
    return Int8Report(result["tflite"], tuple(errors), tuple(result["denylist"]))


#: Tensor types of a quantized op: a kept layer's op reads and makes none of them.
_QUANTIZED_TYPES = frozenset({"int8", "uint8", "int16"})
#: Ops that convert around a float op, and the interpreter's delegate partitions.
_NOT_COMPUTING = frozenset({"QUANTIZE", "DEQUANTIZE", "DELEGATE"})


def quantized_ops(tflite: bytes, layer: str, layers: list[str]) -> list[tuple[str, str]]:
    """``(op, output tensor)`` of each op of ``layer`` (by its output tensor's name) that
    computes with a quantized tensor: an int8/uint8/int16 input (its weights, or an input
    not dequantized) or output. Ops with integer outputs only (the SHAPE of a
    Conv2DTranspose), the QUANTIZE/DEQUANTIZE ops around a float op and delegate
    partitions do not count."""
    it = interpreter(tflite)
    tensors = it.get_tensor_details()

    def kind(index: int) -> str:
        return np.dtype(tensors[index]["dtype"]).name

    found = []
    for op in it._get_ops_details():
        outputs = [i for i in op["outputs"] if i >= 0]
        if op["op_name"] in _NOT_COMPUTING or not outputs or not any(
                _converter.owns(tensors[i]["name"], layer, layers) for i in outputs):
            continue
        if all(kind(i) not in _QUANTIZED_TYPES and not kind(i).startswith("float")
               for i in outputs):
            continue
        used = [i for i in (*op["inputs"], *outputs) if i >= 0]
        if any(kind(i) in _QUANTIZED_TYPES for i in used):
            found.append((op["op_name"], tensors[outputs[0]]["name"]))
    return found


def check_kept_float(tflite: bytes, keep_float: list[str], layers: list[str]) -> None:
    """Every op of each ``keep_float`` layer is float in ``tflite`` (weights and outputs
    float32), or a ValueError names the layer and the op."""
    for layer in keep_float:
        bad = quantized_ops(tflite, layer, layers)
        if bad:
            op, tensor = bad[0]
            raise ValueError(
                f"keep_float={list(keep_float)!r} asks for layer {layer!r} to stay float, but "
                f"its op {op} ({tensor}) is still quantized in the .tflite: TFLite's "
                "quantization debugger did not keep it float. Expected every op of a kept "
                "layer to run in float (float32 weights and outputs). Leave "
                f"{layer!r} out of keep_float, or keep the whole model's activations float "
                "with mode='dynamic' or 'float16'.")


#: Layers whose loop the converter's calibration crashes on (SIGSEGV, TF 2.21): GRU and
#: SimpleRNN are not fused into a TFLite op as LSTM is, and full-integer calibration of
#: their WHILE loop kills the process (in a notebook on Binder: the kernel).
_CALIBRATION_CRASHES = ("GRU", "SimpleRNN")


def _refuse_known_crash(model: Any, mode: str) -> None:
    if mode not in CALIBRATED:
        return
    found = []
    for layer in getattr(model, "layers", []):
        inner = getattr(layer, "forward_layer", None) or layer
        if type(inner).__name__ in _CALIBRATION_CRASHES:
            found.append(f"{layer.name!r} ({type(layer).__name__})")
    if found:
        raise ConversionError(
            f"The TFLite converter cannot quantize {', '.join(found)} in mode {mode!r}: in TF "
            "2.21 its full-integer calibration crashes on GRU and SimpleRNN loops (LSTM is "
            "fine: it becomes a fused TFLite op). Use mode='dynamic' (int8 weights, float "
            "activations) or 'float16', or replace the GRU with an LSTM for full integer.")
    from compresswidgets import _bridge

    loops = [name for name in _bridge.unfused_layers(model)
             if not name.endswith("(TimeDistributed)")]
    if loops:  # a Keras 3 model converted through its own export
        raise ConversionError(
            f"The TFLite converter cannot quantize {', '.join(loops)} of this Keras 3 model in "
            f"mode {mode!r}: Keras 3's export hands it the layer as a WHILE loop, not as the "
            "fused UNIDIRECTIONAL_SEQUENCE_LSTM op a tf_keras LSTM becomes, and in TF 2.21 "
            "full-integer calibration of that loop crashes the converter. Convert its verified "
            "tf_keras twin instead, `convert(cw.to_tf_keras(model, x_test), "
            f"{mode!r}, representative=...)` (a Workbench does this for every model it can "
            "bridge), or use mode='dynamic' or 'float16'.")


#: Architectures (hashes of their JSON) that only convert with a fixed batch.
_NEEDS_FIXED_BATCH: set[str] = set()


def _architecture(folder: str) -> str:
    import hashlib

    with open(os.path.join(folder, "model.json"), "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def fixed_batch(tflite: bytes) -> int | None:
    """The batch a .tflite was converted for, or None when its batch is dynamic.

    Example:
        >>> fixed_batch(blob)        # doctest: +SKIP  (an LSTM converted with batch 1)
        1
    """
    detail = interpreter(tflite).get_input_details()[0]
    signature = detail.get("shape_signature", detail["shape"])
    return None if len(signature) == 0 or signature[0] == -1 else int(signature[0])


def _export(model: Any, path: str, batch: int | None = None) -> None:
    """A SavedModel for the converter; with ``batch``, its signature has that fixed batch."""
    tf = _keras.tf()
    with _keras._quiet_native_logs():
        try:
            if _keras.keras_flavour(model) == "keras3":
                # tf.saved_model.save on a Keras 3 model leaves its weights out of the
                # graph (the .tflite then predicts noise); Keras 3's own export keeps them
                model.export(path, format="tf_saved_model", verbose=False,
                             input_signature=input_spec(model, batch) if batch else None)
            elif single_io(model):  # its forward pass only: seconds, not the whole model
                save_forward(model, path, batch)
            else:
                tf.saved_model.save(model, path)
        except Exception as exc:
            raise ConversionError(f"Could not export the model for conversion: "
                                  f"{type(exc).__name__}: {exc}") from exc


def _run(request: tuple) -> dict[str, Any]:
    try:
        return _jobs.convert(*request)
    except _process.WorkerDied as exc:
        crashed = "crashed" in str(exc)
        raise ConversionError(
            f"The TFLite converter process died while converting ({request[2]}), twice: "
            + ("the converter itself crashed on this model in this mode (a TensorFlow bug; "
               "known for GRU layers in the calibrated modes int8, int8-only and int16x8). "
               "Try another mode, e.g. 'dynamic' or 'float16'."
               if crashed else "it may have run out of memory; close other notebooks or try "
               "a smaller model."), details=str(exc)) from None


def sizes(tflite: bytes) -> tuple[int, int]:
    """``(size_bytes, gzipped_bytes)``: gzip (level 9) is where sparsity and clusters pay off."""
    return len(tflite), len(gzip.compress(tflite, compresslevel=9, mtime=0))


def check_flatbuffer(blob: Any, where: str = "tflite") -> bytes:
    """``blob`` as bytes if it is a TFLite flatbuffer (the ``TFL3`` identifier at byte 4),
    else a three-part error: what it is, what is expected, how to get one."""
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise TypeError(f"{where} must be the bytes of a .tflite model, but got "
                        f"{_keras.describe(blob)}. Pass `open(path, 'rb').read()` or a "
                        "converter's output.")
    blob = bytes(blob)
    if len(blob) < 8 or blob[4:8] != b"TFL3":
        head = blob[:16]
        raise ValueError(f"{where} is not a TFLite model: {len(blob):,} bytes starting with "
                         f"{head!r}, where a .tflite file has the identifier b'TFL3' at byte 4. "
                         "The file may be truncated or something else; convert the model "
                         "again (tf.lite.TFLiteConverter) or save the variant again.")
    return blob


def interpreter(tflite: bytes, num_threads: int = 1) -> Any:
    """A LiteRT interpreter for the flatbuffer (not yet allocated)."""
    from ai_edge_litert.interpreter import Interpreter

    with _keras._quiet_native_logs():
        return Interpreter(model_content=tflite, num_threads=num_threads)


def input_dtype(tflite: bytes) -> np.dtype:
    return np.dtype(interpreter(tflite).get_input_details()[0]["dtype"])


def op_names(tflite: bytes) -> list[str]:
    """The operators of a flatbuffer in execution order (``"CONV_2D"``, ...)."""
    return [op["op_name"] for op in interpreter(tflite)._get_ops_details()]


@dataclass(frozen=True)
class LstmWeights:
    """The gate matrices of one fused LSTM op of a .tflite: each one's ``(rows, columns)``
    (TFLite's layout: units x features, units x units) and how it is stored: ``"int8"`` (read
    as int8 by a hybrid LSTM), ``"dequantized"`` (int8 in the file, a DEQUANTIZE op turns it
    into float32 when the model loads: the LSTM computes in float) or ``"float32"``."""

    shapes: tuple[tuple[int, int], ...]
    storage: tuple[str, ...]

    @property
    def features(self) -> int:
        """Read from an input-to-gate matrix (they come first, the recurrent ones last)."""
        return self.shapes[0][1] if self.shapes else 0

    @property
    def units(self) -> int:
        return self.shapes[0][0] if self.shapes else 0


def lstm_weights(tflite: bytes) -> list[LstmWeights]:
    """The gate matrices of every UNIDIRECTIONAL_SEQUENCE_LSTM op (inputs 1-8 in TFLite's
    schema; a CIFG LSTM has 6), in execution order."""
    it = interpreter(tflite)
    tensors = it.get_tensor_details()
    ops = it._get_ops_details()
    dequantized = {op["outputs"][0]: op["inputs"][0] for op in ops
                   if op["op_name"] == "DEQUANTIZE"}
    found = []
    for op in ops:
        if op["op_name"] != "UNIDIRECTIONAL_SEQUENCE_LSTM":
            continue
        shapes, storage = [], []
        for index in op["inputs"][1:9]:
            if index < 0:
                continue
            shapes.append(tuple(int(n) for n in tensors[index]["shape"]))
            kind = np.dtype(tensors[index]["dtype"]).name
            source = dequantized.get(index)
            storage.append("dequantized" if source is not None
                           and np.dtype(tensors[source]["dtype"]).name == "int8" else kind)
        found.append(LstmWeights(tuple(shapes), tuple(storage)))
    return found


def dynamic_lstm_notes(tflite: bytes, names: list[str] | None = None) -> list[str]:
    """What dynamic-range quantization did not do to the fused LSTMs of ``tflite``: an LSTM
    left float (every gate matrix under the converter's 1,024 elements), or one computing in
    float from int8-stored matrices. ``names`` are the LSTM layers in order (a Bidirectional's
    two directions each), used when they match the ops one to one."""
    found = lstm_weights(tflite)
    names = list(names or [])
    notes = []
    for i, op in enumerate(found):
        what = (f"LSTM {names[i]!r}" if len(names) == len(found)
                else f"an LSTM ({op.features} features, {op.units} units)")
        small = f"{op.units}×{op.features} = {op.units * op.features:,}"
        if all(kind == "float32" for kind in op.storage):
            notes.append(
                f"Dynamic range left {what} float: the converter quantizes a weight matrix of "
                f"at least {_converter.MIN_ELEMENTS:,} elements only, and it splits an LSTM's "
                f"kernels into one matrix per gate, here {small} and {op.units}×{op.units} = "
                f"{op.units * op.units:,} weights. Mode 'float16' halves them; 'int8' "
                "quantizes them.")
        elif "dequantized" in op.storage:
            stored = op.storage.count("dequantized")
            notes.append(
                f"{what[0].upper()}{what[1:]} computes in float: its {stored} gate matrices "
                f"of at least {_converter.MIN_ELEMENTS:,} weights are stored int8 and "
                "dequantized when the model loads (TFLite's int8-weight LSTM needs all "
                f"{len(op.storage)} in int8, and its input matrices have {small} weights "
                "each).")
    return notes


def predict(tflite: bytes, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Run the model on ``x`` (float inputs; int8/uint8 models are quantized for you)."""
    with _keras._quiet_native_logs():
        return _predict(tflite, x, batch)


def _predict(tflite: bytes, x: np.ndarray, batch: int) -> np.ndarray:
    it = interpreter(tflite, num_threads=min(2, os.cpu_count() or 1))
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    signature = inp.get("shape_signature", inp["shape"])
    fixed = int(signature[0]) if len(signature) and signature[0] != -1 else None
    if fixed is not None:  # e.g. a fused LSTM: its state tensors cannot be resized
        batch = fixed
        it.allocate_tensors()
    outputs = []
    for start in range(0, len(x), batch):
        chunk = np.asarray(x[start : start + batch])
        rows = len(chunk)
        if fixed is None:
            it.resize_tensor_input(inp["index"], list(chunk.shape), strict=False)
            it.allocate_tensors()
        else:
            # a fused LSTM keeps its state in variables between invocations: start afresh
            it.reset_all_variables()
            if rows < fixed:  # the last chunk of a fixed batch: pad, then drop the padding
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - rows, axis=0)])
        it.set_tensor(inp["index"], _quantize(chunk, inp))
        it.invoke()
        outputs.append(_dequantize(it.get_tensor(out["index"]), out)[:rows])
    return np.concatenate(outputs)


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.dtype(detail["dtype"]).kind == "f":
        return y
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * scale


def evaluate(tflite: bytes, x: np.ndarray, y: np.ndarray, metric: Metric | None = None) -> float:
    """The metric (default: accuracy) of the .tflite model on ``(x, y)``."""
    return float((metric or default_metric)(y, predict(tflite, x)))


# --------------------------------------------------------------------------- weight errors
@dataclass(frozen=True)
class WeightError:
    """A Keras kernel against its dequantized TFLite counterpart."""

    layer: str
    weight: str
    tflite_dtype: str
    max_abs_error: float
    snr_db: float

    def as_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "weight": self.weight, "tflite_dtype": self.tflite_dtype,
                "max_abs_error": self.max_abs_error, "snr_db": self.snr_db}


def _constants(tflite: bytes) -> list[tuple[str, np.ndarray, dict]]:
    it = interpreter(tflite)
    with _keras._quiet_native_logs():
        it.allocate_tensors()
    found = []
    for detail in it.get_tensor_details():
        if len(detail["shape"]) < 2:
            continue
        try:
            value = it.get_tensor(detail["index"])
        except ValueError:  # activations have no data until run
            continue
        found.append((detail["name"], np.array(value), detail))
    return found


def _dequantize_weights(value: np.ndarray, detail: dict) -> np.ndarray:
    q = detail["quantization_parameters"]
    if value.dtype.kind == "f":
        return value.astype(np.float32)
    scales, zeros = np.asarray(q["scales"], np.float32), np.asarray(q["zero_points"], np.float32)
    if scales.size == 0:
        return value.astype(np.float32)
    axis = int(q["quantized_dimension"])
    shape = [1] * value.ndim
    shape[axis] = -1
    if scales.size == 1:
        shape = [1] * value.ndim
    return (value.astype(np.float32) - zeros.reshape(shape)) * scales.reshape(shape)


def _to_keras_layout(value: np.ndarray, keras_shape: tuple[int, ...],
                     layer_class: str) -> np.ndarray | None:
    """TFLite stores kernels output-channel first; bring them back to Keras' layout."""
    if value.ndim == 2:  # FullyConnected (out, in) -> Dense (in, out), square ones included
        restored = value.T
    elif "Depthwise" in layer_class:  # (1, h, w, in * multiplier) -> (h, w, in, multiplier)
        restored = value.reshape(keras_shape) if value.size == math.prod(keras_shape) else value
    elif "Transpose" in layer_class:  # (out, h, w, in) -> (h, w, out, in)
        restored = value.transpose(1, 2, 0, 3)
    elif value.ndim == 4:  # Conv2D (out, h, w, in) -> (h, w, in, out)
        restored = value.transpose(1, 2, 3, 0)
    else:
        restored = value
    return restored if restored.shape == tuple(keras_shape) else None


def dequantized_kernels(model: Any, tflite: bytes) -> dict[str, np.ndarray]:
    """Each conv/dense kernel of ``model`` as stored in ``tflite``, dequantized to float32 and
    put back into Keras' layout (keyed by layer name), e.g. to plot before/after histograms.

    Kernels are matched by layer name in the TFLite tensor names (``.../conv2d/Conv2D``; QAT
    layers appear as ``quant_conv2d``) and by size; layers the converter folded or renamed
    beyond recognition are left out.
    """
    return {name: restored for name, _, _, restored, _ in _matched(model, tflite)}


def _matched(model: Any, tflite: bytes) -> list[tuple[str, str, np.ndarray, np.ndarray, str]]:
    """``(layer, weight, Keras kernel, dequantized TFLite kernel, TFLite dtype)`` per kernel."""
    constants = _constants(tflite)
    found = []
    for name, layer_class, weight, variable in _kernels(model):
        reference = np.asarray(variable.numpy(), dtype=np.float32)
        keys = (f"/{name}/", f"/quant_{name}/")
        for tensor_name, value, detail in constants:
            if value.size != reference.size or not any(key in tensor_name for key in keys):
                continue
            restored = _to_keras_layout(_dequantize_weights(value, detail), reference.shape,
                                        layer_class)
            if restored is None:
                continue
            found.append((name, weight, reference, restored, str(value.dtype)))
            break
    return found


def quantization_error(model: Any, tflite: bytes) -> list[WeightError]:
    """Per kernel: max absolute error and SNR (dB) of the TFLite weights against ``model``'s
    (matched as in :func:`dequantized_kernels`)."""
    errors = []
    for name, weight, reference, restored, dtype in _matched(model, tflite):
        diff = restored.astype(np.float64) - reference
        errors.append(WeightError(name, weight, dtype, float(np.max(np.abs(diff))),
                                  snr_db(reference, restored)))
    return errors


def _kernels(model: Any) -> list[tuple[str, str, str, Any]]:
    """``(layer name, layer class, weight name, variable)`` of every conv/dense kernel.

    QAT wrappers (``quant_conv2d`` around ``conv2d``) are looked through: their variables are
    read by name, since the wrapped layer's ``kernel`` attribute is a symbolic tensor there.
    """
    out = []
    for layer in getattr(model, "layers", []):
        if getattr(layer, "layers", None):
            out.extend(_kernels(layer))
            continue
        inner = getattr(layer, "layer", None)
        target = inner if inner is not None else layer
        variables = {v.name.rsplit("/", 1)[-1].split(":")[0]: v for v in layer.weights}
        for weight in ("depthwise_kernel", "kernel"):
            if weight in variables:
                out.append((target.name, type(target).__name__, weight, variables[weight]))
                break
    return out
