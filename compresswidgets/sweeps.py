"""Sweeps: many candidates at once, in parallel worker processes or on a Dask cluster.

A sweep prunes and/or clusters the base at several levels (a grid when both: each cluster
level on each pruned variant), fine-tunes every candidate with the same seed, converts it
(and optionally quantizes it after training), and adds every result to the Workbench as an
ordinary :class:`~compresswidgets.variant.Variant`. Each candidate is **one** round trip:
what travels is the recipe; the base model (JSON + weights), the data and the compile
settings go to each worker once per sweep; what comes back is the stripped weights, the
.tflite files and the predictions on the test split (the metric is computed here, by the
Workbench's own function).

Where it runs:

* ``executor=None``: local worker processes (:class:`~compresswidgets._process.WorkerPool`),
  as many as the cores and the memory allow (:func:`pool_size`); a model that cannot travel
  (custom layers, a loss defined in a notebook) or ``COMPRESSWIDGETS_IN_PROCESS=1`` runs its
  candidates one after another in the kernel instead.
* any ``concurrent.futures.Executor``, e.g. ``dask.distributed.Client(...).get_executor()``:
  with Dask the shared part is scattered to every worker once; a candidate whose worker dies
  is retried once, then becomes an error row; the others go on.

Example:
    >>> sw = wb.sweep(prune=[0.5, 0.7, 0.8], epochs=2, then=["int8"])   # doctest: +SKIP
    >>> sw.front()                                                      # doctest: +SKIP
    >>> sw.plot()                                                       # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from compresswidgets import _process
from compresswidgets._data import records_frame
from compresswidgets._keras import describe
from compresswidgets.techniques._common import check_number

if TYPE_CHECKING:
    from compresswidgets._data import MetricSpec
    from compresswidgets.variant import Variant

__all__ = ["MAX_CANDIDATES", "THEN", "Sweep", "SweepProgress", "pool_size"]

#: Candidates a sweep runs unless ``max_candidates=`` allows more.
MAX_CANDIDATES = 24
#: The post-training steps a sweep can add to each candidate (``then=``).
THEN = ("dynamic", "float16", "int8")
#: The seed of every candidate's fine-tuning unless ``seed=`` says otherwise: the same
#: shuffling for every level (common random numbers), so levels differ by the level only.
SEED = 0
#: Training samples that calibrate an ``"int8"`` step.
REPRESENTATIVE_SAMPLES = 100
#: A worker's resident memory before the model and data (see :mod:`compresswidgets._process`).
WORKER_BASE_BYTES = _process.WORKER_BASE_BYTES
#: The model's float32 bytes times this: weights, gradients, two Adam slots, tfmot's masks
#: or centroids, the stripped copy and the converter's copies.
MODEL_FACTOR = 12
#: The share of the available memory a pool may fill.
MEMORY_SHARE = _process.MEMORY_SHARE
#: The packages a remote worker needs (and here, their versions).
REQUIREMENTS = ("compresswidgets", "tensorflow", "tf-keras", "tensorflow-model-optimization",
                "ai-edge-litert")


# --------------------------------------------------------------------------- sizing the pool
def worker_bytes(model: Any, data: Any) -> int:
    """Estimated resident memory of one worker running a candidate of ``model`` on ``data``."""
    params = int(model.count_params()) if model is not None else 0
    arrays = sum(int(np.asarray(a).nbytes) for a in (data.x_train, data.y_train, data.x_test))
    return WORKER_BASE_BYTES + MODEL_FACTOR * 4 * params + arrays


def pool_size(per_worker: int, candidates: int, max_workers: int | None = None) -> int:
    """How many local workers: one per core, no more than the candidates, and no more than
    :data:`MEMORY_SHARE` of the available memory holds at ``per_worker`` bytes each (the
    spares' own memory counts as available: the pool adopts them); ``max_workers``
    overrides."""
    if max_workers is not None:
        return int(check_number("max_workers", max_workers, 1, 256, integer=True,
                                hint="Pass e.g. max_workers=2, or None to size the pool by "
                                     "cores and memory."))
    return _process.workers_for(per_worker, candidates)


_pool_lock = threading.Lock()
_pool: _process.WorkerPool | None = None


def local_pool(workers: int, threads: int) -> _process.WorkerPool:
    """The local pool, kept between sweeps (its processes keep TensorFlow imported; a sweep
    of fewer candidates starts fewer of them) and made anew for another size or threads.
    Its processes import TensorFlow and tfmot as they start; spares with its threads,
    which the kernel started while it idled, become its processes first."""
    global _pool
    with _pool_lock:
        if _pool is None or (_pool.max_workers, _pool.threads) != (workers, threads):
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = _process.WorkerPool(workers, threads=threads, warm=True)
        return _pool


def shutdown() -> None:
    """Stop the local pool's processes (a new pool starts with the next sweep)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.shutdown(wait=True)
            _pool = None


# --------------------------------------------------------------------------- checking input
def check_levels(name: str, values: Any, check: Callable[[str, Any], Any]) -> tuple[Any, ...]:
    """A list of levels, each checked, duplicates dropped; () for None."""
    if values is None:
        return ()
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a list of levels, but got {describe(values)}. E.g. "
                        f"{name}=" + ("[0.5, 0.7, 0.8]" if name == "prune" else "[32, 16, 8]")
                        + ".")
    levels: list[Any] = []
    for i, value in enumerate(values):
        checked = check(f"{name}[{i}]", value)
        if checked not in levels:
            levels.append(checked)
    if not levels:
        raise ValueError(f"{name}=[] has no level to try. Pass at least one, e.g. {name}="
                         + ("[0.5, 0.8]" if name == "prune" else "[16, 8]")
                         + f", or leave {name} out.")
    return tuple(levels)


