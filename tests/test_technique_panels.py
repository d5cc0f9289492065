"""ClusteringPanel and QuantizationPanel without a browser: set controls, click, wait."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import HOSTILE, table_rows, weights_bytes, with_activation_outlier

import compresswidgets as cw

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

PNG = b"\x89PNG"


@pytest.fixture(scope="module")
def wb(demo):
    """One Workbench for the module, with a one-shot 50 % pruned variant to chain from."""
    bench = cw.Workbench(*demo)
    bench.prune(0.5, epochs=0, name="pruned")
    return bench


def after_histogram(fig):
    """Counts of the coloured (second) histogram of a panel figure."""
    return fig.figure.axes[0].patches[-1].get_data().values


def test_cluster_preview_follows_the_slider(wb):
    panel = cw.ClusteringPanel(wb)
    assert (panel.clusters, panel.init, panel.preserve_sparsity, panel.epochs) == (
        16, "kmeans++", False, 1)
    assert "cw-clustering-panel" in panel._dom_classes
    kernel = wb.original.kernel(panel.preview_layer)
    counts = after_histogram(panel._preview_fig)
    assert counts.sum() == kernel.size and np.count_nonzero(counts) <= 16
    before = bytes(panel._preview_fig.widget.value)
    panel._clusters.value = 4
    counts = after_histogram(panel._preview_fig)
    assert np.count_nonzero(counts) <= 4 and counts.sum() == kernel.size
    assert bytes(panel._preview_fig.widget.value) != before
    assert "4 clusters" in panel._preview_fig.figure.axes[0].get_title()


def test_cluster_each_layer_with_its_own_clusters(wb):
    panel = cw.ClusteringPanel(wb)
    sliders = {c.layer_name: c for c in panel._targets.children}
    ticked = [b.layer_name for b in panel._layers.children if b.value]
    assert {sliders[n].value for n in ticked} == {16}
    sliders["dense"].value = 4
    panel.epochs = 0
    panel._apply.click()
    panel.wait(300)
    assert panel._error.value == "", panel._error.value
    v = panel.result
    expected = {n: 4 if n == "dense" else 16 for n in ticked}
    assert v.recipe["clusters"] == expected
    for r in v.layers:
        if r["layer"] in expected:
            assert r["distinct"] <= expected[r["layer"]], r


def test_cluster_on_a_pruned_base_keeps_zeros(wb, demo):
    model, _ = demo
    live = weights_bytes(model)
    panel = cw.ClusteringPanel(wb)
    panel._base.value = "pruned"
    assert panel.preserve_sparsity  # a pruned base: zeros kept by default
    kernel = wb["pruned"].kernel(panel.preview_layer)
    counts = after_histogram(panel._preview_fig)
    assert counts.sum() == np.count_nonzero(kernel)
    assert np.count_nonzero(counts) <= 15  # 16 clusters, zero one of them (as tfmot does)
    panel._clusters.value = 8
    panel._epochs.value = 0
    assert "no fine-tuning" in panel._preview_fig.figure.axes[0].get_title()
    panel._apply.click()
    panel.wait(300)
    assert panel._error.value == ""
    variant = panel.result
    assert variant is wb.variants[-1] and variant.parent is wb["pruned"]
    assert variant.recipe["preserve_sparsity"] and variant.recipe["clusters"] == 8
    rows = {row[0]: row for row in table_rows(panel._result.value)}
    for layer in variant.recipe["layers"]:
        assert int(rows[layer][4].replace(",", "")) <= 8  # distinct: 8 clusters, zero included
        assert float(rows[layer][3].rstrip("%")) >= 49.0  # sparsity kept
    assert "cluster_weights" in panel._code.value and "preserve_sparsity=True" in panel._code.value
    assert panel.made == variant.name
    assert weights_bytes(model) == live


def test_cluster_errors_show_in_the_panel(wb):
    panel = cw.ClusteringPanel(wb)
    before = wb.variants
    for box in panel._layers.children:
        box.value = False
    panel._apply.click()
    panel.wait(60)
    assert "cw-error" in panel._error.value and "No layer is ticked under" in panel._error.value
    assert wb.variants == before and not panel.running and not panel._apply.disabled


def test_quantization_controls_follow_the_mode(wb):
    panel = cw.QuantizationPanel(wb)
    assert panel.mode == "dynamic" and panel._samples.disabled and panel._epochs.disabled
    legend = panel._preview_fig.figure.axes[0].get_legend().get_texts()[1].get_text()
    assert legend.startswith("int8 per channel") and "SNR" in legend
    panel._mode.value = "int8"
    assert not panel._samples.disabled and panel._epochs.disabled
    panel._mode.value = "qat"
    assert panel._samples.disabled and not panel._epochs.disabled
    panel._mode.value = "float16"
    legend = panel._preview_fig.figure.axes[0].get_legend().get_texts()[1].get_text()
    assert legend.startswith("float16")
    # the preview's error is the real rounding error of the layer
    kernel = wb.original.kernel(panel.preview_layer)
    error = np.max(np.abs(kernel.astype(np.float16).astype(np.float32) - kernel))
    assert f"{error:.2e}" in legend


def test_quantize_shows_error_per_layer(wb, demo):
    model, _ = demo
    live = weights_bytes(model)
    panel = cw.QuantizationPanel(wb)
    panel._mode.value = "dynamic"
    panel._apply.click()
    assert panel._stop_button.disabled  # a conversion cannot be stopped halfway
    panel.wait(300)
    variant = panel.result
    assert panel._error.value == "" and variant.is_quantized and variant.recipe["mode"] == "dynamic"
    header, *rows = table_rows(panel._result.value)[5:]
    assert header[5:] == ["TFLite dtype", "max |error|", "SNR dB"]
    for row in rows:  # the converter leaves kernels under 1,024 weights in float32
        big = int(row[2].replace(",", "")) >= 1024
        assert row[5] == ("int8" if big else "float32"), row
        assert float(row[7]) > 20 if big else row[7] == "inf"  # int8 weights keep > 20 dB
    # the result plot is the real dequantized TFLite kernel against the float one
    after = after_histogram(panel._result_fig)
    assert after.sum() == variant.kernel(panel.preview_layer).size
    assert "TFLiteConverter" in panel._code.value
    assert variant.name not in panel._base.options  # quantize last
    assert weights_bytes(model) == live


def test_hostile_variant_names_are_escaped(wb):
    wb.prune(0.3, epochs=0, name=HOSTILE)
    panel = cw.QuantizationPanel(wb)
    assert HOSTILE in panel._base.options  # a Dropdown shows text, not HTML
    panel._base.value = HOSTILE
    panel._mode.value = "float16"
    panel._apply.click()
    panel.wait(300)
    assert panel._error.value == ""
    assert "<img" not in panel._result.value and "&lt;img" in panel._result.value
    assert "<img" not in panel._status.value and "<img" not in panel._code.value
    static = panel._repr_mimebundle_()["text/html"]
    assert "<img src=x" not in static and "&lt;img" in static


def test_layer_names_are_escaped(keras, demo):
    # tf_keras refuses '<' in layer names; '>' is allowed and must not reach the HTML raw
    _, data = demo
    flat = [np.asarray(a).reshape(len(a), -1) if np.ndim(a) > 1 else a for a in data]
    model = keras.Sequential([keras.layers.Input((64,)),
                              keras.layers.Dense(8, activation="relu", name="x>tiny"),
                              keras.layers.Dense(256, activation="relu", name="big"),
                              keras.layers.Dense(10, activation="softmax", name="out")])
    wb = cw.Workbench(model, tuple(flat))
    for panel_class in (cw.PruningPanel, cw.ClusteringPanel):
        panel = panel_class(wb)
        assert "x&gt;tiny" in panel._layers_note.value and "x>tiny" not in (
            panel._layers_note.value)
        panel.preview_layer = "x>tiny"
        assert panel._error.value == ""
        assert "x>tiny" in panel._preview_fig.figure.axes[0].get_title()  # drawn as text


def test_qat_leaves_out_what_tfmot_cannot_quantize(keras, demo):
    _, data = demo
    flat = [np.asarray(a).reshape(len(a), -1) if np.ndim(a) > 1 else a for a in data]
    model = keras.Sequential([keras.layers.Input((64,)),
                              keras.layers.Dense(32, activation="relu", name="dense"),
                              keras.layers.LayerNormalization(name="layer_normalization"),
                              keras.layers.Dense(10, activation="softmax", name="dense_1")])
    wb = cw.Workbench(model, tuple(flat))
    panel = cw.QuantizationPanel(wb)
    assert panel._checklist.layout.display == "none"  # the checklist is for QAT only
    panel._mode.value = "qat"
    assert panel._checklist.layout.display is None and panel._epochs.min == 1
    ticked = {b.layer_name: b.value for b in panel._layers.children}
    assert ticked == {"dense": True, "layer_normalization": False, "dense_1": True}
    assert "layer_normalization" in panel._layers_note.value
    panel._apply.click()
    panel.wait(300)
    assert panel._error.value == "", panel._error.value
    assert panel.result.recipe["layers"] == ["dense", "dense_1"]
    rows = {row[0]: row for row in table_rows(panel._result.value)}
    assert rows["dense"][5] == "int8" and float(rows["dense"][7]) > 20
    # ticking the unsupported layer gives the engine's error, in the panel
    for box in panel._layers.children:
        box.value = True
    panel._apply.click()
    panel.wait(300)
    assert "cw-error" in panel._error.value and "LayerNormalization" in panel._error.value


def test_int8_shows_activation_errors_and_unticked_layers_stay_float(demo):
    """Full integer on a model with an activation outlier in dense: the table and the bar
    plot show which ops do not fit int8; unticking them keeps them float and int8 works."""
    model, data = demo
    wb = cw.Workbench(with_activation_outlier(model, "dense", "dense_1"), data)
    panel = cw.QuantizationPanel(wb)
    panel._mode.value = "int8"
    assert panel._checklist.layout.display is None and "keep_float" in (
        panel._checklist.children[0].value)
    assert all(b.value for b in panel._layers.children)  # every layer int8 by default
    panel._apply.click()
    panel.wait(300)
    assert panel._error.value == "", panel._error.value
    collapsed = panel.result
    assert "keep_float" not in collapsed.recipe and collapsed.accuracy < 0.5
    header, *rows = table_rows(panel._result.value)[5:]
    assert header[-2:] == ["act. rmse/scale", "typical steps"]
    cells = {row[0]: row for row in rows}
    assert cells["dense"][-2].startswith("⚠") and float(cells["dense"][-1]) < 0.5
    assert not cells["conv2d_1"][-2].startswith("⚠")
    assert "do not fit int8" in panel._result.value and "dense" in panel._result.value
    assert panel._errors_fig.widget.layout.display is None
    assert bytes(panel._errors_fig.widget.value).startswith(PNG)
    bars = panel._errors_fig.figure.axes[0].patches
    red = {tick.get_text() for tick, bar in zip(panel._errors_fig.figure.axes[0]
                                                .get_xticklabels(), bars, strict=True)
           if bar.get_facecolor()[0] > 0.6 and bar.get_facecolor()[2] < 0.3}
    assert "dense" in red and "conv2d_1" not in red
    keep = {e.layer for e in collapsed.layer_errors if e.misfit and e.layer}
    for box in panel._layers.children:
        box.value = box.layer_name not in keep
    panel._apply.click()
    panel.wait(300)
    assert panel._error.value == "", panel._error.value
    rescued = panel.result
    assert sorted(rescued.recipe["keep_float"]) == sorted(keep)
    assert rescued.accuracy >= wb.original.accuracy - 0.01
    rows = {row[0]: row for row in table_rows(panel._result.value)[6:]}
    for layer in keep:
        assert rows[layer][5] == "float32", rows[layer]
    assert rows["conv2d_1"][5] == "int8"
    assert "keep_float" in panel._code.value
    panel._mode.value = "qat"  # the ticks are the mode's own default again
    assert "fake quantization (QAT)" in panel._checklist.children[0].value
    assert all(b.value for b in panel._layers.children)
