"""The one door to TensorFlow, tf_keras and tfmot.

Every other module reaches Keras through the accessors here, so that

* ``TF_USE_LEGACY_KERAS=1`` is in the environment before TensorFlow is first imported
  (tfmot 0.8.1 only understands Keras 2, i.e. the ``tf_keras`` package);
* TensorFlow's C++ start-up chatter (oneDNN, CUDA probing, CPU feature notes) is kept out of
  the user's notebook unless ``COMPRESSWIDGETS_TF_LOGS=1`` asks for it;
* a session where TensorFlow was already imported with Keras 3 as ``tf.keras`` still gets
  every technique: tfmot imports ``tf_keras`` itself, and Keras 3 models go through the bridge
  (``_bridge.py``), so nothing needs a warning there (measured: prune, cluster, QAT, PTQ).

Importing this module is cheap: TensorFlow itself is imported on first use of :func:`tf`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

_TRUE = ("1", "true", "True", "TRUE", "yes")

#: Lines TensorFlow's native code prints on every CPU-only start; nothing a user can act on.
_NOISE = re.compile(
    r"^(?:[IW]\d{4} |WARNING: All log messages before absl::InitializeLog|"
    r"To enable the following instructions|E\d{4} .*(?:cuInit|cuda_|CUDA)|"
    r"E\d{4} .*NodeDef mentions attribute use_unbounded_threadpool|"
    r".*Could not find cuda drivers|INFO: Created TensorFlow Lite XNNPACK delegate)"
)


class KerasSetupWarning(UserWarning):
    """TensorFlow was set up in a way that limits what compresswidgets can do."""


#: True when ``tf.keras`` is Keras 3 in this session (TensorFlow imported first, or
#: ``TF_USE_LEGACY_KERAS=0``); models built with it are bridged like any Keras 3 model.
keras3_is_tf_keras = False


def configure_environment() -> None:
    """Prepare the process for TensorFlow; called once when ``compresswidgets`` is imported.

    Example:
        >>> import compresswidgets  # doctest: +SKIP  (sets TF_USE_LEGACY_KERAS=1)
    """
    global keras3_is_tf_keras
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf_mod = sys.modules.get("tensorflow")
    if tf_mod is None:
        _quiet_tensorflow_import()
        current = os.environ.get("TF_USE_LEGACY_KERAS")
        if current is None:
            os.environ["TF_USE_LEGACY_KERAS"] = "1"
        elif current not in _TRUE:  # the user's choice: tf.keras will be Keras 3 (bridged)
            keras3_is_tf_keras = True
        return
    legacy = getattr(tf_mod, "_tf_uses_legacy_keras", None)
    if legacy is None:  # older layouts: ask tf.keras itself
        with contextlib.suppress(Exception):
            legacy = tf_mod.keras.__name__.startswith("tf_keras")
    if legacy is False:  # TensorFlow came first: tf.keras is Keras 3, which is bridged
        keras3_is_tf_keras = True


class _QuietTensorFlow:
    """A meta-path finder that imports TensorFlow inside :func:`_quiet_native_logs`, however
    it is first imported: by us, or by the user's own ``import tf_keras`` in the next cell."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "tensorflow":
            return None
        import importlib.util

        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)  # once is enough; and find the real spec without us
        spec = importlib.util.find_spec(name)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            with _quiet_native_logs():
                original(module)
                with contextlib.suppress(Exception):  # CUDA probing, inside the quiet block
                    module.get_logger().setLevel("ERROR")
                    module.config.list_physical_devices()

        loader.exec_module = exec_module
        return spec


def _quiet_tensorflow_import() -> None:
    if not any(isinstance(f, _QuietTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlow())


@contextlib.contextmanager
def _quiet_native_logs(keep: bool = True):
    """Swallow TensorFlow's native start-up noise on file descriptor 2; keep everything else
    (``keep=False``: drop it all, e.g. the converter's MLIR diagnostics, which its exception
    carries anyway)."""
    if os.environ.get("COMPRESSWIDGETS_TF_LOGS", "") in _TRUE:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded interpreters)
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [
                line
                for line in sink.read().decode("utf-8", "replace").splitlines(keepends=True)
                if keep and line.strip() and not _NOISE.match(line)
            ]
            if kept:
                sys.stderr.write("".join(kept))


@functools.cache
def tf() -> ModuleType:
    """TensorFlow, imported quietly on first use."""
    configure_environment()
    with _quiet_native_logs():
        import tensorflow

        tensorflow.get_logger().setLevel("ERROR")
        # Touch the device list once so that CUDA probing happens inside the quiet block.
        tensorflow.config.list_physical_devices()
    return tensorflow


@functools.cache
def keras() -> ModuleType:
    """``tf_keras`` (Keras 2), the Keras that tfmot understands."""
    tf()
    with _quiet_native_logs():
        import tf_keras
    register_activations(tf_keras)
    register_operation_layer(tf_keras)
    return tf_keras


