"""Sensitivity: one layer at a time, measured as the Workbench would measure the variant;
per-layer targets; int8 with layers kept float, verified in the .tflite."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import op_input_types, with_activation_outlier
from matplotlib.figure import Figure

import compresswidgets as cw
from compresswidgets import sensitivity as sens
from compresswidgets import tflite as tfl
from compresswidgets.techniques._common import kernel_of


@pytest.fixture(scope="module")
def wb(demo):
    model, data = demo
    return cw.Workbench(model, data)


@pytest.fixture(scope="module")
def prune80(wb):
    return wb.sensitivity(("prune",), {"prune": (0.8,)}, samples=None)


def test_the_heatmap_ranking_is_the_one_of_one_layer_prunes(wb, prune80):
    """At 80 %, each layer's metric is the one of wb.prune(0.8, epochs=0, layers=[it])."""
    measured = dict(prune80.ranking("prune", 0.8))
    assert set(measured) == {"conv2d", "conv2d_1", "conv2d_2", "dense", "dense_1"}
    by_variant = {}
    for name in measured:
        v = wb.prune(0.8, epochs=0, layers=[name], name=f"only {name}")
        by_variant[name] = wb.original.keras_accuracy - v.keras_accuracy
    assert measured == pytest.approx(by_variant, abs=1e-9)
    order = [n for n, _ in prune80.ranking("prune", 0.8)]
    assert order == sorted(by_variant, key=lambda n: -by_variant[n])
    assert order[:2] == ["dense_1", "dense"]  # the small classifier layers are the fragile ones


def test_the_mask_is_tfmots(demo):
    """The NumPy magnitude rule zeros exactly what tfmot's one-shot pruning zeros."""
    model, data = demo
    wb = cw.Workbench(model, data)
    v = wb.prune(0.8, epochs=0, layers=["conv2d_1"])
    ours = sens.magnitude_pruned(kernel_of(model.get_layer("conv2d_1")).numpy(), 0.8)
    np.testing.assert_array_equal(ours == 0,
                                  kernel_of(v.keras_model.get_layer("conv2d_1")).numpy() == 0)


def test_a_per_layer_recipe_beats_uniform_pruning_at_the_same_sparsity(wb, prune80, demo):
    s = wb.sensitivity(("prune",), samples=None)
    uniform = wb.prune(0.8, epochs=0, layers=None, name="uniform 80")
    kernels = {r["layer"]: r["params"] for r in uniform.layers}
    zeros = sum(r["sparsity"] * r["params"] for r in uniform.layers)
    target = zeros / sum(kernels.values())  # the tiny layers stay dense in the uniform one
    suggestion = s.suggest(max_drop=0.01, target_sparsity=target)
    assert suggestion.sparsity == pytest.approx(target, abs=1e-3)
    per_layer = wb.prune(suggestion["prune"], epochs=0, name="per layer")
    assert per_layer.sparsity == pytest.approx(uniform.sparsity, abs=0.005)
    assert per_layer.accuracy >= uniform.accuracy
    assert suggestion.expected_gzipped_bytes < wb.original.gzipped_bytes


def test_a_per_layer_recipe_beats_every_layer_at_80_after_seeded_fine_tuning(
        demo, monkeypatch, keras):
    """Every layer at 80 % against the suggestion for the same 80 % overall, both
    fine-tuned for an epoch from the same seed."""
    monkeypatch.setenv("COMPRESSWIDGETS_IN_PROCESS", "1")  # seeded here, not in the worker
    model, data = demo
    wb = cw.Workbench(model, data)
    s = wb.sensitivity(("prune",), samples=None)
    everything = [r["layer"] for r in s.rows if r["level"] == 0.5]
    keras.utils.set_random_seed(3)
    uniform = wb.prune(0.8, epochs=1, layers=everything)
    keras.utils.set_random_seed(3)
    per_layer = wb.prune(s.suggest(0.01, target_sparsity=0.8)["prune"], epochs=1)
    assert per_layer.sparsity == pytest.approx(uniform.sparsity, abs=0.005)
    assert per_layer.accuracy >= uniform.accuracy


