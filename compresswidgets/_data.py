"""Checking the data handed to a Workbench, with errors that say how to fix it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from compresswidgets._keras import describe


class Data(NamedTuple):
    """Train and test splits, as NumPy arrays."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def as_data(data: Any) -> Data:
    """Accept ``(x_train, y_train, x_test, y_test)``, a :class:`DemoData` or a dict of them."""
    names = Data._fields
    if isinstance(data, Mapping):
        missing = [n for n in names if n not in data]
        if missing:
            raise ValueError(
                f"data is a mapping without {', '.join(missing)} (it has: "
                f"{', '.join(map(str, data)) or 'nothing'}). Expected the keys "
                f"{', '.join(names)}, or pass a tuple (x_train, y_train, x_test, y_test)."
            )
        parts = [data[n] for n in names]
    elif isinstance(data, tuple | list) and len(data) == 4:
        parts = list(data)
    else:
        raise TypeError(
            f"data must be (x_train, y_train, x_test, y_test), but got {describe(data)}. "
            "Pass a 4-tuple of arrays, e.g. `data = (x_train, y_train, x_test, y_test)`, or "
            "the second value of `cw.demo_model()`."
        )
    arrays = []
    for name, part in zip(names, parts, strict=True):
        try:
            array = np.asarray(part)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"data.{name} could not be turned into an array ({exc}). "
                            "Pass NumPy arrays.") from exc
        if array.dtype.kind not in "biuf":
            raise TypeError(
                f"data.{name} has dtype {array.dtype}, expected numbers (float or int). "
                "Convert it first, e.g. `x.astype('float32')`."
            )
        if array.ndim == 0 or len(array) == 0:
            raise ValueError(
                f"data.{name} is empty (shape {array.shape}). Fine-tuning and evaluation need "
                "samples: pass at least one example in each split."
            )
        check_finite(name, array)
        arrays.append(array)
    out = Data(*arrays)
    for split in ("train", "test"):
        x, y = getattr(out, f"x_{split}"), getattr(out, f"y_{split}")
        if len(x) != len(y):
            raise ValueError(
                f"x_{split} has {len(x)} samples but y_{split} has {len(y)}. Each input needs "
                "exactly one label: check the split."
            )
    if out.x_train.shape[1:] != out.x_test.shape[1:]:
        raise ValueError(
            f"x_train samples have shape {out.x_train.shape[1:]} but x_test samples have shape "
            f"{out.x_test.shape[1:]}. Both splits must have the same sample shape."
        )
    return out


def check_finite(name: str, array: np.ndarray) -> None:
    """No NaN or infinity in a float array (integers cannot hold them: not looked at).

    The common case is one vectorised sum without a temporary array (NaN and infinity
    propagate through it); only a sum that is not finite (bad values, or finite values that
    overflow it) looks value by value, for the first bad index and how many there are.
    """
    if array.dtype.kind != "f":
        return
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(array, dtype=np.longdouble if array.itemsize > 8 else np.float64)):
            return
    bad = ~np.isfinite(array)
    if not bad.any():
        return  # finite values whose sum overflows
    first = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), array.shape))
    value = array[first]
    kind = "NaN" if np.isnan(value) else ("inf" if value > 0 else "-inf")
    values = int(np.count_nonzero(bad))
    samples = int(np.count_nonzero(bad.reshape(len(array), -1).any(axis=1)))
    x, y = f"x_{name[2:]}", f"y_{name[2:]}"
    raise ValueError(
        f"data.{name} holds {kind} at index {first} ({values} non-finite "
        f"value{'s' * (values != 1)} in {samples} sample{'s' * (samples != 1)} of "
        f"{len(array)}). Expected finite numbers only: fine-tuning and the metric cannot use "
        "NaN or infinity. Drop or impute those samples first, e.g. "
        f"`keep = np.isfinite({name}).reshape(len({name}), -1).all(axis=1); "
        f"{x}, {y} = {x}[keep], {y}[keep]`.")


