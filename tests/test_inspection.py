"""inspect_weights against NumPy on hand-made weights, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import HOSTILE, weights_bytes

import compresswidgets as cw
from compresswidgets.inspection import histogram_of


def _finite(a):
    a = np.asarray(a, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def _dense(keras, kernel, bias=None, name="dense"):
    kernel = np.asarray(kernel, dtype=np.float32)
    model = keras.Sequential([keras.layers.Dense(kernel.shape[1], input_shape=(kernel.shape[0],),
                                                 name=name)])
    model.layers[0].set_weights([kernel, np.zeros(kernel.shape[1], np.float32)
                                 if bias is None else np.asarray(bias, np.float32)])
    return model


def assert_matches_numpy(stats, values):
    values = np.asarray(values)
    fin = _finite(values)
    assert stats.params == values.size
    assert stats.shape == values.shape
    assert stats.nan == int(np.isnan(values).sum())
    assert stats.inf == int(np.isinf(values).sum())
    assert stats.zeros == int((values == 0).sum())
    assert stats.sparsity == pytest.approx((values == 0).sum() / values.size)
    if fin.size:
        assert stats.min == fin.min() and stats.max == fin.max()
        assert stats.mean == pytest.approx(fin.mean(), rel=1e-5, abs=1e-7)
        assert stats.std == pytest.approx(fin.std(), rel=1e-4, abs=1e-7)
        assert stats.distinct == np.unique(fin).size
    else:
        assert np.isnan(stats.min) and stats.distinct == 0


def test_random_kernel_matches_numpy(keras):
    rng = np.random.default_rng(1)
    kernel = rng.normal(0, 0.2, size=(30, 20)).astype(np.float32)
    kernel[rng.random(kernel.shape) < 0.3] = 0.0
    model = _dense(keras, kernel, bias=rng.normal(size=20))
    report = cw.inspect_weights(model, bins=16)
    assert [t.key for t in report] == ["dense/kernel", "dense/bias"]
    k = report.find("dense", "kernel")
    assert_matches_numpy(k, kernel)
    assert k.layer_class == "Dense" and k.dtype == "float32" and k.trainable
    counts, edges = np.histogram(kernel, bins=16)
    np.testing.assert_array_equal(k.histogram.counts, counts)
    np.testing.assert_allclose(k.histogram.edges, edges)
    np.testing.assert_array_equal(k.channel_min, kernel.min(axis=0))
    np.testing.assert_array_equal(k.channel_max, kernel.max(axis=0))
    assert report.total_params == 30 * 20 + 20
    assert report.float32_bytes == 4 * (30 * 20 + 20)
    assert report.zeros == int((kernel == 0).sum())


def test_nan_inf_are_counted_and_never_crash_a_histogram(keras):
    kernel = np.linspace(-1, 1, 24, dtype=np.float32).reshape(6, 4)
    kernel[0, 0], kernel[1, 1], kernel[2, 2], kernel[3, 3] = np.nan, np.inf, -np.inf, np.nan
    model = _dense(keras, kernel)
    report = cw.inspect_weights(model, bins=8, log=True)
    k = report["dense/kernel"]
    assert (k.nan, k.inf) == (2, 2)
    assert_matches_numpy(k, kernel)
    counts, _ = np.histogram(_finite(kernel).astype(np.float32), bins=8)
    np.testing.assert_array_equal(k.histogram.counts, counts)
    assert k.histogram.total == 20 and k.histogram.log
    assert np.all(np.isfinite(k.histogram.heights))
    assert report.nan == 2 and report.inf == 2
    # per-channel ranges ignore the non-finite entries
    masked = np.where(np.isfinite(kernel), kernel, np.nan)
    np.testing.assert_array_equal(k.channel_min, np.nanmin(masked, axis=0))


def test_all_nan_tensor(keras):
    model = _dense(keras, np.full((3, 2), np.nan, np.float32))
    k = cw.inspect_weights(model, bins=4)["dense/kernel"]
    assert k.nan == 6 and k.distinct == 0 and np.isnan(k.mean)
    assert k.histogram.total == 0


def test_zeros_and_constant_tensors(keras):
    model = _dense(keras, np.zeros((5, 3)), bias=np.full(3, 0.25))
    report = cw.inspect_weights(model, bins=10)
    kernel, bias = report["dense/kernel"], report["dense/bias"]
    assert kernel.sparsity == 1.0 and kernel.distinct == 1 and kernel.std == 0
    assert bias.sparsity == 0.0 and bias.distinct == 1 and bias.std == 0.0
    assert bias.min == bias.max == pytest.approx(0.25)
    counts, edges = np.histogram(np.full(3, 0.25, np.float32), bins=10)
    np.testing.assert_array_equal(bias.histogram.counts, counts)
    np.testing.assert_allclose(bias.histogram.edges, edges)
    assert report.sparsity == pytest.approx(15 / 18)


def test_histogram_options_match_numpy():
    rng = np.random.default_rng(7)
    values = rng.normal(size=5000).astype(np.float32)
    values[:1500] = 0.0
    h = histogram_of(values, bins=13, range=(-1.0, 1.5))
    counts, edges = np.histogram(values, bins=13, range=(-1.0, 1.5))
    np.testing.assert_array_equal(h.counts, counts)
    np.testing.assert_allclose(h.edges, edges)
    assert h.outside == int(((values < -1.0) | (values > 1.5)).sum())
    nz = values[values != 0]
    hz = histogram_of(values, bins=9, exclude_zeros=True)
    counts, edges = np.histogram(nz, bins=9)
    np.testing.assert_array_equal(hz.counts, counts)
    np.testing.assert_allclose(hz.edges, edges)
    assert hz.total == nz.size


@pytest.mark.parametrize("bad", [0, -3, 2.5, "64", True])
def test_bad_bins_say_what_and_how(bad):
    with pytest.raises(ValueError, match=r"bins must be a whole number.*got.*bins=64"):
        histogram_of(np.ones(3), bins=bad)


@pytest.mark.parametrize("bad", [(1, 0), (0, np.nan), "ab", (1,)])
def test_bad_range(bad):
    with pytest.raises(ValueError, match=r"range must be two finite numbers.*got"):
        histogram_of(np.ones(3), range=bad)


def test_large_tensors_take_the_parallel_path_and_stay_exact(keras):
    rng = np.random.default_rng(3)
    kernel = rng.normal(0.01, 0.05, size=(1100, 1000)).astype(np.float32)
    kernel[:, :100] = 0.0
    kernel = np.round(kernel, 3)  # plenty of repeated values
    model = _dense(keras, kernel)
    report = cw.inspect_weights(model, bins=64)
    k = report["dense/kernel"]
    assert_matches_numpy(k, kernel)
    counts, _ = np.histogram(kernel, bins=64)
    np.testing.assert_array_equal(k.histogram.counts, counts)
    # histograms asked for later, at other settings, agree too and are cached
    h = report.histogram(k, bins=20, exclude_zeros=True)
    np.testing.assert_array_equal(h.counts, np.histogram(kernel[kernel != 0], bins=20)[0])
    assert report.histogram(k, bins=20, exclude_zeros=True) is h


@pytest.mark.parametrize("first", ["distinct", "histogram", "mean", "channel_min"])
def test_lazy_fields_equal_numpy_whichever_is_asked_first(keras, first):
    # distinct, histogram, mean/std and channel ranges are worked out on first access
    rng = np.random.default_rng(11)
    kernel = np.round(rng.normal(0.02, 0.1, size=(600, 300)), 3).astype(np.float32)
    kernel[:, :30] = 0.0  # 180,000 values: more than one block of the sweep, many repeats
    bias = np.round(rng.normal(size=300), 1).astype(np.float32)
    report = cw.inspect_weights(_dense(keras, kernel, bias), bins=32)
    getattr(report["dense/kernel"], first)
    for key, values in (("dense/kernel", kernel), ("dense/bias", bias)):
        t = report[key]
        assert t.distinct == np.unique(values).size
        counts, edges = np.histogram(values, bins=32)
        np.testing.assert_array_equal(t.histogram.counts, counts)
        np.testing.assert_allclose(t.histogram.edges, edges)
        assert t.histogram is report.histogram(t, bins=32)  # computed once, shared
        wide = values.astype(np.float64)
        assert t.mean == pytest.approx(wide.mean(), rel=1e-5, abs=1e-7)
        assert t.std == pytest.approx(wide.std(), rel=1e-4, abs=1e-7)
        assert t.zeros == np.count_nonzero(values == 0)
        assert (t.min, t.max) == (values.min(), values.max())
    k = report["dense/kernel"]
    np.testing.assert_array_equal(k.channel_min, kernel.min(axis=0))
    np.testing.assert_array_equal(k.channel_max, kernel.max(axis=0))
    assert report["dense/bias"].channel_min is None and report["dense/bias"].channels == 0
    # the same numbers in the table, and a histogram at other settings from the same values
    row = report.to_records()[0]
    assert row["distinct"] == np.unique(kernel).size and row["channels"] == 300
    h = report.histogram(k, bins=7, exclude_zeros=True)
    np.testing.assert_array_equal(h.counts, np.histogram(kernel[kernel != 0], bins=7)[0])


def test_large_tensor_with_nan_inf_and_negative_zero_matches_numpy(keras):
    rng = np.random.default_rng(12)
    kernel = rng.normal(0, 0.3, size=(700, 400)).astype(np.float32)  # 280,000: three blocks
    flat = kernel.reshape(-1)
    flat[rng.choice(flat.size, 900, replace=False)] = 0.0
    flat[[10, 150_000]] = -0.0
    flat[[200_001, 200_002]] = np.nan
    flat[[5, 270_000]] = np.inf, -np.inf
    report = cw.inspect_weights(_dense(keras, kernel, np.array([np.nan] + [0.5] * 399)), bins=16)
    k, b = report["dense/kernel"], report["dense/bias"]
    assert_matches_numpy(k, kernel)
    assert (k.nan, k.inf, b.nan) == (2, 2, 1)
    counts, _ = np.histogram(_finite(kernel).astype(np.float32), bins=16)
    np.testing.assert_array_equal(k.histogram.counts, counts)
    masked = np.where(np.isfinite(kernel), kernel, np.nan)
    np.testing.assert_array_equal(k.channel_max, np.nanmax(masked, axis=0))
    assert_matches_numpy(b, np.array([np.nan] + [0.5] * 399, np.float32))
    assert b.std == 0.0 and b.mean == 0.5
    assert report.nan == 3 and report.zeros == np.count_nonzero(kernel == 0)


def test_nested_models_wrappers_and_layers_without_weights(keras):
    inner = keras.Sequential([keras.layers.Dense(4, input_shape=(3,), name="inner_dense")],
                             name="inner")
    inputs = keras.Input((5, 3))
    x = keras.layers.TimeDistributed(keras.layers.Dense(3, name="td_dense"), name="td")(inputs)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(3, name="squeeze")(x)
    x = inner(x)
    model = keras.Model(inputs, x, name="outer")
    report = cw.inspect_weights(model)
    assert [t.key for t in report] == [
        "td/td_dense/kernel", "td/td_dense/bias", "squeeze/kernel", "squeeze/bias",
        "inner/inner_dense/kernel", "inner/inner_dense/bias",
    ]
    assert report["inner/inner_dense/kernel"].layer_class == "Dense"
    assert "flat" not in [layer.layer for layer in report.layers]
    assert report.total_params == model.count_params()
    assert [layer.layer for layer in report.layers] == ["td/td_dense", "squeeze",
                                                        "inner/inner_dense"]


def test_tfmot_wrapper_weights_are_attributed(keras):
    from compresswidgets import _keras

    tfmot = _keras.tfmot()
    base = keras.Sequential([keras.layers.Dense(4, input_shape=(3,), name="d")])
    pruned = tfmot.sparsity.keras.prune_low_magnitude(keras.models.clone_model(base))
    report = cw.inspect_weights(pruned)
    keys = [t.key for t in report]
    assert "prune_low_magnitude_d/d/kernel" in keys
    assert "prune_low_magnitude_d/mask" in keys
    assert report["prune_low_magnitude_d/mask"].layer_class == "PruneLowMagnitude"


def test_per_channel_axes(keras):
    inputs = keras.Input((6, 6, 4))
    x = keras.layers.Conv2D(5, 3, name="conv")(inputs)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
    x = keras.layers.Conv2DTranspose(3, 3, name="tconv")(x)
    model = keras.Model(inputs, x)
    report = cw.inspect_weights(model, bins=None)
    conv = model.get_layer("conv").kernel.numpy()
    np.testing.assert_array_equal(report["conv/kernel"].channel_max, conv.max(axis=(0, 1, 2)))
    dw = model.get_layer("dw").depthwise_kernel.numpy()  # (3, 3, 5, 2) -> 10 channels
    assert report["dw/depthwise_kernel"].channels == 10
    np.testing.assert_array_equal(report["dw/depthwise_kernel"].channel_min,
                                  dw.reshape(9, 10).min(axis=0))
    tconv = model.get_layer("tconv").kernel.numpy()  # (3, 3, out=3, in=10)
    np.testing.assert_array_equal(report["tconv/kernel"].channel_min, tconv.min(axis=(0, 1, 3)))
    assert report["conv/bias"].channel_min is None
    assert report["conv/kernel"].histogram is None  # bins=None: no histograms up front
    assert report.histogram("conv/kernel", bins=4).total == conv.size


def test_keras3_models_are_read_too():
    import keras as keras3

    assert keras3.__version__.startswith("3")
    model = keras3.Sequential([keras3.Input((4,)), keras3.layers.Dense(3, name=HOSTILE)])
    report = cw.inspect_weights(model)
    assert report.keras == "keras3"
    kernel = model.layers[0].kernel.numpy()
    assert_matches_numpy(report[f"{HOSTILE}/kernel"], kernel)


def test_the_model_is_never_modified(keras):
    rng = np.random.default_rng(0)
    model = _dense(keras, rng.normal(size=(200, 300)))
    before = weights_bytes(model)
    report = cw.inspect_weights(model, bins=32, exclude_zeros=True)
    report.histogram(0, bins=5)
    assert weights_bytes(model) == before
    with pytest.raises(ValueError):  # the report's arrays cannot be written through
        report.values(0)[0, 0] = 1.0
    assert weights_bytes(model) == before


@pytest.mark.parametrize("thing", [None, 42, "model.h5", np.zeros(3), object()])
def test_not_a_model(thing):
    with pytest.raises(TypeError, match=r"expects a Keras model.*but got.*load it first"):
        cw.inspect_weights(thing)


def test_unbuilt_model(keras):
    model = keras.Sequential([keras.layers.Dense(3)], name="lazy")
    with pytest.raises(ValueError, match=r"'lazy' has not been built.*model.build"):
        cw.inspect_weights(model)


def test_model_without_weights(keras):
    empty = keras.Sequential([keras.layers.Flatten(input_shape=(2, 2))], name="noweights")
    with pytest.raises(ValueError, match=r"'noweights' has no weights.*Flatten.*Expected"):
        cw.inspect_weights(empty)
    with pytest.raises(ValueError, match=r"has no weights"):
        cw.inspect_weights(keras.Sequential(name="empty"))


def test_find_and_index_errors(keras):
    report = cw.inspect_weights(_dense(keras, np.ones((2, 2))))
    with pytest.raises(KeyError, match=r"No weight 'gamma' in layer 'dense'.*dense/kernel"):
        report.find("dense", "gamma")
    with pytest.raises(IndexError, match="out of range"):
        report.histogram(9)


def test_summary_and_records(keras):
    report = cw.inspect_weights(_dense(keras, np.eye(3)))
    text = report.summary()
    assert "dense/kernel" in text and "12 parameters" in text
    records = report.to_records()
    assert records[0]["distinct"] == 2 and records[0]["sparsity"] == pytest.approx(6 / 9)
