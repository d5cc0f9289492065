"""Fine-tuning for every technique: compile settings, progress reports, stopping."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compresswidgets import _keras
from compresswidgets._data import Data, continuous


class TrainingStopped(RuntimeError):
    """Fine-tuning was stopped on request; no variant was made and nothing was changed."""


@dataclass
class Progress:
    """What a progress callback receives after every batch (``batch`` counts from 1).

    Call :meth:`stop` to end the fine-tuning after the current batch.
    """

    technique: str
    epoch: int
    epochs: int
    batch: int
    batches: int
    logs: dict[str, float] = field(default_factory=dict)
    stop_requested: bool = False

    def stop(self) -> None:
        self.stop_requested = True

    @property
    def fraction(self) -> float:
        total = max(1, self.epochs * self.batches)
        return min(1.0, ((self.epoch - 1) * self.batches + self.batch) / total)


ProgressCallback = Callable[[Progress], Any]


@dataclass(frozen=True)
class CompileSettings:
    """How a model is compiled for fine-tuning: what can cross to the worker process, the
    user's own objects for fine-tuning here, and the same as code.

    ``loss`` and ``metrics`` are portable descriptions: a name, a Keras serialisation, or a
    reference ``{"ref": {"module", "qualname", "path"}, "config": ...}`` to an importable
    function or class. ``live_loss`` / ``live_metrics`` are the objects the model was
    compiled with; ``portable`` says whether the worker can rebuild all of it.
    """

    optimizer_class: type
    optimizer_config: dict[str, Any]
    loss: Any
    loss_code: str
    metrics: tuple[Any, ...]
    live_loss: Any = None
    live_metrics: tuple[Any, ...] | None = None
    portable: bool = True
    metrics_code: str = ""

    def build(self) -> dict[str, Any]:
        """Fresh compile arguments: the user's own loss and metrics where they are here,
        else rebuilt from their portable description (in the worker)."""
        k = _keras.keras()
        loss = self.live_loss if self.live_loss is not None else _rebuild(self.loss, k.losses)
        if self.live_metrics is not None:
            metrics = [_fresh(m) for m in self.live_metrics]
        else:
            metrics = [_rebuild(m, k.metrics) for m in self.metrics]
        return {"optimizer": self.optimizer_class.from_config(dict(self.optimizer_config)),
                "loss": loss, "metrics": metrics}

    def wire(self) -> dict[str, Any]:
        """What the worker needs to rebuild these settings (see :meth:`from_wire`)."""
        return {"optimizer_class": self.optimizer_class.__name__,
                "optimizer_config": self.optimizer_config, "loss": self.loss,
                "loss_code": self.loss_code, "metrics": list(self.metrics)}

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> CompileSettings:
        k = _keras.keras()
        return cls(getattr(k.optimizers, wire["optimizer_class"]), wire["optimizer_config"],
                   wire["loss"], wire["loss_code"], tuple(wire["metrics"]))

    @property
    def optimizer_code(self) -> str:
        config = {key: value for key, value in self.optimizer_config.items()
                  if key in ("learning_rate", "beta_1", "beta_2", "epsilon", "momentum",
                             "nesterov", "rho", "amsgrad") and value is not None}
        args = ", ".join(f"{key}={_short(value)}" for key, value in config.items())
        return f"keras.optimizers.{self.optimizer_class.__name__}({args})"

    @property
    def metrics_source(self) -> str:
        """The metrics list as code."""
        return self.metrics_code or repr(list(self.metrics))


def seeded_code(code: str, seed: int | None, why: str = "the same numbers on a rerun") -> str:
    """A fine-tuning step's code, seeded as it was run (unchanged without a seed)."""
    if seed is None:
        return code
    return f"keras.utils.set_random_seed({int(seed)})  # {why}\n{code}"


def seed_everything(seed: int | None) -> None:
    """Python's, NumPy's and TensorFlow's generators (Keras' ``set_random_seed``)."""
    if seed is not None:
        _keras.keras().utils.set_random_seed(int(seed))


def _short(value: Any) -> str:
    """float32 configs print as 0.0010000000474974513: show what the user typed."""
    return repr(float(f"{value:.7g}")) if isinstance(value, float) else repr(value)