def io_tensors(model: Any) -> tuple[list[Any], list[Any]]:
    """The model's input and output tensors (empty lists for a model not built yet)."""
    return list(getattr(model, "inputs", None) or []), list(getattr(model, "outputs", None) or [])


def single_io(model: Any) -> bool:
    """Exactly one input tensor and one output tensor."""
    inputs, outputs = io_tensors(model)
    return len(inputs) == 1 and len(outputs) == 1


def check_single_io(model: Any) -> None:
    """One input tensor and one output tensor: what every technique here is built for."""
    inputs, outputs = io_tensors(model)
    for what, tensors in (("inputs", inputs), ("outputs", outputs)):
        if len(tensors) > 1:
            names = ", ".join(repr(getattr(t, "name", "?").split(":")[0]) for t in tensors)
            raise ValueError(
                f"Model {getattr(model, 'name', '?')!r} has {len(tensors)} {what} ({names}); "
                "the Workbench supports models with one input and one output. Compress a "
                "single-input, single-output sub-model (e.g. each branch as its own "
                "keras.Model), or concatenate the inputs into one tensor.")


def check_against_model(data: Data, model: Any) -> None:
    """The sample shape must fit the model's input (batch dimension aside)."""
    shape = getattr(model, "input_shape", None)
    if not isinstance(shape, tuple) or (shape and isinstance(shape[0], tuple)):
        return  # unknown: the first fit/predict will tell
    expected = shape[1:]
    got = data.x_train.shape[1:]
    ok = len(expected) == len(got) and all(e is None or e == g for e, g in zip(expected, got,
                                                                                strict=True))
    if not ok:
        raise ValueError(
            f"The samples have shape {got}, but the model expects inputs of shape "
            f"{tuple(expected)} (batch dimension aside). Reshape the data, e.g. "
            f"`x.reshape((-1, *{tuple(d if d is not None else -1 for d in expected)}))`, or "
            "pass the data this model was trained on."
        )
    check_labels(data, model)


def check_labels(data: Data, model: Any) -> None:
    """Class labels (one per sample) must name one of the model's outputs: 0 .. units - 1."""
    shape = getattr(model, "output_shape", None)
    if not isinstance(shape, tuple) or len(shape) != 2 or not isinstance(shape[-1], int) \
            or shape[-1] < 2:
        return  # a mask, a single unit, several outputs or an unknown shape: no class labels
    units = shape[-1]
    for split in ("train", "test"):
        y = getattr(data, f"y_{split}")
        if y.ndim == 2 and y.shape[1] == units:
            continue  # one-hot
        if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1) or continuous(y):
            continue  # not sparse class labels: the user's metric and loss judge them
        low, high = y.min(), y.max()
        if low < 0 or high >= units:
            raise ValueError(
                f"y_{split} holds labels from {low:g} to {high:g}, but the model has {units} "
                f"outputs, so class labels must be whole numbers in 0..{units - 1}. Check the "
                "labels (1-based classes: subtract 1) or the size of the model's last layer.")


def default_metric(y_true: np.ndarray, y_pred: np.ndarray, threshold: float = 0.5) -> float:
    """Classification accuracy: argmax for softmax/logit outputs; for one unit per sample or
    per pixel (a mask), the fraction of elements on the right side of ``threshold`` (0.5
    for a sigmoid's probabilities, 0 for logits)."""
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true)
    if y_pred.ndim >= 2 and y_pred.shape[-1] > 1:
        predicted = np.argmax(y_pred, axis=-1)
        if y_true.ndim == y_pred.ndim and y_true.shape[-1] == y_pred.shape[-1]:
            y_true = np.argmax(y_true, axis=-1)  # one-hot labels
        return float(np.mean(predicted == y_true.reshape(predicted.shape)))
    predicted = (y_pred.reshape(len(y_pred), -1) > threshold).astype(np.int64)
    return float(np.mean(predicted == y_true.reshape(predicted.shape)))


