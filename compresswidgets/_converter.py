"""The TFLite converter's settings, defined once: the same table configures the converter and
writes the code a variant shows, so the two cannot drift.

This module converts in the calling process (the worker calls it); :func:`compresswidgets.
tflite.convert` is the kernel's door, which sends the work to the worker.
"""

from __future__ import annotations

import math
import re
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from compresswidgets import _keras
from compresswidgets._data import single_io

__all__ = ["CALIBRATED", "MODES", "ConversionError", "Mode", "configure", "converter_code",
           "summarise"]

#: The seed that draws representative samples from the training split (here and in code).
SEED = 7


@dataclass(frozen=True)
class Mode:
    """One converter mode: what it is for a person, and the converter settings it makes.

    Names in ``supported_types`` and ``io_type`` are ``tf`` dtypes; ``supported_ops`` names
    ``tf.lite.OpsSet`` members.
    """

    name: str
    label: str
    optimize: bool = False
    supported_types: tuple[str, ...] = ()
    calibrated: bool = False
    supported_ops: tuple[str, ...] = ()
    io_type: str | None = None

    def settings(self) -> list[tuple[str, tuple[str, ...], bool]]:
        """``(converter attribute, names under tf, as a list)`` in the order they are set;
        the representative dataset (calibrated modes) comes before ``supported_ops``."""
        out: list[tuple[str, tuple[str, ...], bool]] = []
        if self.optimize:
            out.append(("optimizations", ("lite.Optimize.DEFAULT",), True))
        if self.supported_types:
            out.append(("target_spec.supported_types", self.supported_types, True))
        if self.supported_ops:
            out.append(("target_spec.supported_ops",
                        tuple(f"lite.OpsSet.{op}" for op in self.supported_ops), True))
        if self.io_type:
            out.append(("inference_input_type", (self.io_type,), False))
            out.append(("inference_output_type", (self.io_type,), False))
        return out


TABLE: dict[str, Mode] = {m.name: m for m in (
    Mode("float32", "float32 (plain conversion)"),
    Mode("dynamic", "dynamic range (int8 weights)", optimize=True),
    Mode("float16", "float16 weights", optimize=True, supported_types=("float16",)),
    Mode("int8", "full integer (int8, float fallback)", optimize=True, calibrated=True),
    Mode("int8-only", "integer only (int8 in and out)", optimize=True, calibrated=True,
         supported_ops=("TFLITE_BUILTINS_INT8",), io_type="int8"),
    Mode("int16x8", "16x8 (int16 activations)", optimize=True, calibrated=True,
         supported_ops=("EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8",)),
    Mode("qat", "quantization-aware training", optimize=True),
)}
#: Converter settings by name; "float32" is the plain conversion used to size Keras variants.
MODES = tuple(TABLE)
#: Modes that need representative data from the training split.
CALIBRATED = tuple(name for name, m in TABLE.items() if m.calibrated)


def _resolve(tf: Any, dotted: str) -> Any:
    value = tf
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


#: TF 2.21's dynamic-range quantizer (the MLIR one, the default) quantizes the weights of a
#: fused LSTM op only when every gate matrix (input x units and units x units: the converter
#: splits an LSTM's kernels per gate) has at least this many elements; else the whole op
#: stays float (an LSTM(32) on 6 features: 23,076 B, the float size).
MIN_ELEMENTS = 1024
#: The converter's previous dynamic-range quantizer stores each gate matrix of
#: :data:`MIN_ELEMENTS` or more int8, dequantized when the model loads (the LSTM then
#: computes in float): 11,360 B for the LSTM(32) above.
LEGACY_DYNAMIC = (("experimental_new_dynamic_range_quantizer", False),)


