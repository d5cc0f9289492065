"""Which layers can take it: per-layer sensitivity, one layer at a time, one-shot.

Each layer alone is pruned by magnitude to each level (tfmot's own mask rule), clustered to
each number of clusters (tfmot's own centroid initialisation, then nearest centroid, as
``strip_clustering`` leaves it), or has its weights quantized to int8 (symmetric, per output
channel, as TFLite stores conv kernels); the model is evaluated with the Workbench's metric on
a fixed sample of the test split, and the layer is put back. No fine-tuning, no wrappers, no
conversion: the weights of one private copy are changed in place, so a run is little more
than ``layers x levels`` evaluations. With ``"int8"``, the full-integer model's per-layer
activation error comes from TFLite's ``QuantizationDebugger`` as well (:mod:`compresswidgets.
tflite`).

Example:
    >>> s = wb.sensitivity(techniques=("prune", "cluster"))        # doctest: +SKIP
    >>> s.plot(ax)                                                  # doctest: +SKIP
    >>> recipe = s.suggest(max_drop=0.01)                           # doctest: +SKIP
    >>> wb.prune(recipe["prune"], epochs=2)                         # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compresswidgets import _keras
from compresswidgets._data import MetricSpec, records_frame
from compresswidgets._training import Progress, ProgressCallback
from compresswidgets.techniques import clustering, pruning
from compresswidgets.techniques._common import (
    LayerSelection,
    check_number,
    kernel_of,
    named_layers,
)

__all__ = ["DEFAULT_LEVELS", "TECHNIQUES", "Sensitivity", "Suggestion"]

#: What a sensitivity run can measure, and its levels by default.
TECHNIQUES = ("prune", "cluster", "int8")
DEFAULT_LEVELS: dict[str, tuple[Any, ...]] = {"prune": (0.5, 0.8, 0.9), "cluster": (32, 16, 8),
                                              "int8": ("int8",)}
#: Test samples drawn with this seed (the same ones for every evaluation of a run).
SEED = 11


# --------------------------------------------------------------------------- checking input
def check_request(techniques: Any, levels: Any, samples: Any,
                  test_size: int) -> tuple[tuple[str, ...], dict[str, tuple[Any, ...]], int]:
    """``(techniques, levels, samples)`` validated, or a three-part error."""
    if isinstance(techniques, str):
        techniques = (techniques,)
    if not isinstance(techniques, Iterable):
        raise TypeError(f"techniques must be a list of names from {TECHNIQUES}, but got "
                        f"{techniques!r}. E.g. techniques=('prune', 'int8').")
    chosen = tuple(techniques)
    unknown = [t for t in chosen if t not in TECHNIQUES]
    if unknown or not chosen:
        raise ValueError(f"Unknown technique(s) {unknown or chosen!r} for sensitivity. "
                         f"Expected some of {', '.join(map(repr, TECHNIQUES))}, e.g. "
                         "techniques=('prune', 'cluster').")
    if levels is not None and not isinstance(levels, Mapping):
        raise TypeError(f"levels must be a dict by technique, e.g. {{'prune': (0.5, 0.8)}}, "
                        f"but got {levels!r}.")
    given = dict(levels or {})
    extra = [t for t in given if t not in chosen]
    if extra:
        raise ValueError(f"levels names {extra!r}, which is not among the techniques measured "
                         f"({', '.join(chosen)}). Add it to techniques=... or drop it from "
                         "levels.")
    if "int8" in given and tuple(given["int8"]) not in ((), ("int8",)):
        raise ValueError(f"int8 has one level (int8 weights), but levels['int8'] = "
                         f"{given['int8']!r}. Leave 'int8' out of levels.")
    out: dict[str, tuple[Any, ...]] = {}
    for technique in chosen:
        values = given.get(technique, DEFAULT_LEVELS[technique])
        if isinstance(values, int | float) and not isinstance(values, bool):
            values = (values,)
        values = tuple(values)
        if not values:
            raise ValueError(f"levels[{technique!r}] is empty. Give at least one level, e.g. "
                             f"{DEFAULT_LEVELS[technique]}.")
        if technique == "prune":
            values = tuple(check_number("levels['prune'] entry", v, 0.0, 1.0, high_open=True,
                                        hint="Sparsities are fractions, e.g. (0.5, 0.8, 0.9).")
                           for v in values)
        elif technique == "cluster":
            values = tuple(check_number("levels['cluster'] entry", v, 2, 65536, integer=True,
                                        hint="Clusters are whole numbers, e.g. (32, 16, 8).")
                           for v in values)
        out[technique] = tuple(dict.fromkeys(values))  # each level once, in the given order
    if samples is not None:
        samples = check_number("samples", samples, 1, 10_000_000, integer=True,
                               hint="Pass how many test samples each evaluation uses, e.g. "
                               "samples=500, or None for the whole test split.")
    n = test_size if samples is None else min(samples, test_size)
    return chosen, out, n


def sample_indices(test_size: int, samples: int) -> np.ndarray:
    """The test samples every evaluation of a run uses (all of them, or a fixed draw)."""
    if samples >= test_size:
        return np.arange(test_size)
    return np.sort(np.random.default_rng(SEED).permutation(test_size)[:samples])


# --------------------------------------------------------------------------- the weights
def prunable_weights(layer: Any) -> list[Any]:
    """The variables tfmot would prune in ``layer`` (kernels; an RNN's cell kernels)."""
    from tensorflow_model_optimization.python.core.sparsity.keras import (
        prunable_layer,
        prune_registry,
    )

    if isinstance(layer, prunable_layer.PrunableLayer):
        return list(layer.get_prunable_weights())
    return list(prune_registry.PruneRegistry.make_prunable(layer).get_prunable_weights())


def clusterable_weights(layer: Any) -> list[Any]:
    """The variables tfmot would cluster in ``layer``."""
    from tensorflow_model_optimization.python.core.clustering.keras import (
        clusterable_layer,
        clustering_registry,
    )

    if isinstance(layer, clusterable_layer.ClusterableLayer):
        found = layer.get_clusterable_weights()
    else:
        registry = clustering_registry.ClusteringRegistry
        found = registry.make_clusterable(layer).get_clusterable_weights()
    return [variable for _, variable in found]


def int8_weights(layer: Any) -> list[Any]:
    """A layer's kernels (what TFLite stores as int8): kernel, depthwise and recurrent ones."""
    names = ("kernel", "depthwise_kernel", "recurrent_kernel", "pointwise_kernel")
    found = [v for v in layer.weights
             if v.name.rsplit("/", 1)[-1].split(":")[0] in names and len(v.shape) >= 2]
    return found or ([kernel_of(layer)] if kernel_of(layer) is not None else [])


def magnitude_pruned(w: np.ndarray, sparsity: float) -> np.ndarray:
    """``w`` with its smallest-magnitude weights zeroed, by tfmot's rule: keep the
    ``max(round(size * (1 - sparsity)), 1)`` largest (and every tie of the last one)."""
    flat = np.abs(w).ravel()
    keep = int(max(np.round(np.float32(flat.size) * np.float32(1 - sparsity)), 1))
    threshold = np.partition(flat, flat.size - keep)[flat.size - keep]
    return np.where(np.abs(w) >= threshold, w, 0).astype(w.dtype)


def clustered(w: np.ndarray, clusters: int, init: str = "kmeans++") -> np.ndarray:
    """``w`` with every weight replaced by its nearest centroid, the centroids from tfmot's
    own initialisation (``kmeans++`` is seeded there), as ``strip_clustering`` leaves a
    layer clustered without fine-tuning."""
    from tensorflow_model_optimization.python.core.clustering.keras import (
        clustering_centroids,
    )

    tf, tfmot = _keras.tf(), _keras.tfmot()
    kind = getattr(tfmot.clustering.keras.CentroidInitialization, clustering.INITS[init][0])
    factory = clustering_centroids.CentroidsInitializerFactory.get_centroid_initializer(kind)
    centroids = np.sort(np.asarray(factory(tf.constant(w), clusters).get_cluster_centroids()))
    flat = w.ravel()
    right = np.clip(np.searchsorted(centroids, flat), 1, len(centroids) - 1)
    left = right - 1
    nearest = np.where(np.abs(flat - centroids[left]) <= np.abs(flat - centroids[right]),
                       left, right)
    return centroids[nearest].reshape(w.shape).astype(w.dtype)


def int8_rounded(w: np.ndarray) -> np.ndarray:
    """``w`` through symmetric int8 with one scale per output channel (the last axis; both
    last axes of a depthwise kernel), as TFLite stores conv and dense kernels."""
    channels = w.reshape(-1, w.shape[-1]) if w.ndim >= 2 else w.reshape(-1, 1)
    scale = np.max(np.abs(channels), axis=0) / 127.0
    scale = np.where(scale > 0, scale, 1.0)
    q = np.clip(np.round(channels / scale), -127, 127) * scale
    return q.reshape(w.shape).astype(w.dtype)


def _gzipped(arrays: list[np.ndarray]) -> int:
    return sum(len(zlib.compress(np.ascontiguousarray(a).tobytes(), 9)) for a in arrays)


@dataclass(frozen=True)
class Probe:
    """One technique as sensitivity applies it: which layers, their weights, the change."""

    acts_on: Callable[[Any], bool]
    weights: Callable[[Any], list[Any]]
    change: Callable[[np.ndarray, Any], np.ndarray]
    label: Callable[[Any], str]


PROBES = {
    "prune": Probe(pruning.supports, prunable_weights, magnitude_pruned,
                   lambda level: f"prune {level:.0%}"),
    "cluster": Probe(clustering.supports, clusterable_weights, clustered,
                     lambda level: f"cluster {level}"),
    "int8": Probe(lambda layer: bool(int8_weights(layer)), int8_weights,
                  lambda w, _: int8_rounded(w), lambda _: "int8 weights"),
}


def layers_for(model: Any, technique: str, layers: LayerSelection) -> list[Any]:
    """The top-level layers ``technique`` is measured on: every one it can act on (small ones
    too: finding out about them is the point), or those of ``layers``."""
    probe = PROBES[technique]
    able = [layer for layer in model.layers if layer.weights and probe.acts_on(layer)]
    if layers is None:
        return able
    if callable(layers):
        return [layer for layer in able if layers(layer)]
    names = named_layers(model, layers, "Sensitivity")
    return [layer for layer in able if layer.name in names]


# --------------------------------------------------------------------------- measuring
class Evaluator:
    """The metric of one private model on a fixed test sample, its weights changed in place."""

    def __init__(self, model: Any, x: np.ndarray, y: np.ndarray, metric: MetricSpec,
                 batch: int = 256) -> None:
        tf = _keras.tf()
        self.model, self.x, self.y, self.metric = model, x, y, metric
        self.batch = min(batch, len(x))
        spec = tf.TensorSpec([self.batch, *x.shape[1:]], tf.as_dtype(x.dtype))
        # one traced function for the whole run: the weights change, the graph does not
        self._forward = tf.function(lambda t: model(t, training=False), input_signature=[spec])

    def __call__(self) -> float:
        out = []
        for start in range(0, len(self.x), self.batch):
            chunk = self.x[start : start + self.batch]
            rows = len(chunk)
            if rows < self.batch:  # pad the last chunk to the traced shape
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch - rows, 0)])
            out.append(np.asarray(self._forward(chunk))[:rows])
        return self.metric(self.y, np.concatenate(out))