def mean_absolute_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error over every output value (lower is better)."""
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    return float(np.mean(np.abs(y_true.reshape(len(y_true), -1)
                                - y_pred.reshape(len(y_pred), -1))))


Metric = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class MetricSpec:
    """How variants are judged: the function, its name, its direction, and how it reads.

    ``fraction`` metrics (accuracy) are shown as percentages; any other as a plain number.
    """

    function: Metric
    name: str
    greater_is_better: bool = True
    fraction: bool = False

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(self.function(y_true, y_pred))

    def format(self, value: float | None) -> str:
        if value is None:
            return "–"
        if self.fraction:
            return f"{value:.2%}"
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.4g}"

    def format_delta(self, delta: float) -> str:
        if self.fraction:
            return f"{delta:+.2%}"
        return f"{delta:+.4f}" if abs(delta) < 1000 else f"{delta:+.4g}"

    def drop(self, reference: float, value: float) -> float:
        """How much worse ``value`` is than ``reference`` in this metric's direction
        (positive is worse): the one definition a budget (``max_drop``) is checked against."""
        return (reference - value) if self.greater_is_better else (value - reference)

    @staticmethod
    def within(drop: float, max_drop: float) -> bool:
        """Whether a :meth:`drop` meets a budget (float rounding aside: a drop of exactly
        ``max_drop`` computed as 0.020000000000000018 meets 0.02)."""
        return drop <= max_drop + 1e-12

    @property
    def direction(self) -> str:
        return "higher is better" if self.greater_is_better else "lower is better"


def records_frame(records: list[dict[str, Any]], alternative: str) -> Any:
    """``records`` as a pandas DataFrame; without pandas, an ImportError saying how to get it
    and what ``alternative`` gives without it."""
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"to_dataframe() needs pandas: `pip install pandas`. {alternative}") \
            from exc
    return pd.DataFrame.from_records(records)


ACCURACY = MetricSpec(default_metric, "accuracy", True, True)
MAE = MetricSpec(mean_absolute_error, "MAE", False, False)


def continuous(y: np.ndarray) -> bool:
    """Targets that are not class labels: floats that are not all whole numbers."""
    y = np.asarray(y)
    return y.dtype.kind == "f" and not bool(np.all(np.mod(y, 1) == 0))


def _logit_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return default_metric(y_true, y_pred, threshold=0.0)


def metric_spec(metric: Any, name: str | None, greater_is_better: bool | None,
                data: Data, logits: bool = False) -> MetricSpec:
    """The Workbench's metric: the user's, else accuracy for class labels and masks, else
    (continuous targets: regression) mean absolute error, lower is better. With ``logits``
    (the model ends without a sigmoid, as it is trained with ``from_logits=True``), a
    single-unit output is judged on the side of 0 rather than of 0.5."""
    if metric is not None and not callable(metric):
        raise TypeError(f"metric must be a callable metric(y_true, y_pred) -> float, but got "
                        f"{describe(metric)}. Pass a function, e.g. metric=my_iou.")
    if greater_is_better is not None and not isinstance(greater_is_better, bool):
        raise TypeError(f"greater_is_better must be True or False, but got "
                        f"{describe(greater_is_better)}.")
    if metric is None:
        spec = MAE if continuous(data.y_train) else ACCURACY
        if greater_is_better is not None and greater_is_better != spec.greater_is_better:
            raise ValueError(
                f"greater_is_better={greater_is_better} contradicts the default metric "
                f"({spec.name}, {spec.direction}). Pass it together with your own metric=.")
        function = _logit_accuracy if logits and spec is ACCURACY else spec.function
        return MetricSpec(function, name or spec.name, spec.greater_is_better, spec.fraction)
    return MetricSpec(metric, name or getattr(metric, "__name__", "metric"),
                      True if greater_is_better is None else greater_is_better, False)