def _sparsity(name: str, value: Any) -> float | dict[str, float]:
    if isinstance(value, Mapping):  # per-layer targets: checked against the model later
        return dict(value)
    return float(check_number(name, value, 0.0, 1.0, high_open=True,
                              hint="Each level is a target sparsity, e.g. 0.8 for 80 %, or "
                                   "a dict of per-layer targets."))


def _clusters(name: str, value: Any) -> int:
    return int(check_number(name, value, 2, 256, integer=True,
                            hint="Each level is a number of clusters, e.g. 16."))


def check_then(then: Any) -> tuple[str, ...]:
    """Post-training steps: None, one of :data:`THEN`, or a list of them."""
    if then is None:
        return ()
    items = [then] if isinstance(then, str) else then
    if not isinstance(items, Iterable):
        raise TypeError(f"then must be a mode or a list of modes from {THEN}, but got "
                        f"{describe(then)}. E.g. then=['float16', 'int8'].")
    out: list[str] = []
    for mode in items:
        if mode not in THEN:
            raise ValueError(f"then={then!r} has {mode!r}, which a sweep cannot add after "
                             f"training. Expected some of {', '.join(map(repr, THEN))}, e.g. "
                             "then=['int8'] (QAT is a technique of its own: wb.quantize('qat')).")
        if mode not in out:
            out.append(mode)
    return tuple(out)


# --------------------------------------------------------------------------- progress
@dataclasses.dataclass
class SweepProgress:
    """What a sweep's ``progress`` callback receives: ``event`` is ``"sent"`` (to the
    executor),
    ``"batch"`` (local workers: ``detail`` has epoch, batch, loss), ``"finished"`` (``rows``
    has the candidate's rows) or ``"retry"``. Call :meth:`stop` to cancel the candidates not
    yet finished: the finished ones are kept, no half variant is added."""

    event: str
    label: str
    done: int
    total: int
    running: int
    rows: tuple[dict[str, Any], ...] = ()
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)
    stop_requested: bool = False

    def stop(self) -> None:
        self.stop_requested = True

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


