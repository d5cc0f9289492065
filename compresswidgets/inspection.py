"""Per-layer weight statistics and histograms of a live Keras model.

Pure NumPy once the weights are read, and read-only: the model is never modified. Works for
``tf_keras`` (Keras 2) and Keras 3 models alike, since it only reads weights.

Speed: every tensor is sorted once (on a copy, two tensors at a time on two cores). The
sorted copy gives min, max, zeros, NaN/Inf counts and distinct values in O(1)/O(n) and any
histogram by binary search, so changing bins, range or zero exclusion later costs microseconds.
"""

from __future__ import annotations

import builtins
import math
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from compresswidgets._keras import describe, keras_flavour

__all__ = ["Histogram", "LayerSummary", "TensorStats", "WeightReport", "inspect_weights"]

DEFAULT_BINS = 64
#: Below this many parameters in all, threads cost more than they save.
_PARALLEL_MIN_PARAMS = 1_000_000
#: Tensors smaller than this are summarised on the calling thread.
_SMALL = 32_768


# --------------------------------------------------------------------------- data classes
@dataclass(frozen=True)
class Histogram:
    """Counts of one tensor's values in ``len(counts)`` equal-width bins.

    Bins are half-open ``[edges[i], edges[i+1])`` except the last, which is closed, exactly as
    :func:`numpy.histogram`. NaN and Inf are never counted (see :attr:`TensorStats.nan`).

    Example:
        >>> h = histogram_of(np.array([0.0, 0.0, 1.0, 2.0]), bins=2)
        >>> h.counts.tolist(), h.edges.tolist()
        ([3, 1], [0.0, 1.0, 2.0])
    """

    counts: np.ndarray
    edges: np.ndarray
    exclude_zeros: bool = False
    log: bool = False
    #: finite values that fell outside ``edges`` (only with an explicit range)
    outside: int = 0

    @property
    def heights(self) -> np.ndarray:
        """What to draw: the counts, or ``log10(1 + counts)`` when ``log`` was asked for."""
        return np.log10(1.0 + self.counts) if self.log else self.counts.astype(float)

    @property
    def centers(self) -> np.ndarray:
        return (self.edges[:-1] + self.edges[1:]) / 2

    @property
    def total(self) -> int:
        return int(self.counts.sum())


@dataclass(frozen=True)
class TensorStats:
    """Statistics of one weight tensor. Min, max, mean and std are over its finite values."""

    index: int
    layer: str
    layer_class: str
    weight: str
    shape: tuple[int, ...]
    params: int
    dtype: str
    trainable: bool
    min: float
    max: float
    mean: float
    std: float
    zeros: int
    distinct: int
    nan: int
    inf: int
    #: per-output-channel minimum and maximum (conv and dense kernels only)
    channel_min: np.ndarray | None = field(default=None, repr=False)
    channel_max: np.ndarray | None = field(default=None, repr=False)
    histogram: Histogram | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        return f"{self.layer}/{self.weight}"

    @property
    def sparsity(self) -> float:
        """Fraction of exact zeros."""
        return self.zeros / self.params if self.params else 0.0

    @property
    def channels(self) -> int:
        return 0 if self.channel_min is None else len(self.channel_min)

    @property
    def channel_range_spread(self) -> float:
        """Widest channel range over the median channel range (1 = all alike).

        Large values mean a single per-tensor int8 scale wastes most of its 256 levels on the
        narrow channels; per-channel quantization (the TFLite default for conv kernels) avoids
        that.
        """
        if self.channel_min is None:
            return math.nan
        ranges = self.channel_max.astype(np.float64) - self.channel_min
        ranges = ranges[np.isfinite(ranges)]
        median = float(np.median(ranges)) if ranges.size else 0.0
        return float(ranges.max() / median) if median > 0 else math.nan

    def as_dict(self) -> dict[str, Any]:
        """Plain values (no arrays), for tables."""
        return {
            "layer": self.layer,
            "layer_class": self.layer_class,
            "weight": self.weight,
            "shape": self.shape,
            "params": self.params,
            "dtype": self.dtype,
            "trainable": self.trainable,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "std": self.std,
            "sparsity": self.sparsity,
            "zeros": self.zeros,
            "distinct": self.distinct,
            "nan": self.nan,
            "inf": self.inf,
            "channels": self.channels,
            "channel_range_spread": self.channel_range_spread,
        }


