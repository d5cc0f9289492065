"""Every technique on the model families people bring (tests/zoo/families.py).

Per family: inspection, the original converted, post-training modes, pruning, clustering,
QAT where tfmot supports the family (else its specific error), a benchmark row and a panel
Apply. What should work is asserted by its numbers; what cannot work by its message; and
the user's model is byte-identical at the end.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from _helpers import op_input_types, table_rows, weights_bytes
from families import FAMILIES, ZooModel

import compresswidgets as cw
from compresswidgets import _keras
from compresswidgets._converter import owns
from compresswidgets.techniques import pruning
from compresswidgets.techniques._common import kernel_of


@pytest.fixture(scope="module", params=list(FAMILIES))
def zoo(request) -> tuple[ZooModel, cw.Workbench, list[bytes]]:
    # seeded: the same weights every run, so a test that picks an op by its measured error
    # (the worst int8 op, kept float) picks the same one every time
    _keras.keras().utils.set_random_seed(20261202)
    z = FAMILIES[request.param]()
    before = weights_bytes(z.model)
    wb = cw.Workbench(z.model, z.data, **z.workbench_kwargs())
    return z, wb, before


def close(a: float, b: float, metric, samples: int) -> bool:
    """Within 1 point or one test sample, whichever is more, for a fraction (accuracy, IoU:
    float16 rounding may flip one near-tie of a barely trained model), within 1 %
    otherwise (MAE)."""
    if metric.fraction:
        return abs(a - b) <= max(0.01, 1 / samples) + 1e-9
    return abs(a - b) <= (0.01 if abs(b) <= 1 else 0.01 * abs(b))


def test_inspection_reads_every_weight(zoo):
    z, _, _ = zoo
    report = cw.inspect_weights(z.model)
    assert sum(t.params for t in report.tensors) == z.model.count_params()


def test_the_original_converts_and_float16_agrees_with_keras(zoo):
    z, wb, _ = zoo
    assert wb.original.size_bytes > 0
    keras_metric = wb.original.keras_accuracy
    samples = len(z.data[2])
    assert close(wb.original.tflite_accuracy, keras_metric, wb.metric, samples)
    f16 = wb.quantize("float16")
    assert f16.size_bytes < wb.original.size_bytes
    assert close(f16.accuracy, keras_metric, wb.metric, samples), (f16.accuracy, keras_metric)
    if any(type(layer).__name__ in ("LSTM", "GRU", "Bidirectional") for layer in z.model.layers):
        assert f16.tflite_batch == 1 and any("fixed batch of 1" in n for n in f16.notes)
    else:
        assert f16.tflite_batch is None


@pytest.mark.parametrize("mode", ["dynamic", "int8", "int8-only"])
def test_post_training_modes(zoo, mode):
    z, wb, _ = zoo
    if mode in z.refuses:
        with pytest.raises(cw.ConversionError, match=z.refuses[mode]):
            wb.quantize(mode, representative_samples=32)
        return
    v = wb.quantize(mode, representative_samples=32)
    # dynamic range leaves kernels under 1,024 weights float: tiny RNNs do not shrink
    assert v.size_bytes <= wb.original.size_bytes if mode == "dynamic" else (
        v.size_bytes < wb.original.size_bytes)
    assert math.isfinite(v.accuracy)
    if mode == "int8-only":
        assert str(cw.tflite.input_dtype(v.tflite)) == "int8"
    # evaluation ran with the user's metric, on dequantized outputs
    assert wb.metric.name in (wb.compare([v])[0]["metric_name"],)


def test_pruning_reaches_the_target_on_what_it_prunes(zoo):
    z, wb, _ = zoo
    p = wb.prune(target_sparsity=0.5, epochs=1)
    assert p.recipe["layers"], "something was pruned"
    for name in p.recipe["layers"]:
        kernel = kernel_of(p.keras_model.get_layer(name)).numpy()
        assert abs(float(np.mean(kernel == 0)) - 0.5) <= 0.02, name
    # what tfmot cannot prune is named (or counted, in a long list), not silently skipped
    unprunable = [layer.name for layer in z.model.layers
                  if type(layer).__name__ in ("DepthwiseConv2D", "ChannelScale")]
    if unprunable:
        note = next((n for n in p.notes if n.startswith("Not prunable")), "")
        named = [name for name in unprunable if f"{name} (" in note]
        more = re.search(r" and (\d+) more\.$", note)
        assert named and len(unprunable) - len(named) <= (int(more.group(1)) if more else 0), note
    assert math.isfinite(p.accuracy)
    assert p.gzipped_bytes < wb.original.gzipped_bytes


def test_clustering_leaves_at_most_the_clusters(zoo):
    _, wb, _ = zoo
    c = wb.cluster(clusters=8, epochs=0)
    assert c.recipe["layers"]
    for name in c.recipe["layers"]:
        kernel = kernel_of(c.keras_model.get_layer(name)).numpy()
        assert np.unique(kernel).size <= 8, name
    assert math.isfinite(c.accuracy)


def test_a_sweep_runs_on_the_family(zoo):
    """A one-candidate sweep with a post-training step: in a worker process, or in the
    kernel for a model that cannot travel (custom layers), with the same numbers as the
    variants it adds."""
    z, wb, _ = zoo
    result = wb.sweep(prune=[0.5], epochs=1, then="float16", max_workers=1)
    assert [r["error"] for r in result.rows] == [None, None], result.rows
    custom = any(not type(layer).__module__.startswith(("tf_keras.", "compresswidgets."))
                 for layer in wb.original.keras_model.layers)
    assert result.executor == ("kernel" if custom else "local")
    pruned, f16 = result.variants
    for name in pruned.recipe["layers"]:
        kernel = kernel_of(pruned.keras_model.get_layer(name)).numpy()
        assert abs(float(np.mean(kernel == 0)) - 0.5) <= 0.02, name
    assert f16.parent is pruned and f16.size_bytes < pruned.size_bytes
    assert close(f16.accuracy, pruned.keras_accuracy, wb.metric, len(z.data[2]))
    assert result.rows[1]["metric"] == f16.accuracy


def test_sensitivity_measures_every_layer_it_can_touch(zoo):
    z, wb, _ = zoo
    before = wb.variants
    s = wb.sensitivity(levels={"prune": (0.8,), "cluster": (8,)}, samples=32)
    assert s.complete and wb.variants == before
    twin = wb.original.keras_model  # a Keras 3 model's twin; names as the user wrote them
    prunable = {wb.user_name(layer.name) for layer in twin.layers
                if layer.weights and pruning.supports(layer)}
    measured = {r["layer"] for r in s.rows if r["technique"] == "prune"}
    assert prunable <= measured, prunable - measured
    assert all(math.isfinite(r["metric"]) for r in s.rows)
    if "int8" in z.refuses:  # the converter cannot calibrate it: said, not hidden
        assert any("No activation errors" in n for n in s.notes)
    else:
        assert s.layer_errors and s.int8_metric is not None
        # the op with the largest activation error, kept float: float in the .tflite
        worst = max((e for e in s.layer_errors if e.layer), key=lambda e: e.rmse_scale)
        kept = wb.quantize("int8", keep_float=[worst.layer])
        types = op_input_types(kept.tflite)
        spelled = wb.bridge.safe_name(worst.layer) if wb.bridge else worst.layer
        names = [layer.name for layer in wb.original.export_model.layers]
        mine = [t for t in types if owns(t, spelled, names)]
        assert mine and all("int8" not in types[t] for t in mine), (worst, types)
        assert any("int8" in d for d in types.values())  # the rest is int8
        assert worst.layer not in {e.layer for e in kept.layer_errors}
    suggestion = s.suggest(max_drop=0.05)
    assert set(suggestion) == {"prune", "cluster", "keep_float"}
    assert set(suggestion["prune"]) <= measured


def test_qat_or_its_specific_error(zoo):
    z, wb, _ = zoo
    if "qat" in z.refuses:
        count = len(wb.variants)
        with pytest.raises(ValueError, match=z.refuses["qat"]):
            wb.quantize("qat", epochs=1)
        assert len(wb.variants) == count
        return
    q = wb.quantize("qat", epochs=1)
    assert math.isfinite(q.accuracy) and q.size_bytes > 0
    if z.qat_float:  # skipped, named, and the rest quantized
        for name in z.qat_float:
            assert any(name in n for n in q.notes), (name, q.notes)
            assert q.recipe["layers"] and name not in q.recipe["layers"]
        if z.family == "custom_layers":
            assert any("channel_scale" in n and "halve" in n for n in q.notes), q.notes
    else:  # the whole model, BatchNorm and depthwise convs included, as quantize_model does
        assert q.recipe["layers"] is None and q.notes == ()
        assert q.size_bytes < wb.original.size_bytes


def test_benchmark_measures_the_family(zoo):
    _, wb, _ = zoo
    row = wb.benchmark([wb.original], runs=3, warmup=1, timeout=300).rows[0]
    assert row.ok, row.error
    assert row.median_ms > 0 and row.accuracy == pytest.approx(wb.original.accuracy)


def test_a_panel_applies_on_the_family(zoo):
    _, wb, _ = zoo
    panel = cw.PruningPanel(wb)
    panel.epochs = 0
    panel.target_sparsity = 0.3
    assert panel.selected_layers  # the engine's default selection is ticked
    panel.apply()
    panel.wait(300)
    assert panel._error.value == "", panel._error.value
    assert panel.result is not None and panel.result.recipe["layers"] == panel.selected_layers
    summary = dict(row[:2] for row in table_rows(panel._result.value) if len(row) >= 2)
    shown = summary[wb.metric.name]  # e.g. "96.88% (-1.04% vs original, higher is better)"
    assert ("%" in shown.split(" (")[0]) == wb.metric.fraction, shown
    assert ("lower is better" in shown) == (not wb.metric.greater_is_better), shown


def test_the_users_model_is_untouched(zoo):
    z, _, before = zoo
    assert weights_bytes(z.model) == before


def test_the_code_of_a_fixed_batch_variant_converts(zoo, tmp_path, monkeypatch):
    z, wb, _ = zoo
    if z.family != "lstm":
        pytest.skip("one recurrent family is enough: the code is the same for all")
    f16 = next(v for v in wb.variants if v.recipe.get("mode") == "float16")
    assert "from_concrete_functions" in f16.code and "TensorSpec([1," in f16.code
    monkeypatch.chdir(tmp_path)  # the code writes model.tflite where it runs
    namespace = {"model": wb.original.keras_model, "x_train": z.data[0]}
    exec(compile(f16.code, "variant_code", "exec"), namespace)
    assert cw.tflite.fixed_batch(namespace["tflite_model"]) == 1
    assert abs(len(namespace["tflite_model"]) - f16.size_bytes) < 0.05 * f16.size_bytes


def test_the_quantization_panel_on_a_fused_lstm(zoo):
    z, wb, _ = zoo
    if z.family != "lstm":
        pytest.skip("the fused LSTM op is the one that splits its kernel by gate")
    panel = cw.QuantizationPanel(wb)
    panel.mode = "int8"
    panel.apply()
    panel.wait(300)
    assert panel._error.value == "", panel._error.value
    rows = {row[0]: row for row in table_rows(panel._result.value)}
    assert rows["head"][5] == "int8" and rows["lstm"][1] == "LSTM"
    assert "fixed batch of 1" in panel._result.value  # the variant's note
    assert panel._result_fig.widget.layout.display is None  # a kernel it could match
