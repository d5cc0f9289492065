"""What a layer's weights would look like after a technique, computed with NumPy in milliseconds.

Used for the live previews of the panels: moving a slider redraws the histogram as it would be
after one-shot magnitude pruning, k-means clustering or int8 weight quantization. These are
previews on a copy, not the techniques themselves (the Workbench runs tfmot and the converter).

Example:
    >>> w = np.array([0.1, -0.5, 0.02, 0.9, -0.03])
    >>> prune_preview(w, 0.4).tolist()
    [0.1, -0.5, 0.0, 0.9, 0.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compresswidgets.techniques._common import check_choice
from compresswidgets.techniques.clustering import INITS

__all__ = ["KMeans1D", "int8_preview", "kmeans_1d", "prune_preview", "pruned_count"]


def _check_fraction(sparsity: float) -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, int | float) or not (
            0.0 <= sparsity < 1.0):
        raise ValueError(f"sparsity must be a number in [0, 1), but got {sparsity!r}. "
                         "Pass e.g. 0.8 for 80 % zeros.")
    return float(sparsity)


def pruned_count(size: int, sparsity: float) -> int:
    """How many of ``size`` weights tfmot zeroes at ``sparsity``: it keeps
    ``round(size * (1 - sparsity))`` (float32 arithmetic, ties to even), the rest go."""
    keep = np.round(np.float32(size) * (np.float32(1.0) - np.float32(sparsity)))
    return int(size - int(keep))


def prune_preview(values: np.ndarray, sparsity: float) -> np.ndarray:
    """A copy of ``values`` with the ``sparsity`` fraction of smallest magnitudes set to zero.

    The same rule and count as tfmot's one-shot magnitude pruning of a whole tensor
    (:func:`pruned_count`); which of several weights tied at the threshold goes may differ.
    O(n): a partition, not a sort.
    """
    sparsity = _check_fraction(sparsity)
    flat = np.asarray(values).reshape(-1)
    k = pruned_count(flat.size, sparsity)
    out = np.array(values, copy=True)
    if k == 0:
        return out
    magnitude = np.abs(flat)
    threshold = np.partition(magnitude, k - 1)[k - 1]
    below = magnitude < threshold
    out.reshape(-1)[below] = 0
    # zero exactly k: take weights equal to the threshold until the count is reached
    missing = k - int(np.count_nonzero(below))
    if missing > 0:
        ties = np.flatnonzero(magnitude == threshold)[:missing]
        out.reshape(-1)[ties] = 0
    return out


@dataclass(frozen=True)
class KMeans1D:
    """Centroids (ascending), how many weights each got, and the inertia (sum of squares)."""

    centroids: np.ndarray
    counts: np.ndarray
    inertia: float

    def assign(self, values: np.ndarray) -> np.ndarray:
        """Each value replaced by its nearest centroid (a copy)."""
        edges = (self.centroids[1:] + self.centroids[:-1]) / 2
        return self.centroids[np.searchsorted(edges, np.asarray(values))].astype(
            np.asarray(values).dtype)


def _init(lo: float, hi: float, centers: np.ndarray, weights: np.ndarray, k: int, init: str,
          rng: np.random.Generator) -> np.ndarray:
    if init == "linear":
        return np.linspace(lo, hi, k)
    if init == "random":
        return np.sort(rng.uniform(lo, hi, size=k))
    if init == "density-based":
        cdf = np.cumsum(weights) / weights.sum()
        return np.interp((np.arange(k) + 0.5) / k, cdf, centers)
    # k-means++ on the weighted fine-bin centres
    chosen = [centers[rng.choice(len(centers), p=weights / weights.sum())]]
    for _ in range(1, k):
        distance = np.min((centers[:, None] - np.array(chosen)[None, :]) ** 2, axis=1)
        p = distance * weights
        chosen.append(centers[rng.choice(len(centers), p=p / p.sum())] if p.sum() > 0
                      else centers[rng.integers(len(centers))])
    return np.sort(np.array(chosen))


def kmeans_1d(values: np.ndarray, k: int, *, init: str = "kmeans++", iterations: int = 30,
              bins: int = 4096, seed: int = 0, exclude_zeros: bool = False) -> KMeans1D:
    """1-D k-means on a fine histogram of ``values``: O(n) once, then O(bins) per iteration.

    The values are binned into ``bins`` equal-width bins (their means kept), and Lloyd's
    iterations run on those weighted points, so a 2.4 M-weight layer clusters in
    milliseconds. ``exclude_zeros`` clusters the non-zeros only (sparsity-preserving
    clustering keeps zeros apart). ``iterations=0`` keeps the initial centroids: tfmot runs
    no k-means iterations, it starts fine-tuning from them.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a whole number >= 1, but got {k!r}.")
    check_choice("init", init, INITS)
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    flat = flat[np.isfinite(flat)]
    if exclude_zeros:
        flat = flat[flat != 0]
    if flat.size == 0:
        return KMeans1D(np.zeros(0), np.zeros(0, np.int64), 0.0)
    lo, hi = float(flat.min()), float(flat.max())
    if lo == hi:
        return KMeans1D(np.array([lo]), np.array([flat.size]), 0.0)
    index = np.minimum(((flat - lo) * (bins / (hi - lo))).astype(np.intp), bins - 1)
    weights = np.bincount(index, minlength=bins).astype(np.float64)
    sums = np.bincount(index, weights=flat, minlength=bins)
    used = weights > 0
    centers, weights = sums[used] / weights[used], weights[used]
    k = min(k, len(centers))
    rng = np.random.default_rng(seed)
    centroids = _init(lo, hi, centers, weights, k, init, rng)
    for _ in range(iterations):
        edges = (centroids[1:] + centroids[:-1]) / 2
        label = np.searchsorted(edges, centers)
        mass = np.bincount(label, weights=weights, minlength=k)
        moment = np.bincount(label, weights=weights * centers, minlength=k)
        updated = np.where(mass > 0, moment / np.maximum(mass, 1e-300), centroids)
        updated = np.sort(updated)
        if np.allclose(updated, centroids, rtol=0, atol=1e-12 * max(1.0, hi - lo)):
            centroids = updated
            break
        centroids = updated
    edges = (centroids[1:] + centroids[:-1]) / 2
    label = np.searchsorted(edges, centers)
    counts = np.bincount(label, weights=weights, minlength=len(centroids)).astype(np.int64)
    inertia = float(np.sum(weights * (centers - centroids[label]) ** 2))
    return KMeans1D(centroids, counts, inertia)


def int8_preview(values: np.ndarray, channel_axis: int | None = -1) -> np.ndarray:
    """``values`` after symmetric int8 quantization and back (TFLite's weight scheme).

    Per output channel along ``channel_axis`` (TFLite's default for conv and dense kernels),
    or per tensor with ``channel_axis=None``: scale = max|w| / 127, q = round(w / scale).
    """
    w = np.asarray(values, dtype=np.float32)
    if channel_axis is None or w.ndim == 0:
        peak = np.max(np.abs(w)) if w.size else np.float32(0)
    else:
        axes = tuple(a for a in range(w.ndim) if a != channel_axis % w.ndim)
        peak = np.max(np.abs(w), axis=axes, keepdims=True)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    return (np.clip(np.round(w / scale), -127, 127) * scale).astype(np.float32)