def lstm_gates(model: Any) -> list[tuple[str, int, int]]:
    """``(layer name, input features, units)`` of each LSTM of ``model`` in layer order (a
    Bidirectional's two, nested models' included), read from the cell's kernel, which is
    ``(features, 4 * units)`` in both Kerases."""
    found = []
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop(0)
        if getattr(layer, "layers", None) and type(layer).__name__ in ("Functional",
                                                                        "Sequential"):
            stack[:0] = list(layer.layers)
            continue
        directions = [(layer.name + " (forward)", layer.forward_layer),
                      (layer.name + " (backward)", layer.backward_layer)] if (
            getattr(layer, "forward_layer", None) is not None) else [(layer.name, layer)]
        for name, inner in directions:
            cell = getattr(inner, "cell", None)
            kernel = getattr(cell, "kernel", None)
            if "LSTM" in type(inner).__name__ and kernel is not None and len(kernel.shape) == 2:
                found.append((name, int(kernel.shape[0]), int(kernel.shape[1]) // 4))
    return found


def extra_settings(model: Any, mode: str) -> tuple[tuple[str, Any], ...]:
    """Converter settings beyond ``mode``'s for this model: in "dynamic", the previous
    dynamic-range quantizer (:data:`LEGACY_DYNAMIC`) when the default one would leave an
    LSTM float although some of its gate matrices are large enough to quantize."""
    if mode != "dynamic" or _keras.keras_flavour(model) != "tf_keras":
        return ()  # Keras 3's own export has no fused LSTM op to quantize
    for _, features, units in lstm_gates(model):
        sizes = (features * units, units * units)
        if min(sizes) < MIN_ELEMENTS <= max(sizes):
            return LEGACY_DYNAMIC
    return ()


def configure(converter: Any, tf: Any, mode: str, representative_path: str | None,
              extra: tuple[tuple[str, Any], ...] = ()) -> None:
    """Apply the settings of ``mode`` (the same ones :func:`converter_code` writes), then
    ``extra`` (:func:`extra_settings`)."""
    m = TABLE[mode]
    if m.calibrated:
        samples = np.load(representative_path) if representative_path else None

        def representative_dataset() -> Any:
            for i in range(len(samples)):
                yield [samples[i : i + 1].astype(np.float32)]

        converter.representative_dataset = representative_dataset
    for attribute, names, as_list in m.settings():
        values = [_resolve(tf, n) for n in names]
        owner = converter
        *path, last = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, last, values if as_list else values[0])
    for attribute, value in extra:
        setattr(converter, attribute, value)


def converter_code(mode: str, samples: int = 100, fixed_batch: int | None = None,
                   extra: tuple[tuple[str, Any], ...] = ()) -> list[str]:
    """The settings of ``mode`` as code; with ``fixed_batch``, from a concrete function of
    that batch (Keras LSTM/GRU models do not convert with a dynamic batch); ``extra`` as
    :func:`configure` sets it. Expects ``model`` and (calibrated modes) ``x_train``; ends
    with ``tflite_model``."""
    m = TABLE[mode]
    if fixed_batch:
        lines = [
            f"# This model converts with a fixed batch of {fixed_batch} only (its recurrent "
            "layers need a static shape).",
            "run = tf.function(lambda x: model(x, training=False))",
            f"concrete = run.get_concrete_function(tf.TensorSpec([{fixed_batch}, "
            "*model.input_shape[1:]], model.inputs[0].dtype))",
            "converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)",
        ]
    else:
        lines = ["converter = tf.lite.TFLiteConverter.from_keras_model(model)"]
    if m.calibrated:
        lines += [
            f"rng = np.random.default_rng({SEED})",
            f"calibration = x_train[np.sort(rng.permutation(len(x_train))[:{samples}])]",
            "",
            "def representative_dataset():",
            "    for i in range(len(calibration)):",
            "        yield [calibration[i : i + 1].astype(np.float32)]",
            "",
            "converter.representative_dataset = representative_dataset",
        ]
    for attribute, names, as_list in m.settings():
        values = ", ".join(f"tf.{n}" for n in names)
        lines.append(f"converter.{attribute} = " + (f"[{values}]" if as_list else values))
    if extra == LEGACY_DYNAMIC:
        lines += [f"# The default quantizer leaves an LSTM float when one of its gate matrices "
                  f"is under {MIN_ELEMENTS:,}",
                  "# weights; the previous one stores the larger ones int8."]
    lines += [f"converter.{attribute} = {value!r}" for attribute, value in extra]
    lines.append("tflite_model = converter.convert()")
    return lines


def representative(x_train: np.ndarray, samples: int) -> np.ndarray:
    """``samples`` training inputs, drawn as the generated code draws them."""
    order = np.random.default_rng(SEED).permutation(len(x_train))[:samples]
    return np.asarray(x_train[np.sort(order)], dtype=np.float32)


# --------------------------------------------------------------------------- failures
class ConversionError(RuntimeError):
    """The TFLite converter refused a model.

    ``str(error)`` is one readable sentence (the op, the reason, the fix); ``error.details``
    is the converter's full output, for a bug report or a closer look.
    """

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details or message


#: Converter failures that a fixed input shape (batch 1) avoids: recurrent layers' tensor
#: lists need a static element shape (Keras LSTM/GRU in TF 2.21).
SHAPE_FAILURE = re.compile(r"TensorList\w*' op requires element_shape to be static|"
                           r"requires element_shape to be static")
_ERROR_LINE = re.compile(r"(?:^|\n)[^\n]*?error: ([^\n]+)")


def summarise(mode: str, text: str) -> ConversionError:
    """The converter's multi-line dump as one sentence (op, reason, fix) + the full text."""
    found = _ERROR_LINE.search(text)
    reason = (found.group(1) if found else text.strip().splitlines()[-1] if text.strip()
              else "no message").strip().rstrip(".")
    op = re.search(r"'((?:tf|tfl)\.\w+)' op", reason)
    if op:
        reason = reason.replace(f"'{op.group(1)}' op ", "")
        what = f"op {op.group(1)} {reason}"
    else:
        what = reason[:300]
    if SHAPE_FAILURE.search(text):
        fix = ("Recurrent layers need a fixed input shape: convert with a fixed batch "
               "(compresswidgets does this by itself for Keras models; pass a model with a "
               "fixed input shape if you convert yourself).")
    elif "Select TensorFlow op" in text or "TFLITE_BUILTINS" in text or "not supported" in text:
        fix = ("The op has no TFLite builtin kernel: replace the layer that makes it, or keep "
               "that part of the model outside TFLite.")
    else:
        fix = "The converter's full output is in the error's .details."
    return ConversionError(f"The TFLite converter failed ({mode}): {what}. {fix}", text)


def retry_fixed(model: Any, error: str) -> bool:
    """Whether a failed dynamic-batch conversion is worth a second try with batch 1."""
    shape = getattr(model, "input_shape", None)
    return (bool(SHAPE_FAILURE.search(error)) and isinstance(shape, tuple) and bool(shape)
            and shape[0] is None)


def input_spec(model: Any, batch: int | None) -> list[Any]:
    """The model's input as a ``tf.TensorSpec`` with batch ``batch`` (``None``: the model's
    own, usually dynamic)."""
    tf = _keras.tf()
    shape = tuple(model.input_shape)
    batch = shape[0] if batch is None else batch
    first = model.inputs[0] if getattr(model, "inputs", None) else None
    dtype = getattr(first, "dtype", "float32")
    # named after the Keras input, as from_keras_model names it: the .tflite is the size of
    # the one TFLite's own path makes, to the byte
    name = str(getattr(first, "name", "") or "input").split(":")[0]
    return [tf.TensorSpec([batch, *shape[1:]], tf.as_dtype(dtype), name=name)]


# --------------------------------------------------------------------------- converting here
def save_forward(model: Any, path: str, batch: int | None = None) -> None:
    """A SavedModel of the model's forward pass and its variables: all the converter reads.

    ``TFLiteConverter.from_keras_model`` (and ``tf.saved_model.save(model)``) save the whole
    Keras model, tracing every layer's call for Keras's own reloading: 12 s for a small
    bidirectional LSTM, 18 s for MobileNetV2 (alpha 0.35) on 2 cores. One traced function
    takes 1-5 s and converts to the same ops (benchmarks/bench_convert.py). With ``batch``
    the signature has that fixed batch (recurrent layers need it in TF 2.21); without, the
    model's own (a model built for a batch of 16 keeps it).
    """
    tf = _keras.tf()
    spec = input_spec(model, batch)
    module = tf.Module()
    module.weights = list(model.variables)  # tracked: the SavedModel holds them
    output = (list(getattr(model, "output_names", None) or ()) or ["output_0"])[0]
    module.forward = tf.function(lambda x: {output: model(x, training=False)},
                                 input_signature=spec)
    tf.saved_model.save(module, path, signatures=module.forward.get_concrete_function())


def convert_keras(model: Any, mode: str, representative_path: str | None = None,
                  fixed: bool = False, debug: dict[str, Any] | None = None) -> tuple[Any, bool]:
    """``(flatbuffer, converted with a fixed batch)`` of a Keras model, in this process.

    A model that does not convert with a dynamic batch (recurrent layers in TF 2.21) is
    converted again with a fixed batch of 1 (at once with ``fixed``: the caller knows this
    architecture needs it). With ``debug`` (``{"keep_float": [...] or None}``), the
    flatbuffer comes through :func:`debug_int8`, whose answer (a dict) is given instead.
    The model's :func:`extra_settings` are applied. Raises what the converter raises.
    """
    tf = _keras.tf()
    extra = extra_settings(model, mode)
    with _keras._quiet_native_logs(keep=False):  # the exception has the converter's words
        if not single_io(model):  # several inputs or outputs: TFLite's own path as it is
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
            configure(converter, tf, mode, representative_path, extra)
            return _finish(converter, tf, representative_path, debug), False
        if not fixed:
            try:
                return _convert_forward(model, None, mode, representative_path, debug,
                                        extra), False
            except Exception as exc:
                if not retry_fixed(model, str(exc)):
                    raise
        return _convert_forward(model, 1, mode, representative_path, debug, extra), True


def _finish(converter: Any, tf: Any, representative_path: str | None,
            debug: dict[str, Any] | None) -> Any:
    if debug is None:
        return bytes(converter.convert())
    return debug_int8(converter, tf, representative_path or "", debug.get("keep_float"),
                      debug.get("layers") or ())


def _convert_forward(model: Any, batch: int | None, mode: str,
                     representative_path: str | None, debug: dict[str, Any] | None = None,
                     extra: tuple[tuple[str, Any], ...] = ()) -> Any:
    """The flatbuffer of ``model``'s forward pass at ``batch`` (None: the model's own)."""
    tf = _keras.tf()
    with tempfile.TemporaryDirectory(prefix="cw-forward-") as folder:
        save_forward(model, folder, batch)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        configure(converter, tf, mode, representative_path, extra)
        return _finish(converter, tf, representative_path, debug)


def convert_saved_model(path: str, mode: str, representative_path: str | None = None,
                        debug: dict[str, Any] | None = None,
                        extra: tuple[tuple[str, Any], ...] = ()) -> Any:
    """A SavedModel's flatbuffer (or :func:`debug_int8`'s answer), in this process, with
    its model's :func:`extra_settings`."""
    tf = _keras.tf()
    with _keras._quiet_native_logs(keep=False):
        converter = tf.lite.TFLiteConverter.from_saved_model(path)
        configure(converter, tf, mode, representative_path, extra)
        return _finish(converter, tf, representative_path, debug)


# --------------------------------------------------------------------------- int8, layer by layer
def owns(tensor_name: str, layer: str, layers: Iterable[str] = ()) -> bool:
    """Whether a TFLite tensor (an op's output, ``model/conv2d/Relu;model/conv2d/BiasAdd``)
    is made by Keras layer ``layer`` (the test the generated code writes). Given the model's
    ``layers``, a scope with a numbered suffix counts too (``conv2d_4_1`` for ``conv2d_4``)
    when no layer has that name: Keras 3 suffixes every scope of a model traced before in
    the same process."""
    padded = f"/{tensor_name}"
    if f"/{layer}/" in padded:
        return True
    names = set(layers)
    return bool(names) and any(
        m.group(1) not in names
        for m in re.finditer(rf"/({re.escape(layer)}_\d+)/", padded))


def _statistics(debugger: Any) -> list[dict[str, Any]]:
    """The debugger's per-op rows (op, tensor, scale, zero point and error metrics)."""
    import csv
    import io

    out = io.StringIO()
    debugger.layer_statistics_dump(out)
    rows = []
    for row in csv.DictReader(io.StringIO(out.getvalue())):
        rows.append({key: (value if key in ("op_name", "tensor_name") else float(value))
                     for key, value in row.items()})
    return rows


def typical_steps(float_values: Any, quantized: Any, scale: float, zero_point: int) -> float:
    """How many int8 steps a typical output value of an op spans: the median of its nonzero
    float outputs (above a thousandth of a step), in units of the tensor's scale. An op
    whose range is stretched by a few huge values (an activation outlier) gives its
    ordinary values less than a step, so int8 rounds them away, although its rmse/scale
    looks ideal (their errors are small against the huge step). A
    ``layer_direct_compare_metrics`` function of the debugger."""
    if not scale:
        return math.inf
    values = np.abs(np.asarray(float_values, dtype=np.float64)).ravel()
    values = values[values > scale * 1e-3]  # zeros, and float noise around them
    if not values.size:
        return math.inf
    return float(np.median(values) / scale)


def _options(tf: Any, denylist: list[str] | None = None,
             by_type: list[str] | None = None) -> Any:
    return tf.lite.experimental.QuantizationDebugOptions(
        layer_direct_compare_metrics={"typical_steps": typical_steps},
        denylisted_nodes=denylist or None, denylisted_ops=by_type or None)


def debug_int8(converter: Any, tf: Any, representative_path: str,
               keep_float: list[str] | None, layers: Iterable[str] = ()) -> dict[str, Any]:
    """:func:`_debug_int8`, without the deprecation warning of the ``tf.lite.Interpreter``
    the debugger creates (it is TensorFlow's, not the user's to act on)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*Warning: tf\.lite\.Interpreter")
        return _debug_int8(converter, tf, representative_path, keep_float, tuple(layers))


def _debug_int8(converter: Any, tf: Any, representative_path: str,
                keep_float: list[str] | None, layers: tuple[str, ...] = ()) -> dict[str, Any]:
    """Full-integer quantization through TFLite's ``QuantizationDebugger``: the per-op error
    rows, and the .tflite, with the ops of the ``keep_float`` layers left in float (the
    debugger's denylist) when given. ``converter`` has the "int8" settings already."""
    samples = np.load(representative_path)

    def dataset() -> Any:
        for i in range(len(samples)):
            yield [samples[i : i + 1].astype(np.float32)]

    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=dataset, debug_options=_options(tf))
    debugger.run()
    rows = _statistics(debugger)
    denylist: list[str] = []
    by_type: list[str] = []
    if keep_float:
        missing = [layer for layer in keep_float
                   if not any(owns(r["tensor_name"], layer, layers) for r in rows)]
        if missing:
            raise ValueError(
                f"keep_float names {missing!r}, but no quantized op of the .tflite belongs to "
                "them (the converter folded them into a neighbour, or they make no op of "
                "their own). Layers with ops: "
                + ", ".join(sorted({layer for r in rows for layer in _layers_of(r)}))
                + ". Keep one of those float instead.")
        kept = [r for r in rows
                if any(owns(r["tensor_name"], layer, layers) for layer in keep_float)]
        denylist = [r["tensor_name"] for r in kept]
        by_type = sorted({r["op_name"] for r in kept} & set(BY_TYPE))
        for op in by_type:  # by type keeps every op of that type float: all must be kept
            others = sorted({layer for r in rows if r["op_name"] == op and r not in kept
                             for layer in _layers_of(r)})
            if others:
                raise ValueError(
                    f"keep_float={list(keep_float)!r} keeps a {op} op float, but not the {op} "
                    f"of {', '.join(map(repr, others))}: TensorFlow's quantizer cannot keep "
                    f"one {op} float by its name, only every {op} of the model at once. Keep "
                    f"all of them float (add {', '.join(map(repr, others))} to keep_float) or "
                    "none of them.")
        debugger.options = _options(tf, denylist, by_type)
        debugger.run()  # the errors of the model as it now is
        rows = _statistics(debugger)
    tflite = bytes(debugger.get_nondebug_quantized_model())
    if by_type:
        tflite = float_weights(tflite, debugger.calibrated_model, by_type)
    return {"tflite": tflite, "stats": rows, "denylist": denylist}


#: Ops that TensorFlow's quantizer (TF 2.21) does not keep float by name (``denylisted_nodes``
#: never matches them: it rebuilds them with a fused location) but does by op type
#: (``denylisted_ops``), and then with int8 weights (a hybrid op): :func:`float_weights`
#: puts their float weights back.
BY_TYPE = ("TRANSPOSE_CONV",)
#: Where an op of :data:`BY_TYPE` has its weights.
_WEIGHTS_INPUT = {"TRANSPOSE_CONV": 1}


def float_weights(tflite: bytes, calibrated: bytes, ops: Iterable[str]) -> bytes:
    """``tflite`` with the float32 weights of ``calibrated`` (the debugger's float model,
    same tensor names) put back into its float ops of types ``ops`` that read int8 weights.
    The generated code does the same (:func:`keep_float_code`)."""
    from tensorflow.lite.python.schema_py_generated import TensorType
    from tensorflow.lite.tools import flatbuffer_utils as fb

    quantized = fb.read_model_from_bytearray(bytearray(tflite))
    original = fb.read_model_from_bytearray(bytearray(calibrated))
    wanted = set(ops)

    def weights(model: Any) -> dict[bytes, tuple[Any, Any]]:
        """Weight tensor name -> (weight tensor, output tensor) of each op of ``wanted``."""
        out = {}
        for graph in model.subgraphs:
            for op in graph.operators:
                name = fb.opcode_to_name(model, op.opcodeIndex)
                if name in wanted:
                    tensor = graph.tensors[op.inputs[_WEIGHTS_INPUT[name]]]
                    out[tensor.name] = (tensor, graph.tensors[op.outputs[0]])
        return out

    floats = weights(original)
    float32 = TensorType.FLOAT32
    for name, (tensor, output) in weights(quantized).items():
        if output.type != float32 or tensor.type == float32 or name not in floats:
            continue
        source = floats[name][0]
        data = original.buffers[source.buffer].data
        shared = sum(t.buffer == tensor.buffer for g in quantized.subgraphs for t in g.tensors)
        if shared > 1:  # another tensor reads these int8 bytes: give this one its own
            quantized.buffers.append(type(quantized.buffers[tensor.buffer])())
            tensor.buffer = len(quantized.buffers) - 1
        quantized.buffers[tensor.buffer].data = data
        tensor.type, tensor.quantization = float32, None
    return bytes(fb.convert_object_to_bytearray(quantized))


def _layers_of(row: dict[str, Any]) -> list[str]:
    parts = [p.split("/") for p in row["tensor_name"].split(";")]
    return [p[-2] for p in parts if len(p) >= 2][:1]


def keep_float_code(keep_float: list[str], by_type: Iterable[str] = ()) -> list[str]:
    """The code of :func:`debug_int8` with a denylist; follows the "int8" settings. With
    ``by_type`` (ops of :data:`BY_TYPE` among the kept ones), those op types are denylisted
    too and their float weights put back (:func:`float_weights`)."""
    ops = sorted(by_type)
    lines = [
        "# Keep these layers float: TFLite's quantization debugger denylists their ops.",
        f"keep_float = {list(keep_float)!r}",
        "debugger = tf.lite.experimental.QuantizationDebugger(",
        "    converter=converter, debug_dataset=representative_dataset)",
        "debugger.run()",
        "stats = io.StringIO()",
        "debugger.layer_statistics_dump(stats)",
        "denylist = [row['tensor_name'] for row in csv.DictReader(io.StringIO(stats.getvalue()))",
        "            if any(f'/{layer}/' in '/' + row['tensor_name'] for layer in keep_float)]",
    ]
    if not ops:
        return [*lines,
                "debugger.options = tf.lite.experimental.QuantizationDebugOptions(",
                "    denylisted_nodes=denylist)",
                "tflite_model = debugger.get_nondebug_quantized_model()"]
    inputs = {op: _WEIGHTS_INPUT[op] for op in ops}
    return [
        *lines,
        f"# TensorFlow cannot keep a {' or '.join(ops)} float by name: by op type (every one",
        "# of them is kept), which leaves its weights int8; the float ones are put back below.",
        "debugger.options = tf.lite.experimental.QuantizationDebugOptions(",
        f"    denylisted_nodes=denylist, denylisted_ops={ops!r})",
        "tflite_model = debugger.get_nondebug_quantized_model()",
        "",
        "from tensorflow.lite.python.schema_py_generated import TensorType",
        "from tensorflow.lite.tools import flatbuffer_utils",
        "",
        f"weights_input = {inputs!r}",
        "",
        "def weights_of(fb_model):",
        "    found = {}",
        "    for graph in fb_model.subgraphs:",
        "        for op in graph.operators:",
        "            name = flatbuffer_utils.opcode_to_name(fb_model, op.opcodeIndex)",
        "            if name in weights_input:",
        "                tensor = graph.tensors[op.inputs[weights_input[name]]]",
        "                found[tensor.name] = (tensor, graph.tensors[op.outputs[0]])",
        "    return found",
        "",
        "quantized = flatbuffer_utils.read_model_from_bytearray(bytearray(tflite_model))",
        "original = flatbuffer_utils.read_model_from_bytearray(",
        "    bytearray(debugger.calibrated_model))",
        "floats = weights_of(original)",
        "for name, (tensor, output) in weights_of(quantized).items():",
        "    if (output.type != TensorType.FLOAT32 or tensor.type == TensorType.FLOAT32",
        "            or name not in floats):",
        "        continue",
        "    data = original.buffers[floats[name][0].buffer].data",
        "    readers = [t for g in quantized.subgraphs for t in g.tensors",
        "               if t.buffer == tensor.buffer]",
        "    if len(readers) > 1:  # another tensor reads these int8 bytes: a buffer of its own",
        "        quantized.buffers.append(type(quantized.buffers[tensor.buffer])())",
        "        tensor.buffer = len(quantized.buffers) - 1",
        "    quantized.buffers[tensor.buffer].data = data",
        "    tensor.type, tensor.quantization = TensorType.FLOAT32, None",
        "tflite_model = bytes(flatbuffer_utils.convert_object_to_bytearray(quantized))",
    ]