@dataclass(frozen=True)
class LayerSummary:
    """All weight tensors of one layer taken together."""

    layer: str
    layer_class: str
    params: int
    zeros: int
    tensors: tuple[int, ...]

    @property
    def sparsity(self) -> float:
        return self.zeros / self.params if self.params else 0.0


@dataclass(frozen=True, eq=False)
class WeightReport:
    """What :func:`inspect_weights` found: one :class:`TensorStats` per weight tensor.

    Example:
        >>> report = inspect_weights(model)  # doctest: +SKIP
        >>> report.total_params, f"{report.sparsity:.1%}"  # doctest: +SKIP
        (32810, '0.0%')
        >>> report.find("dense", "kernel").distinct  # doctest: +SKIP
        4096
    """

    model_name: str
    keras: str
    tensors: tuple[TensorStats, ...]
    _values: tuple[np.ndarray, ...] = field(repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    # -- totals
    @property
    def total_params(self) -> int:
        return sum(t.params for t in self.tensors)

    @property
    def float32_bytes(self) -> int:
        """Size of all weights stored as float32 (what an unoptimised .tflite carries)."""
        return 4 * self.total_params

    @property
    def zeros(self) -> int:
        return sum(t.zeros for t in self.tensors)

    @property
    def sparsity(self) -> float:
        total = self.total_params
        return self.zeros / total if total else 0.0

    @property
    def nan(self) -> int:
        return sum(t.nan for t in self.tensors)

    @property
    def inf(self) -> int:
        return sum(t.inf for t in self.tensors)

    @property
    def layers(self) -> list[LayerSummary]:
        """One entry per layer with weights, in the model's order."""
        groups: dict[str, list[TensorStats]] = {}
        for t in self.tensors:
            groups.setdefault(t.layer, []).append(t)
        return [
            LayerSummary(
                layer=name,
                layer_class=ts[0].layer_class,
                params=sum(t.params for t in ts),
                zeros=sum(t.zeros for t in ts),
                tensors=tuple(t.index for t in ts),
            )
            for name, ts in groups.items()
        ]

    # -- access
    def __len__(self) -> int:
        return len(self.tensors)

    def __iter__(self) -> Iterator[TensorStats]:
        return iter(self.tensors)

    def __getitem__(self, item: int | str) -> TensorStats:
        if isinstance(item, str):
            layer, _, weight = item.rpartition("/")
            return self.find(layer, weight)
        return self.tensors[item]

    def find(self, layer: str, weight: str = "kernel") -> TensorStats:
        """The tensor ``weight`` of ``layer`` (the layer's path, e.g. ``"block/conv"``)."""
        for t in self.tensors:
            if t.layer == layer and t.weight == weight:
                return t
        known = sorted({t.key for t in self.tensors})
        shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
        raise KeyError(
            f"No weight {weight!r} in layer {layer!r}. Expected one of: {shown}. "
            "Use report.tensors to list them all."
        )

    def values(self, item: int | str | TensorStats) -> np.ndarray:
        """The tensor's values as read (read-only, in the tensor's shape)."""
        return self._values[self._index(item)]

    def sorted_values(self, item: int | str | TensorStats) -> np.ndarray:
        """The tensor's values sorted ascending (NaN last), computed once and cached."""
        index = self._index(item)
        key = ("sorted", index)
        if key not in self._cache:
            ordered = np.sort(_as_float(self._values[index]), axis=None)
            ordered.flags.writeable = False
            self._cache[key] = ordered
        return self._cache[key]

    def histogram(
        self,
        item: int | str | TensorStats,
        bins: int = DEFAULT_BINS,
        range: tuple[float, float] | None = None,
        exclude_zeros: bool = False,
        log: bool = False,
    ) -> Histogram:
        """A histogram of one tensor, cached per (bins, range, exclude_zeros, log).

        Example:
            >>> report.histogram("dense/kernel", bins=32, exclude_zeros=True)  # doctest: +SKIP
        """
        index = self._index(item)
        key = (index, bins, None if range is None else tuple(range), exclude_zeros, log)
        if key not in self._cache:
            self._cache[key] = histogram_of(self.sorted_values(index), bins, range,
                                            exclude_zeros, log, presorted=True)
        return self._cache[key]

    def _index(self, item: int | str | TensorStats) -> int:
        if isinstance(item, TensorStats):
            return item.index
        if isinstance(item, str):
            return self[item].index
        if not -len(self.tensors) <= int(item) < len(self.tensors):
            raise IndexError(
                f"Tensor index {item} is out of range: this report has {len(self.tensors)} "
                f"tensors (0 to {len(self.tensors) - 1})."
            )
        return int(item) % len(self.tensors)

    # -- tables
    def to_records(self) -> list[dict[str, Any]]:
        return [t.as_dict() for t in self.tensors]

    def to_dataframe(self) -> Any:
        """The tensor table as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "to_dataframe() needs pandas, which is not installed. Install it with "
                "`pip install pandas`, or use report.to_records() for a list of dicts."
            ) from exc
        return pd.DataFrame.from_records(self.to_records())

    def summary(self) -> str:
        """A plain-text table, one line per tensor, then the totals."""
        head = (
            f"{'layer/weight':<40} {'shape':<18} {'params':>10} {'min':>9} {'max':>9} "
            f"{'std':>9} {'sparsity':>8} {'distinct':>9}"
        )
        lines = [f"Model {self.model_name!r} ({self.keras})", head, "-" * len(head)]
        for t in self.tensors:
            lines.append(
                f"{_clip(t.key, 40):<40} {_clip(str(t.shape), 18):<18} {t.params:>10,} "
                f"{t.min:>9.4g} {t.max:>9.4g} {t.std:>9.4g} {t.sparsity:>8.1%} {t.distinct:>9,}"
            )
        lines.append("-" * len(head))
        lines.append(
            f"{self.total_params:,} parameters, {self.float32_bytes / 1e6:.2f} MB as float32, "
            f"sparsity {self.sparsity:.2%}"
            + (f", NaN {self.nan:,}, Inf {self.inf:,}" if self.nan or self.inf else "")
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# --------------------------------------------------------------------------- model walking
def _check_model(model: Any) -> str:
    flavour = keras_flavour(model)
    if flavour is None:
        raise TypeError(
            f"inspect_weights() expects a Keras model or layer (tf_keras or Keras 3), but got "
            f"{describe(model)}. Pass the model object itself, e.g. `model, data = "
            "cw.demo_model()`; to inspect a saved file, load it first with "
            "`tf_keras.models.load_model(path)`."
        )
    if not getattr(model, "built", True):
        raise ValueError(
            f"Model {getattr(model, 'name', '?')!r} has not been built yet, so it has no weights "
            "to inspect. Call `model.build(input_shape)` (e.g. `model.build((None, 8, 8, 1))`) "
            "or call the model once on a batch of data first."
        )
    return flavour


def _children(layer: Any) -> list[Any]:
    flatten = getattr(layer, "_flatten_layers", None)
    if flatten is not None:
        try:
            return list(flatten(include_self=False, recursive=False))
        except TypeError:
            pass
    if isinstance(getattr(layer, "layers", None), list | tuple):
        return list(layer.layers)
    inner = getattr(layer, "layer", None)
    return [inner] if keras_flavour(inner) else []


def _weight_name(variable: Any) -> str:
    name = str(getattr(variable, "name", "weight"))
    return name.rsplit("/", 1)[-1].split(":", 1)[0]


def _read(variable: Any) -> np.ndarray:
    """The variable's current value, without copying where TensorFlow allows it."""
    read_value = getattr(variable, "read_value", None)
    if read_value is not None:
        try:
            return np.asarray(read_value())
        except Exception:
            pass
    return np.asarray(variable)


def _walk(layer: Any, path: str, seen: set[int], out: list[tuple[str, str, Any]]) -> None:
    """Collect ``(layer path, layer class, variable)`` depth-first in the model's order.

    A layer's own variables come first, then its children's (nested models, wrapped layers),
    whose paths are ``parent/child``. Shared variables are listed once, at their first owner.
    The model itself is the root: its children's paths start at their own names.
    """
    children = _children(layer)
    inner = {id(v) for child in children for v in child.weights}
    for variable in layer.weights:
        if id(variable) in inner or id(variable) in seen:
            continue
        seen.add(id(variable))
        out.append((path or layer.name, type(layer).__name__, variable))
    for child in children:
        _walk(child, f"{path}/{child.name}" if path else child.name, seen, out)


def _channel_view(values: np.ndarray, layer_class: str, weight: str) -> np.ndarray | None:
    """The tensor as (elements, output channels), or None where channels do not apply."""
    if values.ndim < 2 or weight not in ("kernel", "depthwise_kernel", "pointwise_kernel"):
        return None
    if "Transpose" in layer_class:  # (..., out, in)
        return np.moveaxis(values, -2, -1).reshape(-1, values.shape[-2])
    if weight == "depthwise_kernel":  # (h, w, in, multiplier): channel = in * multiplier
        return values.reshape(-1, values.shape[-2] * values.shape[-1])
    return values.reshape(-1, values.shape[-1])


# --------------------------------------------------------------------------- statistics
def _as_float(values: np.ndarray) -> np.ndarray:
    if values.dtype in (np.float32, np.float64):
        return values
    if np.issubdtype(values.dtype, np.integer) or values.dtype == np.bool_:
        return values.astype(np.float64)
    return values.astype(np.float32)  # float16, bfloat16 and friends


def _segments(s: np.ndarray) -> tuple[int, int, int]:
    """For sorted ``s`` (NaN last): (#-inf, index after the last finite value, #NaN)."""
    n = s.size
    if n == 0:
        return 0, 0, 0
    inf = s.dtype.type(np.inf)  # a scalar of the array's dtype: a Python float would copy s
    neg_inf = int(s.searchsorted(-inf, side="right")) if s[0] == -inf else 0
    if np.isfinite(s[-1]):
        return neg_inf, n, 0
    return neg_inf, int(s.searchsorted(inf, side="left")), n - int(s.searchsorted(inf, "right"))


def _zero_run(finite: np.ndarray) -> tuple[int, int]:
    """Where the exact zeros (and negative zeros) sit in sorted finite values."""
    zero = finite.dtype.type(0)
    return int(finite.searchsorted(zero, "left")), int(finite.searchsorted(zero, "right"))


def _summarize(item: tuple[int, str, str, Any, np.ndarray, bool, dict]) -> TensorStats:
    index, layer, layer_class, variable_name, raw, trainable, hist_args = item
    values = _as_float(raw)
    # Sort a copy in this thread's scratch buffer: reused memory is far cheaper than fresh
    # pages, and the report keeps only the (zero-copy) values it read.
    s = _scratch(values.size, values.dtype)
    s[...] = values.reshape(-1)
    s.sort()
    n = s.size
    lo, hi, nan = _segments(s)
    finite = s[lo:hi]
    inf = n - nan - finite.size
    zero_lo, zero_hi = _zero_run(finite)
    zeros = zero_hi - zero_lo
    if finite.size:
        vmin, vmax = float(finite[0]), float(finite[-1])
        total = float(np.add.reduce(finite, dtype=np.float64 if n < 65536 else None))
        mean = total / finite.size
        if n < 65536 or vmin == vmax:
            std = 0.0 if vmin == vmax else float(np.std(finite, dtype=np.float64))
        else:  # one fused pass; exact enough once the mean is small against the spread
            sq = float(np.dot(finite, finite)) / finite.size
            var = sq - mean * mean
            std = math.sqrt(var) if var > 1e-2 * sq else float(np.std(finite, dtype=np.float64))
        distinct = 1 + int(np.count_nonzero(finite[1:] != finite[:-1]))
    else:
        vmin = vmax = mean = std = math.nan
        distinct = 0
    channel_min = channel_max = None
    view = _channel_view(values, layer_class, variable_name)
    if view is not None:
        if nan or inf:
            ok = np.isfinite(view)  # a channel with no finite value reports NaN
            channel_min = np.where(ok, view, np.inf).min(axis=0)
            channel_max = np.where(ok, view, -np.inf).max(axis=0)
            channel_min[~ok.any(axis=0)] = channel_max[~ok.any(axis=0)] = np.nan
        else:
            channel_min, channel_max = view.min(axis=0), view.max(axis=0)
    hist = histogram_of(s, presorted=True, **hist_args) if hist_args else None
    stats = TensorStats(
        index=index,
        layer=layer,
        layer_class=layer_class,
        weight=variable_name,
        shape=tuple(int(d) for d in raw.shape),
        params=int(n),
        dtype=str(raw.dtype),
        trainable=trainable,
        min=vmin,
        max=vmax,
        mean=mean,
        std=std,
        zeros=zeros,
        distinct=distinct,
        nan=nan,
        inf=inf,
        channel_min=channel_min,
        channel_max=channel_max,
        histogram=hist,
    )
    return stats


_local = threading.local()


def _scratch(size: int, dtype: np.dtype) -> np.ndarray:
    """A per-thread work buffer of at least ``size`` elements of ``dtype``."""
    buffers = _local.__dict__.setdefault("buffers", {})
    buf = buffers.get(np.dtype(dtype))
    if buf is None or buf.size < size:
        buf = buffers[np.dtype(dtype)] = np.empty(max(size, 1024), dtype=dtype)
    return buf[:size]


def _readonly(values: np.ndarray) -> np.ndarray:
    view = values.view()
    view.flags.writeable = False
    return view


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)),
                              thread_name_prefix="compresswidgets-inspect")