def register_activations(keras2: Any) -> None:
    """Keras 3's activations that tf_keras lacks, as registered tf_keras functions (so that a
    bridged model's config names them in every process that imports compresswidgets)."""
    tensorflow = tf()

    def hard_sigmoid(x: Any) -> Any:
        return tensorflow.nn.relu6(x + 3.0) / 6.0

    def hard_silu(x: Any) -> Any:
        return x * tensorflow.nn.relu6(x + 3.0) / 6.0

    def leaky_relu(x: Any, negative_slope: float = 0.2) -> Any:
        return tensorflow.nn.leaky_relu(x, alpha=negative_slope)

    def log_softmax(x: Any, axis: int = -1) -> Any:
        return tensorflow.nn.log_softmax(x, axis=axis)

    functions = {"hard_sigmoid": hard_sigmoid, "hard_silu": hard_silu, "hard_swish": hard_silu,
                 "relu6": tensorflow.nn.relu6, "leaky_relu": leaky_relu, "log_softmax": log_softmax}
    for name, function in functions.items():
        def activation(x: Any, _f: Any = function) -> Any:
            return _f(x)

        activation.__name__ = name
        keras2.saving.register_keras_serializable("compresswidgets", name)(activation)



def register_operation_layer(keras2: Any) -> None:
    """``compresswidgets>KerasOperation``: a tf_keras layer that runs one weightless Keras 3
    operation of a functional graph (``x + y``, ``keras.ops.mean(x, axis=1)``, ``x[:, 0]``)
    on TensorFlow tensors, as the Keras 3 model does with the TensorFlow backend. Its config
    is the operation's Keras 3 config and the call's arguments, so a bridged model travels
    as JSON like any tf_keras model (see :mod:`compresswidgets._bridge`)."""

    @keras2.saving.register_keras_serializable("compresswidgets")
    class KerasOperation(keras2.layers.Layer):
        def __init__(self, operation: dict[str, Any], call: dict[str, Any],
                     **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.operation = operation
            self.call_arguments = call

        def call(self, inputs: Any) -> Any:
            # rebuilt at each trace, not kept: tf_keras would wrap what a layer holds
            import keras as keras3
            from keras.src.saving import serialization_lib

            op = serialization_lib.deserialize_keras_object(_plain(self.operation))
            arguments = serialization_lib.deserialize_keras_object(
                {"args": _plain(self.call_arguments).get("args", []),
                 "kwargs": _plain(self.call_arguments).get("kwargs", {})})
            tensors = iter(inputs if isinstance(inputs, list | tuple) else [inputs])

            def fill(item: Any) -> Any:  # the same order as _graph.refs: args, then kwargs
                if isinstance(item, keras3.KerasTensor):
                    return next(tensors)
                if isinstance(item, dict):
                    return {key: fill(value) for key, value in item.items()}
                if isinstance(item, tuple):
                    return tuple(fill(value) for value in item)
                if isinstance(item, list):
                    return [fill(value) for value in item]
                return item

            filled = fill(arguments)
            return op(*filled["args"], **filled["kwargs"])

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "operation": self.operation,
                    "call": self.call_arguments}


def _plain(value: Any) -> Any:
    """A config as plain dicts and lists (tf_keras wraps what a layer holds for tracking)."""
    if isinstance(value, Mapping):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, list | tuple) or type(value).__name__ == "ListWrapper":
        return [_plain(v) for v in value]
    return value


@functools.cache
def tfmot() -> ModuleType:
    """``tensorflow_model_optimization``, imported on first use."""
    keras()
    with _quiet_native_logs(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import tensorflow_model_optimization
    return tensorflow_model_optimization


def keras_flavour(obj: Any) -> str | None:
    """Which Keras a layer or model comes from: ``"tf_keras"``, ``"keras3"`` or ``None``.

    Decided from the class hierarchy alone, so nothing heavy is imported.

    Example:
        >>> keras_flavour(object()) is None
        True
    """
    for cls in type(obj).__mro__:
        if cls.__name__ != "Layer":
            continue
        root = cls.__module__.split(".", 1)[0]
        if root == "tf_keras":
            return "tf_keras"
        if root == "keras":
            return "keras3" if cls.__module__.startswith("keras.src.layers") else "tf_keras"
        if root == "tensorflow":
            return "tf_keras"
    return None


def describe(obj: Any, limit: int = 80) -> str:
    """A short, safe description of what the user passed, for error messages: its type and
    a shortened repr; for a tuple, list or dict, its length and what it holds."""
    if isinstance(obj, tuple | list | dict) and not isinstance(obj, str):
        kinds = sorted({type(item).__name__ for item in
                        (obj.values() if isinstance(obj, dict) else obj)})
        holding = f" of {', '.join(kinds)}" if kinds else ""
        name = type(obj).__qualname__
        return (f"a {name} of {len(obj)} item{'s' if len(obj) != 1 else ''}{holding}"
                if obj else f"an empty {name}")
    text = repr(obj)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(obj).__module__}.{type(obj).__qualname__} ({text})"


class Deferred:
    """A Keras model built on first use, by one thread, then kept.

    For a model the kernel only holds to be looked at: the QAT model that was trained in the
    worker process is rebuilt here (its structure costs seconds to build on a MobileNet) only
    when someone reads its weights or predicts with it, not for its size or .tflite accuracy.
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build: Callable[[], Any] | None = build
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._build is None

    def get(self) -> Any:
        with self._lock:
            if self._build is not None:
                self._model = self._build()
                self._build = None  # and what it held (the weights) goes with it
            return self._model


def resolve(model: Any) -> Any:
    """``model`` itself, or the model a :class:`Deferred` builds."""
    return model.get() if isinstance(model, Deferred) else model