def _plain(value: Any) -> Any:
    """Optimizer configs carry NumPy scalars; make them JSON and repr friendly."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else
                                 str(v)))


def _reference(obj: Any) -> dict[str, Any] | None:
    """Where a function or class can be imported from in another process, or None
    (defined in a notebook, a lambda, a local function)."""
    import importlib
    import pathlib

    module_name = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", "")
    if not module_name or module_name == "__main__" or "<" in qualname:
        return None
    try:
        module = importlib.import_module(module_name)
        target = module
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        return None
    if target is not obj:
        return None
    file = getattr(module, "__file__", None)
    if not file:
        return None
    root = pathlib.Path(file).resolve().parents[len(module_name.split(".")) - 1]
    return {"module": module_name, "qualname": qualname, "path": str(root)}


def _resolve(ref: dict[str, Any]) -> Any:
    import importlib
    import sys

    if ref["path"] not in sys.path:
        sys.path.append(ref["path"])
    target = importlib.import_module(ref["module"])
    for part in ref["qualname"].split("."):
        target = getattr(target, part)
    return target


def _describe(obj: Any, registry: Any, prefix: str) -> tuple[Any, str, bool]:
    """``(portable description, code, portable?)`` of a loss or metric as compiled."""
    if isinstance(obj, str):
        return obj, repr(obj), True
    name = getattr(obj, "__name__", None)
    if callable(obj) and not isinstance(obj, type) and name:
        try:
            if registry.get(name) is obj:  # a built-in function, as .h5 files restore it
                return name, repr(name), True
        except (ValueError, TypeError):
            pass
    cls = type(obj)
    if cls.__module__.startswith("tf_keras.") and hasattr(obj, "get_config"):
        serial = _plain(registry.serialize(obj))
        return serial, f"{prefix}.deserialize({serial!r})", True
    if isinstance(obj, type) or not hasattr(obj, "get_config"):  # a function (or a class)
        ref = _reference(obj)
        label = getattr(obj, "__name__", None) or type(obj).__name__
        return ({"ref": ref, "config": None} if ref else None), label, ref is not None
    ref = _reference(cls)  # an instance of the user's Loss/Metric subclass
    config = _plain(obj.get_config())
    code = f"{cls.__qualname__}(**{config!r})"
    return ({"ref": ref, "config": config} if ref else None), code, ref is not None


def _rebuild(description: Any, registry: Any) -> Any:
    if isinstance(description, dict) and "ref" in description:
        target = _resolve(description["ref"])
        config = description.get("config")
        return target.from_config(config) if config is not None else target
    if isinstance(description, dict):
        return registry.deserialize(description)
    return description


def _fresh(metric: Any) -> Any:
    """A stateful metric object as a new instance (the user's keeps its state)."""
    if hasattr(metric, "reset_state") and hasattr(metric, "get_config"):
        return type(metric).from_config(metric.get_config())
    return metric


def outputs_logits(model: Any) -> bool:
    """Whether the model ends without a softmax or sigmoid (default losses then take
    ``from_logits=True``, and a single-unit output is read on the side of 0)."""
    return _last_activation(model) not in ("softmax", "sigmoid")


def _last_activation(model: Any) -> str:
    last = model.layers[-1] if getattr(model, "layers", None) else None
    if last is None:
        return ""
    if type(last).__name__ == "Softmax":
        return "softmax"
    return getattr(getattr(last, "activation", None), "__name__", "")


def _compiled_metrics(model: Any) -> list[Any]:
    config = getattr(model, "_compile_config", None)
    metrics = getattr(config, "config", {}).get("metrics") if config is not None else None
    if metrics is None:
        metrics = getattr(getattr(model, "compiled_metrics", None), "_user_metrics", None)
    if metrics is None:
        return []
    if isinstance(metrics, dict):  # per output: single-output models only reach here
        metrics = [m for values in metrics.values() for m in _keras.tf().nest.flatten(values)]
    return list(metrics) if isinstance(metrics, list | tuple) else [metrics]


def compile_settings(reference: Any, data: Data, learning_rate: float | None,
                     default_learning_rate: float) -> CompileSettings:
    """The user's compile settings when the model is compiled (their own loss, optimizer
    and metrics, Python functions and Loss subclasses included), else defaults for the task."""
    if learning_rate is not None:
        from compresswidgets.techniques._common import check_number

        learning_rate = check_number("learning_rate", learning_rate, 0.0, 10.0,
                                     hint="Pass e.g. learning_rate=1e-4, or None for the "
                                          "technique's default.")
        if learning_rate == 0:
            raise ValueError("learning_rate must be above 0, but got 0: fine-tuning would "
                             "not change a weight. Pass e.g. learning_rate=1e-4, or epochs=0 "
                             "for no fine-tuning.")
    k = _keras.keras()
    optimizer = getattr(reference, "optimizer", None)
    loss = getattr(reference, "loss", None)
    user_metrics = _compiled_metrics(reference)
    if optimizer is not None and loss is not None and _keras.keras_flavour(reference) == "keras3":
        from compresswidgets import _bridge  # its twin is fine-tuned: with tf_keras objects

        optimizer, loss, user_metrics = _bridge.compile_objects(optimizer, loss, user_metrics)
    if optimizer is not None and loss is not None and not isinstance(optimizer, str):
        config = _plain(optimizer.get_config())
        config.pop("name", None)
        if learning_rate is not None:
            config["learning_rate"] = float(learning_rate)
        elif not isinstance(config.get("learning_rate"), int | float):
            config["learning_rate"] = default_learning_rate  # a schedule: start afresh
        cls = type(optimizer)
        stock = getattr(k.optimizers, cls.__name__, None) is cls
        loss_wire, loss_code, loss_ok = _describe(loss, k.losses, "keras.losses")
        described = [_describe(m, k.metrics, "keras.metrics") for m in user_metrics]
        return CompileSettings(
            cls, config, loss_wire, loss_code, tuple(d[0] for d in described),
            live_loss=loss, live_metrics=tuple(user_metrics),
            portable=stock and loss_ok and all(d[2] for d in described),
            metrics_code="[" + ", ".join(d[1] for d in described) + "]")
    lr = float(learning_rate if learning_rate is not None else default_learning_rate)
    adam, optimizer_config = k.optimizers.Adam, {"learning_rate": lr}
    metrics: tuple[str, ...] = ("accuracy",)
    y = data.y_train
    out_dim = model_output_dim(reference)
    logits = outputs_logits(reference)
    if continuous(y):
        name = "MeanSquaredError"
    elif out_dim == 1:
        name = "BinaryCrossentropy"
    elif y.ndim >= 2 and y.shape[-1] == out_dim:
        name = "CategoricalCrossentropy"
    else:
        name = "SparseCategoricalCrossentropy"
    if name == "MeanSquaredError":
        serial = {"class_name": name, "config": {}}
        code = "keras.losses.MeanSquaredError()"
        metrics = ()
    else:
        serial = {"class_name": name, "config": {"from_logits": logits}}
        code = f"keras.losses.{name}(from_logits={logits})"
    return CompileSettings(adam, optimizer_config, serial, code, metrics)


def model_output_dim(model: Any) -> int:
    shape = getattr(model, "output_shape", None)
    if isinstance(shape, tuple) and shape and isinstance(shape[-1], int):
        return shape[-1]
    return 0


def fine_tune(model: Any, data: Data, *, settings: CompileSettings, epochs: int, batch_size: int,
              technique: str, progress: ProgressCallback | None = None,
              callbacks: list[Any] | None = None) -> None:
    """Compile ``model`` with ``settings`` and fit it; raise TrainingStopped when asked to stop."""
    k = _keras.keras()
    model.compile(**settings.build())
    batches = int(np.ceil(len(data.x_train) / batch_size))
    all_callbacks = list(callbacks or [])
    reporter = None
    if progress is not None:
        reporter = _progress_callback(k, progress, technique, epochs, batches)
        all_callbacks.append(reporter)
    try:
        model.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=epochs, verbose=0,
                  callbacks=all_callbacks)
    finally:
        release_traces(model)
    if reporter is not None and reporter.stopped_at is not None:
        epoch, batch = reporter.stopped_at
        raise TrainingStopped(
            f"{technique} fine-tuning was stopped at epoch {epoch}/{epochs}, batch "
            f"{batch}/{batches}. No variant was added; the Workbench is as it was."
        )


