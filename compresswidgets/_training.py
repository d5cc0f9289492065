"""Fine-tuning for every technique: compile settings, progress reports, stopping."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compresswidgets import _keras
from compresswidgets._data import Data


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
    """How a model is compiled for fine-tuning, and the same as code."""

    optimizer_class: type
    optimizer_config: dict[str, Any]
    loss: Any
    loss_code: str
    metrics: tuple[str, ...]

    def build(self) -> dict[str, Any]:
        k = _keras.keras()
        return {
            "optimizer": self.optimizer_class.from_config(dict(self.optimizer_config)),
            "loss": k.losses.deserialize(self.loss) if isinstance(self.loss, dict) else self.loss,
            "metrics": list(self.metrics),
        }

    @property
    def optimizer_code(self) -> str:
        config = {key: value for key, value in self.optimizer_config.items()
                  if key in ("learning_rate", "beta_1", "beta_2", "epsilon", "momentum",
                             "nesterov", "rho", "amsgrad") and value is not None}
        args = ", ".join(f"{key}={_short(value)}" for key, value in config.items())
        return f"keras.optimizers.{self.optimizer_class.__name__}({args})"


def _short(value: Any) -> str:
    """float32 configs print as 0.0010000000474974513: show what the user typed."""
    return repr(float(f"{value:.7g}")) if isinstance(value, float) else repr(value)


def _plain(value: Any) -> Any:
    """Optimizer configs carry NumPy scalars; make them JSON and repr friendly."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else
                                 str(v)))


def _last_activation(model: Any) -> str:
    last = model.layers[-1] if getattr(model, "layers", None) else None
    if last is None:
        return ""
    if type(last).__name__ == "Softmax":
        return "softmax"
    return getattr(getattr(last, "activation", None), "__name__", "")


def compile_settings(reference: Any, data: Data, learning_rate: float | None,
                     default_learning_rate: float) -> CompileSettings:
    """The user's compile settings when the model is compiled, else classification defaults."""
    k = _keras.keras()
    optimizer = getattr(reference, "optimizer", None)
    loss = getattr(reference, "loss", None)
    metrics: tuple[str, ...] = ("accuracy",)
    if optimizer is not None and loss is not None and not isinstance(optimizer, str):
        config = _plain(optimizer.get_config())
        config.pop("name", None)
        if learning_rate is not None:
            config["learning_rate"] = float(learning_rate)
        elif not isinstance(config.get("learning_rate"), int | float):
            config["learning_rate"] = default_learning_rate  # a schedule: start afresh
        cls = type(optimizer)
        name = getattr(loss, "__name__", None)
        if not isinstance(loss, str) and name and k.losses.get(name) is loss:
            loss = name  # a built-in loss function, as .h5 and SavedModel files restore it
        if isinstance(loss, str):
            return CompileSettings(cls, config, loss, repr(loss), metrics)
        serial = _plain(k.losses.serialize(loss))
        return CompileSettings(cls, config, serial, f"keras.losses.deserialize({serial!r})",
                               metrics)
    lr = float(learning_rate if learning_rate is not None else default_learning_rate)
    adam, optimizer_config = k.optimizers.Adam, {"learning_rate": lr}
    y = data.y_train
    out_dim = model_output_dim(reference)
    logits = _last_activation(reference) not in ("softmax", "sigmoid")
    if out_dim == 1:
        name = "BinaryCrossentropy"
    elif y.ndim >= 2 and y.shape[-1] == out_dim:
        name = "CategoricalCrossentropy"
    elif y.dtype.kind in "iu" or np.all(np.mod(y, 1) == 0):
        name = "SparseCategoricalCrossentropy"
    else:
        name = "MeanSquaredError"
        metrics = ()
    if name == "MeanSquaredError":
        serial = {"class_name": name, "config": {}}
        code = "keras.losses.MeanSquaredError()"
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