def _check_bins(bins: Any) -> int:
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or not 1 <= bins <= 100_000:
        raise ValueError(
            f"bins must be a whole number from 1 to 100000, but got {bins!r}. "
            "Pass e.g. bins=64 (or bins=None to skip histograms)."
        )
    return int(bins)


def _check_range(value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(
            f"range must be two finite numbers (low, high) with low < high, but got {value!r}. "
            "Pass e.g. range=(-0.5, 0.5), or range=None to span the tensor's finite values."
        )
    return lo, hi


def snr_db(reference: np.ndarray, approximation: np.ndarray) -> float:
    """Signal-to-noise ratio of ``approximation`` against ``reference``, in dB (inf when
    they are equal; 0 for an all-zero reference).

    Example:
        >>> round(snr_db(np.array([1.0, 2.0]), np.array([1.0, 2.1])), 1)
        27.0
    """
    reference = np.asarray(reference, dtype=np.float64)
    noise = float(np.sum((np.asarray(approximation, dtype=np.float64) - reference) ** 2))
    signal = float(np.sum(reference ** 2))
    return math.inf if noise == 0 else 10 * math.log10(signal / noise) if signal else 0.0


def histogram_of(
    values: np.ndarray,
    bins: int = DEFAULT_BINS,
    range: tuple[float, float] | None = None,
    exclude_zeros: bool = False,
    log: bool = False,
    *,
    presorted: bool = False,
) -> Histogram:
    """Histogram of the finite values of ``values`` (NaN and Inf are left out, never crash).

    Counts equal :func:`numpy.histogram` on the finite values with the same bins and range.
    With ``exclude_zeros`` exact zeros are not counted (pruned weights would dwarf the rest).
    ``log`` only marks the histogram to be drawn on a log scale (see :attr:`Histogram.heights`).

    Example:
        >>> histogram_of(np.array([1.0, np.nan, 2.0, np.inf]), bins=1).counts.tolist()
        [2]
    """
    bins = _check_bins(bins)
    span = _check_range(range)
    s = values if presorted else np.sort(_as_float(np.asarray(values)), axis=None)
    lo, hi, _ = _segments(s)
    finite = s[lo:hi]
    parts = [finite]
    if exclude_zeros:
        z0, z1 = _zero_run(finite)
        parts = [finite[:z0], finite[z1:]]
    dtype = finite.dtype if finite.dtype.kind == "f" else np.dtype(np.float64)
    if span is None:
        # numpy.histogram's outer edges: the data's own min and max (scalars of its dtype)
        kept = [p for p in parts if p.size]
        first, last = (kept[0][0], kept[-1][-1]) if kept else (dtype.type(0), dtype.type(1))
        if first == last:  # numpy's convention for a constant tensor
            first, last = first - 0.5, last + 0.5
        span = (first, last)
    # numpy.histogram's edges (linspace in the values' dtype) and its rule: [e_i, e_i+1),
    # the last bin closed; counting by binary search in the sorted values gives its counts.
    edges = np.linspace(span[0], span[1], bins + 1, dtype=dtype)
    counts = np.zeros(bins, dtype=np.int64)
    inside = 0
    for part in parts:
        positions = part.searchsorted(edges, side="left")
        positions[-1] = part.searchsorted(edges[-1], side="right")
        counts += np.diff(positions)
        inside += int(positions[-1] - positions[0])
    outside = sum(p.size for p in parts) - inside
    edges = edges.astype(np.float64)
    return Histogram(counts=counts, edges=edges, exclude_zeros=exclude_zeros, log=log,
                     outside=outside)


def inspect_weights(
    model: Any,
    bins: int | None = DEFAULT_BINS,
    range: tuple[float, float] | None = None,
    exclude_zeros: bool = False,
    log: bool = False,
) -> WeightReport:
    """Statistics of every weight tensor of a Keras model, layer by layer.

    Recurses into nested models and wrapper layers (e.g. tfmot's pruning wrappers); layers
    without weights are skipped. Nothing on ``model`` is modified.

    Args:
        model: a built ``tf_keras`` or Keras 3 model (or a single layer).
        bins: histogram bins per tensor, or ``None`` for no histograms (they can still be had
            later with :meth:`WeightReport.histogram`).
        range: fixed ``(low, high)`` for every histogram; default: each tensor's own span.
        exclude_zeros: leave exact zeros out of the histograms.
        log: mark histograms for log-scale counts.

    Returns:
        A :class:`WeightReport`.

    Example:
        >>> import compresswidgets as cw
        >>> model, _ = cw.demo_model()  # doctest: +SKIP
        >>> print(cw.inspect_weights(model).summary())  # doctest: +SKIP
    """
    flavour = _check_model(model)
    hist_args: dict[str, Any] = {}
    if bins is not None:
        hist_args = {"bins": _check_bins(bins), "range": _check_range(range),
                     "exclude_zeros": bool(exclude_zeros), "log": bool(log)}
    found: list[tuple[str, str, Any]] = []
    _walk(model, "", set(), found)
    if not found:
        layers = [type(layer).__name__ for layer in getattr(model, "layers", [])]
        raise ValueError(
            f"Model {getattr(model, 'name', '?')!r} has no weights to inspect (its layers: "
            f"{', '.join(layers) or 'none'}). Expected a model with at least one layer that has "
            "parameters (Dense, Conv2D, ...); add such layers or pass a different model."
        )
    items = [
        (i, path, cls, _weight_name(v), _read(v), bool(getattr(v, "trainable", True)), hist_args)
        for i, (path, cls, v) in enumerate(found)
    ]
    total = sum(item[4].size for item in items)
    if total >= _PARALLEL_MIN_PARAMS and (os.cpu_count() or 1) > 1:
        # Large tensors go to worker threads (sorting releases the GIL), largest first so the
        # cores finish together; the many small ones are cheaper here than queued behind them.
        big = sorted((it for it in items if it[4].size >= _SMALL), key=lambda it: -it[4].size)
        futures = [_pool().submit(_summarize, it) for it in big]
        done = {it[0]: _summarize(it) for it in items if it[4].size < _SMALL}
        done.update((it[0], f.result()) for it, f in zip(big, futures, strict=True))
        results = [done[i] for i in builtins.range(len(items))]
    else:
        results = [_summarize(item) for item in items]
    report = WeightReport(
        model_name=str(getattr(model, "name", "model")),
        keras=flavour,
        tensors=tuple(results),
        _values=tuple(_readonly(item[4]) for item in items),
    )
    if hist_args:  # what was computed here answers the same question later
        span = hist_args["range"]
        for t in report.tensors:
            report._cache[(t.index, hist_args["bins"], span, hist_args["exclude_zeros"],
                           hist_args["log"])] = t.histogram
    return report