# --------------------------------------------------------------------------- the result
class Sweep:
    """The rows and variants of one sweep (:meth:`Workbench.sweep`).

    ``rows`` has one dict per variant made (and per candidate that failed): ``candidate``,
    ``name``, ``technique``, ``level`` (sparsity, overall for per-layer ``targets``, or
    clusters), ``targets``, ``base``, ``then``, ``seed``, ``metric``, ``delta`` (against
    the original), ``drop`` (how much worse, positive is worse), ``size_bytes``,
    ``gzipped_bytes``, ``sparsity``, ``seconds`` (the candidate's round trip in its worker),
    ``worker`` and ``error``. ``variants`` are the Workbench's new variants in row order;
    ``complete`` is False when the sweep was stopped.
    """

    def __init__(self, rows: list[dict[str, Any]], variants: dict[str, Variant],
                 metric: MetricSpec, *, complete: bool, executor: str, workers: int,
                 seconds: float, notes: tuple[str, ...] = ()) -> None:
        self._rows = sorted(rows, key=lambda r: (r["candidate"], r["then"] or ""))
        self._variants = variants
        self.metric = metric
        self.complete = complete
        self.executor = executor
        self.workers = workers
        self.seconds = seconds
        self.notes = notes

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._rows]

    @property
    def variants(self) -> list[Variant]:
        return [self._variants[r["name"]] for r in self._rows if r["name"] in self._variants]

    def to_dataframe(self) -> Any:
        return records_frame(self.rows, "The rows are already a list of dicts (.rows).")

    def _ok(self) -> list[dict[str, Any]]:
        return [r for r in self._rows if r["error"] is None]

    def front(self, cost: str = "gzipped_bytes") -> list[Variant]:
        """The Pareto-optimal variants: none of the others is both smaller (``cost``:
        ``"gzipped_bytes"`` or ``"size_bytes"``) and better on the metric; smallest first."""
        from compresswidgets.plots import pareto_front

        rows = self._ok()
        points = [(float(r[cost]), float(r["metric"])) for r in rows]
        chosen = sorted(pareto_front(points, self.metric.greater_is_better),
                        key=lambda i: points[i][0])
        return [self._variants[rows[i]["name"]] for i in chosen]

    def best(self, max_drop: float | None = None, objective: str = "gzipped_bytes",
             ) -> Variant | None:
        """The smallest variant (by ``objective``) whose drop is within ``max_drop``
        (None: the best metric); None when none qualifies."""
        rows = self._ok()
        if max_drop is None:
            sign = -1 if self.metric.greater_is_better else 1
            rows = sorted(rows, key=lambda r: (sign * r["metric"], r[objective]))
        else:
            rows = sorted((r for r in rows if self.metric.within(r["drop"], max_drop)),
                          key=lambda r: (r[objective], r["drop"]))
        return self._variants[rows[0]["name"]] if rows else None

    def plot(self, ax: Any = None) -> Any:
        """The metric against gzipped size, the front marked; given two Axes (or none), also
        the metric against the level (sparsity or clusters). Returns the Axes."""
        from compresswidgets.plots import plot_sweep

        if ax is None:
            from matplotlib.figure import Figure

            ax = Figure(figsize=(10, 3.8), layout="constrained").subplots(1, 2)
        axes = list(ax) if isinstance(ax, list | tuple | np.ndarray) else [ax]
        plot_sweep(self, axes[0], x="gzipped_bytes")
        if len(axes) > 1:
            plot_sweep(self, axes[1], x="level")
        return ax

    def __len__(self) -> int:
        return len(self._rows)

    def __str__(self) -> str:
        head = (f"{'variant':<34} {self.metric.name[:8]:>8} {'Δ':>8} {'gzipped':>10} "
                f"{'sparsity':>8} {'seconds':>7}")
        lines = [head, "-" * len(head)]
        for r in self._rows:
            if r["error"]:
                lines.append(f"{r['name'][:34]:<34} error: {r['error'][:60]}")
                continue
            lines.append(f"{r['name'][:34]:<34} {self.metric.format(r['metric']):>8} "
                         f"{self.metric.format_delta(r['delta']):>8} {r['gzipped_bytes']:>10,} "
                         f"{r['sparsity']:>8.1%} {r['seconds']:>7.1f}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"Sweep({len(self._rows)} rows, {len(self.front())} on the front, "
                f"{'complete' if self.complete else 'stopped'})")


# --------------------------------------------------------------------------- planning
@dataclasses.dataclass
class Candidate:
    """One fine-tune of a sweep: ``technique`` at ``level`` on ``base`` (a Variant, or the
    index of the candidate whose variant it is)."""

    index: int
    technique: str
    level: Any
    base: Any
    then: tuple[str, ...]
    label: str = ""
    params: Any = None
    attempts: int = 0


def plan(prune: tuple[float, ...], cluster: tuple[int, ...], then: tuple[str, ...],
         base: Variant) -> list[Candidate]:
    """Prune candidates, cluster candidates, or both: each cluster level on each pruned
    variant (which then gets no post-training step of its own)."""
    out: list[Candidate] = []
    for level in prune:
        out.append(Candidate(len(out), "prune", level, base, () if cluster else then))
    if prune and cluster:
        for p in list(out):
            for level in cluster:
                out.append(Candidate(len(out), "cluster", level, p.index, then))
    else:
        for level in cluster:
            out.append(Candidate(len(out), "cluster", level, base, then))
    return out