@dataclass
class Run:
    """The state of one sensitivity run (what :func:`measure` fills in)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = True


def measure(evaluate: Evaluator, plan: list[tuple[str, Any, tuple[Any, ...]]],
            cache: dict[tuple, tuple[float, int]], key: tuple, baseline: float,
            progress: ProgressCallback | None, name: Callable[[str], str]) -> Run:
    """For each ``(technique, layer, levels)`` of ``plan``: change the layer's weights for each
    level, evaluate, put them back. ``cache`` keeps ``(metric, gzipped bytes saved)`` by
    ``key + (technique, level, layer)``; a ``progress`` that stops leaves ``complete`` False
    and the rows measured so far."""
    run = Run()
    total = sum(len(levels) for _, _, levels in plan)
    done = 0
    for technique, layer, levels in plan:
        probe = PROBES[technique]
        variables = probe.weights(layer)
        originals = [np.array(v.numpy()) for v in variables]
        before = _gzipped(originals)
        try:
            for level in levels:
                slot = (*key, technique, level, layer.name)
                if slot not in cache:
                    changed = [probe.change(w, level) for w in originals]
                    for variable, value in zip(variables, changed, strict=True):
                        variable.assign(value)
                    cache[slot] = (evaluate(), before - _gzipped(changed))
                metric, saved = cache[slot]
                run.rows.append({
                    "layer": name(layer.name), "technique": technique, "level": level,
                    "metric": metric, "delta": metric - baseline,
                    "drop": evaluate.metric.drop(baseline, metric),
                    "weights": int(sum(w.size for w in originals)),
                    "gzipped_saved": int(saved)})
                done += 1
                if progress is not None:
                    report = Progress(f"Sensitivity: {probe.label(level)}, {name(layer.name)}",
                                      1, 1, done, total, {"metric": float(metric)})
                    progress(report)
                    if report.stop_requested:
                        run.complete = False
                        return run
        finally:
            for variable, value in zip(variables, originals, strict=True):
                variable.assign(value)
    return run


# --------------------------------------------------------------------------- the answer
class Suggestion(dict):
    """A per-layer recipe from :meth:`Sensitivity.suggest`: ``{"prune": {layer: sparsity},
    "cluster": {layer: clusters}, "keep_float": [layers]}`` (the techniques measured), with
    what it expects: ``expected_drop`` (the per-layer drops added up: a first-order estimate,
    before fine-tuning), ``expected_gzipped_bytes`` (the base's gzipped .tflite less what the
    pruned and clustered kernels save under gzip, in float: int8 then shrinks it further),
    ``sparsity`` (over the measured prunable kernels) and
    ``max_drop``, the budget it was made for."""

    expected_drop: float = 0.0
    expected_gzipped_bytes: int | None = None
    sparsity: float = 0.0
    max_drop: float = 0.0

    def describe(self, metric: MetricSpec | None = None) -> str:
        """One sentence: what it changes and what it expects."""
        parts = []
        if self.get("prune"):
            parts.append(f"prune {len(self['prune'])} layer(s) to {self.sparsity:.0%} overall")
        if self.get("cluster"):
            parts.append(f"cluster {len(self['cluster'])} layer(s)")
        if "keep_float" in self:
            parts.append("int8 with " + (", ".join(self["keep_float"]) or "no layer")
                         + " kept float")
        drop = (metric.format_delta(-self.expected_drop) if metric
                else f"{-self.expected_drop:+.4f}")
        size = (f", about {self.expected_gzipped_bytes:,} gzipped bytes"
                + (" before int8" if "keep_float" in self else "")
                if self.expected_gzipped_bytes else "")
        return (("; ".join(parts) or "nothing to change within this budget")
                + f". Expected before fine-tuning: {drop}{size}.")


@dataclass(frozen=True)
class Sensitivity:
    """What :meth:`Workbench.sensitivity` measured: one row per (layer, technique, level).

    ``rows`` are dicts: ``layer``, ``technique``, ``level``, ``metric`` (the Workbench's, on
    ``samples`` test samples), ``delta`` (metric minus ``baseline``), ``drop`` (how much
    worse, in the metric's direction: positive is worse), ``weights`` and
    ``gzipped_saved``. ``complete`` is False when the run was stopped. For ``"int8"``,
    ``layer_errors`` has the full-integer model's per-layer activation error and
    ``int8_metric`` its metric on the same samples.
    """

    base: str
    metric: MetricSpec
    baseline: float
    samples: int
    levels: Mapping[str, tuple[Any, ...]]
    measured: tuple[Mapping[str, Any], ...]
    complete: bool = True
    base_gzipped_bytes: int | None = None
    layer_errors: tuple[Any, ...] = ()
    int8_metric: float | None = None
    #: what the user should know (e.g. why there are no activation errors)
    notes: tuple[str, ...] = ()

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.measured]

    @property
    def techniques(self) -> tuple[str, ...]:
        return tuple(self.levels)

    def to_dataframe(self) -> Any:
        return records_frame(self.rows, "The rows are already a list of dicts (.rows).")

    def ranking(self, technique: str, level: Any) -> list[tuple[str, float]]:
        """``(layer, drop)`` at one level, the most sensitive layer first."""
        found = [(r["layer"], r["drop"]) for r in self.measured
                 if r["technique"] == technique and r["level"] == level]
        if not found:
            raise ValueError(f"Nothing measured for {technique!r} at level {level!r}. "
                             f"Measured: {dict(self.levels)}.")
        return sorted(found, key=lambda item: -item[1])

    def plot(self, ax: Any = None) -> Any:
        """The heatmap: layers x (technique, level), colour = metric drop."""
        from compresswidgets.plots import plot_sensitivity

        if ax is None:
            from matplotlib.figure import Figure

            ax = Figure(figsize=(7, 4)).subplots()
        return plot_sensitivity(self, ax)

    def _by(self, technique: str) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for r in self.measured:
            if r["technique"] == technique:
                out.setdefault(r["layer"], []).append(dict(r))
        return out

    def suggest(self, max_drop: float = 0.01, *,
                target_sparsity: float | None = None) -> Suggestion:
        """A per-layer recipe that keeps each layer's measured drop within ``max_drop``.

        Pruning: each layer at the highest sparsity it took within ``max_drop``; with
        ``target_sparsity``, the sparsities that reach that fraction of zeros over the
        measured kernels at the least estimated drop (the cheapest weights first, levels in
        between measured ones interpolated). Clustering: each layer at the fewest clusters
        within ``max_drop``. int8: ``keep_float`` has the layers whose int8 weights cost more
        than ``max_drop``, and, when the full-integer model drops more than that, the layers
        whose activations do not fit int8 (rmse/scale above 1.0, or the worst one).
        """
        max_drop = check_number("max_drop", max_drop, 0.0, math.inf,
                                hint="Pass the largest metric drop to accept, e.g. 0.01.")
        out = Suggestion()
        drop, saved = 0.0, 0
        if "prune" in self.levels:
            if target_sparsity is None:
                chosen = self._within("prune", max_drop, max)
            else:
                chosen = self._allocate(check_number(
                    "target_sparsity", target_sparsity, 0.0, 1.0, high_open=True,
                    hint="Pass the overall fraction of zeros, e.g. 0.8."))
            out["prune"] = {name: level for name, (level, _, _) in chosen.items() if level}
            drop += sum(d for _, d, _ in chosen.values())
            saved += sum(s for _, _, s in chosen.values())
            sizes = {n: rows[0]["weights"] for n, rows in self._by("prune").items()}
            total = sum(sizes.values())
            out.sparsity = (sum(sizes[n] * level for n, (level, _, _) in chosen.items())
                            / total if total else 0.0)
        if "cluster" in self.levels:
            chosen = self._within("cluster", max_drop, min)
            out["cluster"] = {name: level for name, (level, _, _) in chosen.items()}
            pruned = out.get("prune", {})
            drop += sum(d for n, (_, d, _) in chosen.items())
            # a layer pruned and clustered saves about the larger of the two, not both
            saved += sum(max(0, s - self._saved("prune", n, pruned.get(n)))
                         for n, (_, _, s) in chosen.items())
        if "int8" in self.levels:
            out["keep_float"] = self._keep_float(max_drop)
        out.expected_drop = float(drop)
        out.max_drop = max_drop
        if self.base_gzipped_bytes is not None:
            out.expected_gzipped_bytes = int(max(0, self.base_gzipped_bytes - saved))
        return out

    def _saved(self, technique: str, layer: str, level: Any) -> int:
        if level is None:
            return 0
        rows = self._by(technique).get(layer, [])
        return _interpolate([(0.0, 0.0)] + [(r["level"], r["gzipped_saved"]) for r in rows],
                            level)

    def _within(self, technique: str, max_drop: float,
                pick: Callable[..., Any]) -> dict[str, tuple[Any, float, int]]:
        """Per layer, the level ``pick`` prefers among those within ``max_drop``."""
        out = {}
        for name, rows in self._by(technique).items():
            ok = [r for r in rows if r["drop"] <= max_drop]
            if ok:
                best = pick(ok, key=lambda r: r["level"])
                out[name] = (best["level"], max(0.0, best["drop"]), best["gzipped_saved"])
        return out

    def _allocate(self, target: float) -> dict[str, tuple[float, float, int]]:
        """Sparsities per layer reaching ``target`` over the measured kernels, cheapest
        first: raise, in steps of 0.05, the layer whose next step costs the least estimated
        drop per weight zeroed, until the zeros reach the target; the last step is partial."""
        layers = self._by("prune")
        curves = {}
        for name, rows in layers.items():
            points = [(0.0, 0.0), *sorted((r["level"], max(0.0, r["drop"])) for r in rows)]
            running, monotone = 0.0, []
            for level, d in points:  # a drop that shrinks with more sparsity is noise
                running = max(running, d)
                monotone.append((level, running))
            curves[name] = monotone
        sizes = {n: rows[0]["weights"] for n, rows in layers.items()}
        total = sum(sizes.values())
        ceiling = sum(sizes[n] * curves[n][-1][0] for n in curves) / total
        if target > ceiling + 1e-9:
            raise ValueError(
                f"target_sparsity={target} is above what was measured: at most "
                f"{ceiling:.1%} of these kernels with each layer at its highest level "
                f"({max(self.levels['prune']):.0%}). Measure higher levels, e.g. "
                "levels={'prune': (0.5, 0.8, 0.9, 0.95)}, or ask for less.")
        level = dict.fromkeys(curves, 0.0)
        need = target * total
        step = 0.05
        while need > 1e-9:
            best, cost = None, math.inf
            for name, curve in curves.items():
                top = curve[-1][0]
                if level[name] >= top - 1e-12:
                    continue
                nxt = min(top, level[name] + step)
                extra = (_interpolate(curve, nxt) - _interpolate(curve, level[name]))
                per_weight = extra / (sizes[name] * (nxt - level[name]))
                if per_weight < cost - 1e-15:
                    best, cost = name, per_weight
            if best is None:
                break
            room = min(curves[best][-1][0], level[best] + step) - level[best]
            take = min(room, need / sizes[best])
            level[best] += take
            need -= take * sizes[best]
        return {n: (round(level[n], 4), _interpolate(curves[n], level[n]),
                    self._saved("prune", n, level[n]) if level[n] else 0) for n in curves}

    def _keep_float(self, max_drop: float) -> list[str]:
        keep = [name for name, rows in self._by("int8").items()
                if rows and rows[0]["drop"] > max_drop]
        whole = (None if self.int8_metric is None else
                 (1.0 if self.metric.greater_is_better else -1.0)
                 * (self.baseline - self.int8_metric))
        if whole is not None and whole > max_drop and self.layer_errors:
            worst: dict[str, float] = {}
            misfits: list[str] = []
            for e in sorted(self.layer_errors, key=lambda e: -e.rmse_scale):
                if e.layer is not None:
                    worst[e.layer] = max(worst.get(e.layer, 0.0), e.rmse_scale)
                    if e.misfit and e.layer not in misfits:
                        misfits.append(e.layer)
            if not misfits and worst:
                misfits = [max(worst, key=worst.get)]
            keep += [n for n in misfits if n not in keep]
        return keep


def _interpolate(points: list[tuple[float, float]], x: float) -> float:
    """Piecewise-linear through ``points`` (sorted by x), flat beyond the ends."""
    pts = sorted(points)
    if not pts:
        return 0.0
    if x <= pts[0][0]:
        return pts[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0) if x1 > x0 else y1
    return pts[-1][1]


# --------------------------------------------------------------------------- one run
def run(model: Any, x_test: np.ndarray, y_test: np.ndarray, metric: MetricSpec, *,
        base: str, techniques: Any = ("prune", "cluster", "int8"), levels: Any = None,
        samples: Any = 500, layers: LayerSelection = None,
        cache: dict[tuple, tuple[float, int]] | None = None,
        progress: ProgressCallback | None = None, user_name: Callable[[str], str] = str,
        base_gzipped_bytes: int | None = None,
        int8_errors: Callable[[np.ndarray, np.ndarray],
                              tuple[tuple[Any, ...], float | None, str]] | None = None,
        ) -> Sensitivity:
    """Measure ``model`` (a private copy: its weights change during the run and are put
    back) layer by layer; see :meth:`compresswidgets.Workbench.sensitivity`."""
    from compresswidgets.techniques._common import clone_with_weights

    chosen, by_technique, n = check_request(techniques, levels, samples, len(x_test))
    if layers is not None and not callable(layers):
        named_layers(model, layers, "Sensitivity")  # unknown names: a three-part error
    copy = clone_with_weights(model)
    picked = sample_indices(len(x_test), n)
    x, y = np.asarray(x_test[picked]), np.asarray(y_test[picked])
    evaluate = Evaluator(copy, x, y, metric)
    baseline = evaluate()
    plan = []
    for technique in chosen:
        for layer in layers_for(copy, technique, layers):
            wanted = by_technique[technique]
            if technique == "cluster":  # no more clusters than weights
                size = min(int(np.prod(v.shape)) for v in clusterable_weights(layer))
                wanted = tuple(k for k in wanted if k <= size)
            if wanted:
                plan.append((technique, layer, wanted))
    if not plan:
        raise ValueError(f"Sensitivity: nothing to measure in {model.name!r} for "
                         f"{', '.join(chosen)} with layers={layers!r}: no layer these "
                         "techniques can act on. Layers: "
                         f"{', '.join(layer.name for layer in model.layers)}.")
    done = measure(evaluate, plan, {} if cache is None else cache, (base, n), baseline,
                   progress, user_name)
    errors, int8_metric, note = ((), None, "")
    if "int8" in chosen and done.complete and int8_errors is not None:
        errors, int8_metric, note = int8_errors(x, y)
    return Sensitivity(base, metric, float(baseline), n, by_technique, tuple(done.rows),
                       done.complete, base_gzipped_bytes, tuple(errors), int8_metric,
                       (note,) if note else ())
