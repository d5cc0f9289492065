"""Per-layer weight statistics and histograms of a live Keras model.

Pure NumPy once the weights are read, and read-only: the model is never modified. Works for
``tf_keras`` (Keras 2) and Keras 3 models alike, since it only reads weights.

Speed: :func:`inspect_weights` does only what one sweep over the weights can: min, max, zeros
and NaN/Inf of every tensor (what the report's totals and warnings need). A large tensor is
swept block by block, each block reduced while it is still in cache; all the small ones go in
one batch of segment reductions. Everything else is computed on first access of its field and
cached: mean and std (one more sweep of that tensor), the exact distinct count and the report's
histogram (one sort of the tensor; a sorted copy kept by :meth:`WeightReport.histogram` then
serves any other bins, range or zero exclusion by binary search), and the per-channel ranges.
"""

from __future__ import annotations

import builtins
import math
import os
import sys
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from compresswidgets._keras import describe, keras_flavour

__all__ = ["Histogram", "LayerSummary", "TensorStats", "WeightReport", "inspect_weights"]

DEFAULT_BINS = 64
#: Below this many parameters to sort in all, worker threads cost more than they save.
_PARALLEL_MIN_PARAMS = 1_000_000
#: Tensors smaller than this are summarised together, in one batch on the calling thread.
_SMALL = 32_768
#: Elements per block of the one-pass sweep: 512 KB of float32 stays in the core's cache
#: while the block's reductions run over it.
_BLOCK = 131_072


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



