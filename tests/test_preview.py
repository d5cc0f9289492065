"""Previews: one-shot pruning, 1-D k-means and int8 weights, checked against slow references."""

from __future__ import annotations

import numpy as np
import pytest

import compresswidgets as cw
from compresswidgets.preview import int8_preview, kmeans_1d, prune_preview


def test_prune_preview_zeroes_exactly_the_smallest_magnitudes():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(30, 40)).astype(np.float32)
    for sparsity in (0.0, 0.25, 0.8, 0.999):
        out = prune_preview(w, sparsity)
        k = w.size - int(np.round(np.float32(w.size) * np.float32(1 - sparsity)))
        assert int(np.sum(out == 0)) == k and out.shape == w.shape
        kept = out != 0
        np.testing.assert_array_equal(out[kept], w[kept])
        if k:
            assert np.abs(w[~kept]).max() <= np.abs(w[kept]).min()
    before = w.copy()
    prune_preview(w, 0.5)
    np.testing.assert_array_equal(w, before)  # a copy is pruned, never the input


def test_prune_preview_with_ties_still_zeroes_k():
    w = np.array([0.5, -0.5, 0.5, 0.1, 2.0, 0.5], dtype=np.float32)
    out = prune_preview(w, 0.5)
    assert int(np.sum(out == 0)) == 3 and out[3] == 0 and out[4] == 2.0


@pytest.mark.parametrize("bad", [-0.1, 1.0, "0.5", True])
def test_prune_preview_rejects_bad_sparsity(bad):
    with pytest.raises(ValueError, match=r"sparsity must be a number in \[0, 1\)"):
        prune_preview(np.ones(4), bad)


def _lloyd(x, centroids, iterations=100):
    """Plain Lloyd's algorithm on every value: the slow reference."""
    c = centroids.astype(np.float64)
    for _ in range(iterations):
        label = np.argmin(np.abs(x[:, None] - c[None, :]), axis=1)
        c = np.array([x[label == j].mean() if np.any(label == j) else c[j]
                      for j in range(len(c))])
    label = np.argmin(np.abs(x[:, None] - c[None, :]), axis=1)
    return np.sort(c), float(np.sum((x - c[label]) ** 2))


def test_kmeans_matches_lloyd_on_the_raw_values():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(-1, 0.1, 3000), rng.normal(0.5, 0.05, 2000),
                        rng.normal(2, 0.2, 1000)])
    fast = kmeans_1d(x, 3, init="linear")
    slow_centroids, slow_inertia = _lloyd(x, np.linspace(x.min(), x.max(), 3))
    np.testing.assert_allclose(fast.centroids, slow_centroids, atol=2e-3)
    assert fast.inertia == pytest.approx(slow_inertia, rel=0.02)
    assert fast.counts.sum() == x.size
    np.testing.assert_allclose(sorted(fast.counts), [1000, 2000, 3000], atol=5)
    clustered = fast.assign(x)
    assert len(np.unique(clustered)) == 3


@pytest.mark.parametrize("init", ["kmeans++", "linear", "random", "density-based"])
def test_every_init_gives_k_clusters(init):
    x = np.random.default_rng(2).normal(size=20_000)
    result = kmeans_1d(x, 16, init=init)
    assert len(result.centroids) == 16 and np.all(np.diff(result.centroids) > 0)
    assert result.counts.sum() == x.size
    assert len(np.unique(result.assign(x))) <= 16


def test_kmeans_edge_cases():
    assert kmeans_1d(np.full(10, 0.3), 4).centroids.tolist() == [0.3]
    zeros = np.array([0.0] * 8 + [1.0, 2.0, 3.0])
    assert 0.0 not in kmeans_1d(zeros, 2, exclude_zeros=True).centroids
    with pytest.raises(ValueError, match="k must be"):
        kmeans_1d(np.ones(3), 0)
    one = kmeans_1d(np.array([1.0, 2.0, 6.0]), 1)  # one cluster: the mean
    assert one.centroids.tolist() == pytest.approx([3.0])
    with pytest.raises(ValueError, match="Unknown init"):
        kmeans_1d(np.arange(5.0), 2, init="kmeans")


def test_int8_preview_per_channel_and_per_tensor():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(3, 3, 4, 8)).astype(np.float32) * np.linspace(0.1, 2, 8)
    per_channel = int8_preview(w, channel_axis=-1)
    per_tensor = int8_preview(w, channel_axis=None)
    for c in range(8):
        levels = np.unique(per_channel[..., c])
        assert len(levels) <= 255
        step = np.abs(w[..., c]).max() / 127
        assert np.abs(per_channel[..., c] - w[..., c]).max() <= step / 2 + 1e-6
    error_channel = np.abs(per_channel - w).mean()
    error_tensor = np.abs(per_tensor - w).mean()
    assert error_channel < error_tensor  # what per-channel quantization buys


def test_prune_preview_zeroes_as_many_as_tfmot(demo):
    """The preview's count is tfmot's, layer by layer (one-shot pruning, no training)."""
    model, data = demo
    wb = cw.Workbench(model, data)
    for sparsity in (0.5, 0.8, 0.33):
        pruned = wb.prune(sparsity, epochs=0)
        for layer in pruned.recipe["layers"]:
            kernel = wb.original.kernel(layer)
            assert int(np.sum(prune_preview(kernel, sparsity) == 0)) == int(
                np.sum(pruned.kernel(layer) == 0)), (layer, sparsity)