def test_suggest_keeps_each_layer_within_the_budget(prune80, wb):
    s = wb.sensitivity(("prune", "cluster"), samples=None)
    suggestion = s.suggest(max_drop=0.01)
    drops = {(r["technique"], r["layer"], r["level"]): r["drop"] for r in s.rows}
    for layer, level in suggestion["prune"].items():
        assert drops[("prune", layer, level)] <= 0.01
        higher = [lv for lv in s.levels["prune"] if lv > level]
        assert all(drops[("prune", layer, lv)] > 0.01 for lv in higher)
    assert "dense_1" not in suggestion["prune"]  # -32 points at 80 %, -4 at 50 %
    for layer, clusters in suggestion["cluster"].items():
        assert drops[("cluster", layer, clusters)] <= 0.01
    assert "expected before fine-tuning" in suggestion.describe(wb.metric).lower()


def test_results_are_cached_and_a_stop_keeps_what_was_measured(demo, monkeypatch):
    model, data = demo
    wb = cw.Workbench(model, data)
    calls = []
    original = sens.Evaluator.__call__
    monkeypatch.setattr(sens.Evaluator, "__call__",
                        lambda self: calls.append(1) or original(self))

    def stop_after_three(report):
        if report.batch == 3:
            report.stop()

    before = wb.variants
    partial = wb.sensitivity(("prune",), samples=200, progress=stop_after_three)
    assert not partial.complete and len(partial.rows) == 3
    assert wb.variants == before  # no variant added
    assert "incomplete" in partial.plot().get_title()
    calls.clear()
    whole = wb.sensitivity(("prune",), samples=200)
    assert whole.complete and len(whole.rows) == 15
    assert len(calls) == 1 + 12  # the baseline, and only what was not measured yet
    assert whole.rows[:3] == partial.rows


def test_the_heatmap_shows_every_layer_and_level(wb):
    s = wb.sensitivity(("prune", "cluster"), {"prune": (0.5, 0.9), "cluster": (8,)}, samples=100)
    ax = s.plot(Figure().subplots())
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "conv2d", "conv2d_1", "conv2d_2", "dense", "dense_1"]
    assert len(ax.get_xticklabels()) == 3
    assert len(ax.texts) == 15


def test_per_layer_targets_are_reached_layer_by_layer(wb):
    p = wb.prune({"conv2d_1": 0.9, "dense": 0.5}, epochs=1)
    got = {r["layer"]: r["sparsity"] for r in p.layers}
    assert got["conv2d_1"] == pytest.approx(0.9, abs=0.005)
    assert got["dense"] == pytest.approx(0.5, abs=0.005)
    assert got["conv2d_2"] == 0.0  # not named: untouched
    assert p.recipe["target_sparsity"] == {"conv2d_1": 0.9, "dense": 0.5}
    c = wb.cluster({"conv2d_1": 16, "dense": 4}, epochs=0, base=p, preserve_sparsity=True)
    distinct = {r["layer"]: r["distinct"] for r in c.layers}
    assert distinct["conv2d_1"] <= 17 and distinct["dense"] <= 5
    assert distinct["conv2d_2"] > 1000
    assert c.recipe["clusters"] == {"conv2d_1": 16, "dense": 4}


def _op_types(blob: bytes) -> dict[str, set[str]]:
    return op_input_types(blob, ("CONV_2D", "FULLY_CONNECTED"))


def test_keep_float_layers_are_float_in_the_tflite(wb):
    q = wb.quantize("int8", keep_float=["conv2d", "dense_1"])
    types = _op_types(q.tflite)
    assert len(types) == 5
    for tensor, dtypes in types.items():
        kept = "/conv2d/" in tensor or "/dense_1/" in tensor
        assert dtypes == ({"float32"} if kept else {"int8", "int32"}), tensor
    assert q.recipe["keep_float"] == ["conv2d", "dense_1"]
    assert q.accuracy == pytest.approx(wb.original.accuracy, abs=0.02)
    errors = {e.layer for e in q.layer_errors}
    assert "conv2d_1" in errors and "conv2d" not in errors  # float ops have no int8 error