class _Store:
    """The arrays a report read, and what is worked out from them on first use (cached).

    Shared by a :class:`WeightReport` and its :class:`TensorStats`, which hold it rather than
    each other: no reference cycle, so the arrays go as soon as the report does.
    """

    __slots__ = ("cache", "hist_args", "values")

    def __init__(self, values: tuple[np.ndarray, ...], hist_args: dict[str, Any] | None) -> None:
        self.values = values
        #: the report's own histogram settings (``None``: no histogram per tensor)
        self.hist_args = hist_args
        self.cache: dict[Any, Any] = {}

    def sorted(self, index: int) -> np.ndarray:
        key = ("sorted", index)
        ordered = self.cache.get(key)
        if ordered is None:
            ordered = np.sort(_as_float(self.values[index]), axis=None)
            ordered.flags.writeable = False
            self.cache[key] = ordered
        return ordered

    def histogram(self, index: int, bins: int, range: tuple[float, float] | None,
                  exclude_zeros: bool, log: bool) -> Histogram:
        key = (index, bins, None if range is None else tuple(range), exclude_zeros, log)
        hist = self.cache.get(key)
        if hist is None:
            hist = self.cache[key] = histogram_of(self.sorted(index), bins, range,
                                                  exclude_zeros, log, presorted=True)
        return hist

    def _default_key(self, index: int) -> tuple:
        a = self.hist_args
        return (index, a["bins"], a["range"], a["exclude_zeros"], a["log"])

    def distinct(self, index: int) -> int:
        key = ("distinct", index)
        if key not in self.cache:
            self._sort_stats(index)
        return self.cache[key]

    def default_histogram(self, index: int) -> Histogram | None:
        if self.hist_args is None:
            return None
        key = self._default_key(index)
        if key not in self.cache:
            self._sort_stats(index)
        return self.cache[key]

    def _sort_stats(self, index: int) -> None:
        """Distinct count and the report's histogram from one sort: of the cached sorted copy
        if there is one, else of a copy in this thread's reused scratch buffer (not kept)."""
        s = self.cache.get(("sorted", index))
        if s is None:
            values = _as_float(self.values[index])
            s = _scratch(values.size, values.dtype)
            s[...] = values.reshape(-1)
            s.sort()
        lo, hi, _ = _segments(s)
        finite = s[lo:hi]
        if self.hist_args is not None:
            key = self._default_key(index)
            if key not in self.cache:
                self.cache[key] = histogram_of(s, presorted=True, **self.hist_args)
        distinct = 1 + int(np.count_nonzero(finite[1:] != finite[:-1])) if finite.size else 0
        self.cache[("distinct", index)] = distinct

    def prefetch(self, indices: Iterable[int]) -> None:
        """The sort-derived values of these tensors, large ones on worker threads."""
        todo = [i for i in indices if ("distinct", i) not in self.cache]
        big = sorted((i for i in todo if self.values[i].size >= _SMALL),
                     key=lambda i: -self.values[i].size)
        if sum(self.values[i].size for i in big) < _PARALLEL_MIN_PARAMS or _cores() < 2:
            big = []
        futures = [_pool().submit(self._sort_stats, i) for i in big]
        for i in set(todo).difference(big):
            self._sort_stats(i)
        for f in futures:
            f.result()

    def moments(self, index: int, vmin: float, vmax: float, clean: bool) -> tuple[float, float]:
        key = ("moments", index)
        got = self.cache.get(key)
        if got is None:
            got = self.cache[key] = _moments(self.values[index], vmin, vmax, clean)
        return got

    def channels(self, index: int, layer_class: str, weight: str,
                 finite: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
        key = ("channels", index)
        got = self.cache.get(key)
        if got is None:
            got = self.cache[key] = _channel_ranges(_as_float(self.values[index]), layer_class,
                                                    weight, finite)
        return got


@dataclass(frozen=True, repr=False)
class TensorStats:
    """Statistics of one weight tensor. Min, max, mean and std are over its finite values.

    Min, max, zeros, NaN and Inf come from the report's one pass over the weights; ``mean``,
    ``std``, ``distinct``, ``histogram``, ``channel_min`` and ``channel_max`` are worked out on
    first access and cached (mean and std together, distinct and histogram from one sort).
    """

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
    zeros: int
    nan: int
    inf: int
    _store: _Store = field(repr=False, compare=False)

    @property
    def mean(self) -> float:
        return self._store.moments(self.index, self.min, self.max, self._clean)[0]

    @property
    def std(self) -> float:
        """Population standard deviation (``ddof=0``, as :func:`numpy.std`)."""
        return self._store.moments(self.index, self.min, self.max, self._clean)[1]

    @property
    def _clean(self) -> bool:
        return not (self.nan or self.inf)

    @property
    def distinct(self) -> int:
        """Exact number of distinct finite values (``-0.0`` and ``0.0`` are one)."""
        return self._store.distinct(self.index)

    @property
    def histogram(self) -> Histogram | None:
        """The histogram at the report's settings (``None`` when it was made with
        ``bins=None``); the same object as ``report.histogram(tensor)`` at those settings."""
        return self._store.default_histogram(self.index)

    @property
    def channel_min(self) -> np.ndarray | None:
        """Per-output-channel minimum (conv and dense kernels only, else ``None``)."""
        return self._channel_ranges()[0]

    @property
    def channel_max(self) -> np.ndarray | None:
        """Per-output-channel maximum (conv and dense kernels only, else ``None``)."""
        return self._channel_ranges()[1]

    def _channel_ranges(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        return self._store.channels(self.index, self.layer_class, self.weight, self._clean)

    @property
    def key(self) -> str:
        return f"{self.layer}/{self.weight}"

    @property
    def sparsity(self) -> float:
        """Fraction of exact zeros."""
        return self.zeros / self.params if self.params else 0.0

    @property
    def channels(self) -> int:
        channel_min = self.channel_min
        return 0 if channel_min is None else len(channel_min)

    @property
    def channel_range_spread(self) -> float:
        """Widest channel range over the median channel range (1 = all alike).

        Large values mean a single per-tensor int8 scale wastes most of its 256 levels on the
        narrow channels; per-channel quantization (the TFLite default for conv kernels) avoids
        that.
        """
        channel_min, channel_max = self._channel_ranges()
        if channel_min is None:
            return math.nan
        ranges = channel_max.astype(np.float64) - channel_min
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

    def __repr__(self) -> str:
        names = ("index", "layer", "layer_class", "weight", "shape", "params", "dtype",
                 "trainable", "min", "max", "mean", "std", "zeros", "distinct", "nan", "inf")
        return f"TensorStats({', '.join(f'{n}={getattr(self, n)!r}' for n in names)})"

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
    _store: _Store = field(repr=False)

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
        """The tensor's values as read (read-only, in the tensor's shape).

        Args:
            item: the tensor: its index in ``report.tensors``, its name (``"dense/kernel"``)
                or its :class:`TensorStats`.
        """
        return self._store.values[self._index(item)]

    def sorted_values(self, item: int | str | TensorStats) -> np.ndarray:
        """The tensor's values sorted ascending (NaN last), computed once and cached.

        Args:
            item: the tensor: its index in ``report.tensors``, its name (``"dense/kernel"``)
                or its :class:`TensorStats`.
        """
        return self._store.sorted(self._index(item))

    def histogram(
        self,
        item: int | str | TensorStats,
        bins: int = DEFAULT_BINS,
        range: tuple[float, float] | None = None,
        exclude_zeros: bool = False,
        log: bool = False,
    ) -> Histogram:
        """A histogram of one tensor, cached per (bins, range, exclude_zeros, log).

        Args:
            item: the tensor: its index in ``report.tensors``, its name (``"dense/kernel"``)
                or its :class:`TensorStats`.
            bins: the number of equal-width bins.
            range: ``(low, high)`` of the bins; ``None``: the tensor's finite min and max.
            exclude_zeros: leave exact zeros out (a pruned tensor's spike at 0).
            log: ``log10(1 + count)`` instead of counts.

        Raises:
            IndexError: an index outside the report; KeyError: a name it does not have.

        Example:
            >>> report.histogram("dense/kernel", bins=32, exclude_zeros=True)  # doctest: +SKIP
        """
        return self._store.histogram(self._index(item), bins, range, exclude_zeros, log)

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
        """One dict per tensor: the columns of :meth:`to_dataframe` (exact distinct counts
        included, computed here for all tensors at once)."""
        self._store.prefetch(builtins.range(len(self.tensors)))  # the distinct counts, in parallel
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
        self._store.prefetch(builtins.range(len(self.tensors)))
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
    """The variable's current value, without copying where TensorFlow allows it.

    For a TensorFlow variable that is its bare ``ReadVariableOp`` (``tf.raw_ops``): it shares
    the variable's buffer (copy on write: a later assign leaves it alone) like
    ``read_value()``, at a third of its cost (no Identity op, no gradient-tape bookkeeping).
    """
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(variable, tf.Variable):
        try:
            return np.asarray(tf.raw_ops.ReadVariableOp(resource=variable.handle,
                                                        dtype=variable.dtype))
        except Exception:
            pass
    read_value = getattr(variable, "read_value", None)
    if read_value is not None:
        try:
            return np.asarray(read_value())
        except Exception:
            pass
    return np.asarray(variable)


def _walk(layer: Any, path: str, seen: set[int], out: list[tuple[str, str, Any]],
          weights: list[Any] | None = None) -> None:
    """Collect ``(layer path, layer class, variable)`` depth-first in the model's order.

    A layer's own variables come first, then its children's (nested models, wrapped layers),
    whose paths are ``parent/child``. Shared variables are listed once, at their first owner.
    The model itself is the root: its children's paths start at their own names.
    ``weights`` is ``layer.weights`` when the caller already has it (each is asked once).
    """
    children = _children(layer)
    child_weights = [child.weights for child in children]
    inner = {id(v) for ws in child_weights for v in ws}
    for variable in layer.weights if weights is None else weights:
        if id(variable) in inner or id(variable) in seen:
            continue
        seen.add(id(variable))
        out.append((path or layer.name, type(layer).__name__, variable))
    for child, ws in zip(children, child_weights, strict=True):
        _walk(child, f"{path}/{child.name}" if path else child.name, seen, out, ws)


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


#: min, max, zeros, NaN, Inf of one tensor: what the report measures up front
_Eager = tuple[float, float, int, int, int]
_EMPTY: _Eager = (math.nan, math.nan, 0, 0, 0)


def _masked_stats(flat: np.ndarray) -> _Eager:
    """:data:`_Eager` of a tensor holding NaN or Inf, over its finite values."""
    nan = int(np.count_nonzero(np.isnan(flat)))
    finite = flat[np.isfinite(flat)]
    inf = flat.size - nan - finite.size
    if not finite.size:
        return math.nan, math.nan, 0, nan, inf
    return (float(finite.min()), float(finite.max()), int(np.count_nonzero(finite == 0)), nan,
            inf)


def _swept_stats(values: np.ndarray) -> _Eager:
    """:data:`_Eager` of one (large) tensor in one sweep over its memory.

    Each block of :data:`_BLOCK` elements gets its min, max and (when it spans zero) zero
    count while it sits in cache, so the tensor is read from memory once. Finite min and max
    prove there is no NaN or Inf; otherwise the tensor takes the exact masked path.
    """
    flat = _as_float(values).reshape(-1)
    n = flat.size
    if n == 0:
        return _EMPTY
    zero = flat.dtype.type(0)
    flags = _scratch(min(n, _BLOCK), np.dtype(np.bool_))
    minimum, maximum, equal, count = np.minimum.reduce, np.maximum.reduce, np.equal, \
        np.count_nonzero
    lows, highs = [], []
    zeros = 0
    for start in builtins.range(0, n, _BLOCK):
        block = flat[start:start + _BLOCK]
        low, high = minimum(block), maximum(block)
        lows.append(low)
        highs.append(high)
        if low <= zero <= high:  # False for NaN, which is caught below
            zeros += count(equal(block, zero, out=flags[:block.size]))
    vmin, vmax = float(minimum(lows)), float(maximum(highs))  # NaN if any block had one
    if not (math.isfinite(vmin) and math.isfinite(vmax)):
        return _masked_stats(flat)
    return vmin, vmax, zeros, 0, 0


def _batched_stats(arrays: list[np.ndarray]) -> list[_Eager]:
    """:data:`_Eager` of many small tensors at once.

    One buffer holds them all end to end and each statistic is one segment reduction
    (:meth:`numpy.ufunc.reduceat`) over it, instead of a few NumPy calls per tensor.
    """
    out: list[_Eager] = [_EMPTY] * len(arrays)
    keep = [i for i, a in enumerate(arrays) if a.size]
    if not keep:
        return out
    flats = [_as_float(arrays[i]).reshape(-1) for i in keep]
    starts = np.zeros(len(flats), dtype=np.intp)
    np.cumsum([f.size for f in flats[:-1]], out=starts[1:])
    buf = np.concatenate(flats)  # one dtype: min, max and zeros are exact in any
    lows = np.minimum.reduceat(buf, starts)
    highs = np.maximum.reduceat(buf, starts)
    zeros = np.add.reduceat(buf == 0, starts, dtype=np.intp)
    finite = np.isfinite(lows) & np.isfinite(highs)
    rows = zip(keep, lows.tolist(), highs.tolist(), zeros.tolist(), finite.tolist(), strict=True)
    for k, (j, low, high, z, ok) in enumerate(rows):
        out[j] = (low, high, z, 0, 0) if ok else _masked_stats(flats[k])
    return out


def _moments(values: np.ndarray, vmin: float, vmax: float, clean: bool) -> tuple[float, float]:
    """Mean and standard deviation of the finite values (``clean``: there are only finite
    ones), given their min and max: in float64 for small tensors; for large ones by BLAS dot
    products (with ones, and with itself) per cache block, summed in float64."""
    if math.isnan(vmin):  # no finite value at all
        return math.nan, math.nan
    if vmin == vmax:
        return vmin, 0.0
    flat = _as_float(values).reshape(-1)
    if not clean:
        flat = flat[np.isfinite(flat)]
    n = flat.size
    if n < _BLOCK:
        wide = flat.astype(np.float64)
        return float(np.add.reduce(wide)) / n, float(np.std(wide))
    ones = _ones(flat.dtype)
    total = squares = 0.0
    for start in builtins.range(0, n, _BLOCK):
        block = flat[start:start + _BLOCK]
        total += float(np.dot(block, ones[:block.size]))
        squares += float(np.dot(block, block))
    mean, mean_square = total / n, squares / n
    var = mean_square - mean * mean
    # exact enough unless the mean is large against the spread; then the two-pass formula
    std = math.sqrt(var) if var > 1e-2 * mean_square else float(np.std(flat, dtype=np.float64))
    return mean, std


def _all_stats(arrays: list[np.ndarray]) -> list[_Eager]:
    """:data:`_Eager` of every tensor: large ones swept one by one, small ones batched.

    On the calling thread: the sweep is bound by memory bandwidth and made of many short NumPy
    calls, so worker threads gain nothing on two cores and lose to GIL hand-offs (measured).
    """
    small = [i for i, a in enumerate(arrays) if a.size < _SMALL]
    out = [_swept_stats(a) if a.size >= _SMALL else _EMPTY for a in arrays]
    for i, got in zip(small, _batched_stats([arrays[i] for i in small]), strict=True):
        out[i] = got
    return out


def _channel_ranges(values: np.ndarray, layer_class: str, weight: str,
                    finite: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-output-channel min and max; a channel with no finite value reports NaN."""
    view = _channel_view(values, layer_class, weight)
    if view is None:
        return None, None
    if finite:
        return view.min(axis=0), view.max(axis=0)
    ok = np.isfinite(view)
    channel_min = np.where(ok, view, np.inf).min(axis=0)
    channel_max = np.where(ok, view, -np.inf).max(axis=0)
    channel_min[~ok.any(axis=0)] = channel_max[~ok.any(axis=0)] = np.nan
    return channel_min, channel_max


_local = threading.local()


@cache
def _ones(dtype: np.dtype) -> np.ndarray:
    ones = np.ones(_BLOCK, dtype=dtype)
    ones.flags.writeable = False
    return ones


@cache
def _dtype_name(dtype: np.dtype) -> str:
    return str(dtype)  # costs microseconds each time: 1 ms over a ResNet's 320 tensors


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


def _cores() -> int:
    return os.cpu_count() or 1


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(1, min(4, _cores())),
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
            later with :meth:`WeightReport.histogram`). Each is made on first access of
            :attr:`TensorStats.histogram`, like the distinct counts and channel ranges.
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
    hist_args: dict[str, Any] | None = None
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
    arrays = [_read(v) for _, _, v in found]
    store = _Store(tuple(_readonly(a) for a in arrays), hist_args)
    tensors = tuple(
        TensorStats(i, path, cls, _weight_name(v), a.shape, a.size,
                    _dtype_name(a.dtype), bool(getattr(v, "trainable", True)), *stats, store)
        for i, ((path, cls, v), a, stats) in enumerate(
            zip(found, arrays, _all_stats(arrays), strict=True))
    )
    return WeightReport(model_name=str(getattr(model, "name", "model")), keras=flavour,
                        tensors=tensors, _store=store)