def release_traces(model: Any) -> None:
    """Free the graphs ``fit`` traced for ``model``.

    TensorFlow 2.21 keeps a finished ``train_function``'s graphs (and the tfmot branch
    functions registered in them) alive after the model is gone: about 9 MB per fine-tuning
    of the demo model. Dismantling them returns most of it; Keras traces anew if the model
    is trained again.
    """
    try:
        from tensorflow.python.framework import func_graph
    except ImportError:  # pragma: no cover - a TensorFlow without this module
        return
    for attr in ("train_function", "test_function", "predict_function"):
        function = getattr(model, attr, None)
        if function is None:
            continue
        try:
            for concrete in function._list_all_concrete_functions():
                func_graph.dismantle_func_graph(concrete.graph)
        except Exception:  # private API: never let the cleanup fail a run
            pass
        setattr(model, attr, None)


def _progress_callback(k: Any, progress: ProgressCallback, technique: str, epochs: int,
                       batches: int) -> Any:
    class _Reporter(k.callbacks.Callback):
        stopped_at: tuple[int, int] | None = None
        epoch = 0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch = epoch + 1

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            report = Progress(technique, self.epoch, epochs, batch + 1, batches,
                              {key: float(v) for key, v in (logs or {}).items()})
            progress(report)
            if report.stop_requested:
                self.stopped_at = (self.epoch, batch + 1)
                self.model.stop_training = True

    return _Reporter()