def test_layer_errors_of_an_int8_model(wb):
    q = wb.quantize("int8")
    errors = {e.layer: e for e in q.layer_errors if e.op in ("CONV_2D", "FULLY_CONNECTED")}
    assert set(errors) == {"conv2d", "conv2d_1", "conv2d_2", "dense", "dense_1"}
    for e in errors.values():  # the demo's ranges fit: close to rounding alone
        assert 0.15 < e.rmse_scale < 0.6 and e.max_abs_error > 0 and e.scale > 0
    s = wb.sensitivity(("int8",), samples=None)
    assert s.int8_metric == pytest.approx(q.accuracy, abs=1e-9)
    assert s.suggest(0.01)["keep_float"] == []  # nothing to rescue here


def test_typical_steps_is_the_median_nonzero_value_in_steps():
    from compresswidgets._converter import typical_steps

    relu = np.array([0.0, 0.0, 1.0, 2.0, 3.0, 1e-9])  # zeros and float noise do not count
    assert typical_steps(relu, None, 0.5, -128) == pytest.approx(4.0)
    assert typical_steps(np.zeros(4), None, 0.1, 0) == float("inf")
    outlier = np.r_[np.full(31, 1.0), 1000.0]  # one unit stretches the range
    scale = 1000.0 / 255
    assert typical_steps(outlier, None, scale, -128) == pytest.approx(1.0 / scale)
    assert typical_steps(outlier, None, scale, -128) < tfl.TYPICAL_STEPS_LIMIT


def test_an_activation_outlier_is_found_and_keeping_its_layers_float_rescues_int8(demo):
    """The same function with one unit of dense 1000x larger (and dense_1's weights of it
    1000x smaller): float accuracy unchanged, full-integer int8 collapses; the debugger's
    rmse/scale alone looks ideal on dense (its error is small against its huge step), the
    typical step finds it; the suggestion keeps it float and int8 is back."""
    model, data = demo
    fragile = with_activation_outlier(model, "dense", "dense_1")
    assert np.allclose(fragile.predict(data.x_test[:64], verbose=0),
                       model.predict(data.x_test[:64], verbose=0), atol=1e-5)
    wb = cw.Workbench(fragile, data)
    q = wb.quantize("int8")
    assert q.accuracy < 0.5 < wb.original.accuracy
    errors = {e.layer: e for e in q.layer_errors if e.layer}
    dense = errors["dense"]
    assert dense.rmse_scale < 1 and dense.typical_steps < tfl.TYPICAL_STEPS_LIMIT
    assert "rounds to zero" in dense.misfit
    assert all(not errors[n].misfit for n in ("conv2d", "conv2d_1", "conv2d_2"))
    s = wb.sensitivity(("int8",), samples=None)
    assert s.int8_metric == pytest.approx(q.accuracy, abs=1e-9)
    keep = s.suggest(0.01)["keep_float"]
    assert "dense" in keep and not {"conv2d", "conv2d_1", "conv2d_2"} & set(keep)
    rescued = wb.quantize("int8", keep_float=keep)
    assert rescued.accuracy >= wb.original.accuracy - 0.01
    for tensor, dtypes in _op_types(rescued.tflite).items():
        kept = any(f"/{n}/" in tensor for n in keep)
        assert dtypes == ({"float32"} if kept else {"int8", "int32"}), tensor
    assert fragile.get_layer("dense").get_weights()[0][0, 0] == pytest.approx(
        model.get_layer("dense").get_weights()[0][0, 0] * 1000)  # the user's copy untouched


def test_a_layer_owns_its_suffixed_scope_only_when_no_layer_has_that_name():
    """Keras 3 suffixes every scope of a model traced before in the same process
    (conv2d_4_1 for conv2d_4); conv2d_1 stays the layer conv2d_1's, not conv2d's."""
    from compresswidgets._converter import owns

    layers = ["conv2d", "conv2d_1", "conv2d_4"]
    assert owns("m_1/conv2d_4_1/Relu;m_1/conv2d_4_1/BiasAdd", "conv2d_4", layers)
    assert not owns("m/conv2d_1/Relu", "conv2d", layers)
    assert owns("m/conv2d_1/Relu", "conv2d_1", layers)
    assert not owns("m_1/conv2d_4_1/Relu", "conv2d_4")  # without the layers: exact only
