"""WeightInspector without a browser: set traits, click buttons, look at what it draws."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import HOSTILE, weights_bytes

import compresswidgets as cw
from compresswidgets.widgets import inspector as inspector_module

PNG = b"\x89PNG"


def hist_axes(panel):
    return panel._hist_fig.figure.axes[0]


def stairs_values(panel):
    (patch,) = hist_axes(panel).patches
    return patch.get_data().values


@pytest.fixture
def panel(demo):
    return cw.WeightInspector(demo[0])


def test_initial_view(panel, demo):
    model, _ = demo
    assert panel.selected.key == "conv2d/kernel"  # first kernel, not a bias
    assert panel._picker.options[0][0].startswith("conv2d/kernel")
    assert len(panel._picker.options) == len(model.weights)
    assert bytes(panel._hist_fig.widget.value).startswith(PNG)
    assert bytes(panel._overview_fig.widget.value).startswith(PNG)
    assert "32,810 parameters" in panel._header.value
    assert "conv2d/kernel" in hist_axes(panel).get_title()
    overview = panel._overview_fig.figure.axes[0]
    assert len(overview.patches) == 5  # one bar per layer with weights
    assert "cw-weight-inspector" in panel._dom_classes


def test_changing_the_tensor_redraws(panel):
    before = bytes(panel._hist_fig.widget.value)
    target = panel.report.find("dense", "kernel").index
    panel._picker.value = target  # what the dropdown does in the browser
    assert panel.layer == target and panel.selected.key == "dense/kernel"
    assert bytes(panel._hist_fig.widget.value) != before
    assert "dense/kernel" in hist_axes(panel).get_title()
    assert "4,096" in panel._stats.value  # 128 x 32 parameters
    chan = panel._channel_fig.figure.axes[0]
    assert "32 channels" in chan.get_title()


def test_bins_log_and_zero_exclusion(panel, demo):
    model, _ = demo
    panel.bins = 16
    values = stairs_values(panel)
    kernel = model.layers[0].kernel.numpy()
    np.testing.assert_array_equal(values, np.histogram(kernel, bins=16)[0])
    assert panel._bins.value == 16
    panel._log.value = True
    assert panel.log_scale and hist_axes(panel).get_yscale() == "log"
    panel.exclude_zeros = True
    assert panel.current_histogram().total == np.count_nonzero(kernel)
    assert "zeros excluded" in hist_axes(panel).get_xlabel()


def test_reread_after_the_model_changed(keras):
    model = keras.Sequential([keras.layers.Dense(8, input_shape=(4,), name="d"),
                              keras.layers.Dense(2, name="e")])
    panel = cw.WeightInspector(model)
    panel.layer = panel.report.find("e", "kernel").index
    model.get_layer("e").kernel.assign(np.zeros((8, 2), np.float32))
    assert "0.00% (0 zeros)" in panel._stats.value  # still the old snapshot
    panel._reread.click()
    assert panel.selected.key == "e/kernel"  # selection kept
    assert "100.00% (16 zeros)" in panel._stats.value


def test_errors_on_reread_show_inside_the_panel(panel, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError(f"Model {HOSTILE!r} has no weights; add layers")

    monkeypatch.setattr(inspector_module, "inspect_weights", broken)
    before = panel.report
    panel._reread.click()
    assert "cw-error" in panel._error.value and "ValueError" in panel._error.value
    assert "&lt;img src=x onerror=alert(1)&gt;" in panel._error.value
    assert "<img src=x" not in panel._error.value
    assert panel.report is before  # nothing lost


def _hostile_tf_keras_model(keras):
    model = keras.Sequential([keras.layers.Dense(3, input_shape=(2,), name="ok"),
                              keras.layers.Dense(2, name="bad")])
    model.get_layer("bad")._name = HOSTILE  # tf_keras refuses such names at build time
    model._name = HOSTILE + "$x^2$"
    return model


def test_hostile_layer_names_are_escaped(keras):
    model = _hostile_tf_keras_model(keras)
    panel = cw.WeightInspector(model)
    panel.layer = panel.report.find(HOSTILE, "kernel").index
    html_parts = [panel._header.value, panel._stats.value, panel._error.value,
                  panel._repr_mimebundle_()["text/html"]]
    for part in html_parts:
        assert "<img src=x" not in part
    assert "&lt;img src=x onerror=alert(1)&gt;" in panel._stats.value
    assert "&lt;img src=x onerror=alert(1)&gt;" in panel._header.value
    # a dropdown shows option labels as text, so they keep the name as it is
    assert any(label.startswith(HOSTILE) for label, _ in panel._picker.options)
    # matplotlib would treat $...$ as mathtext; titles are drawn, not parsed
    assert HOSTILE in hist_axes(panel).get_title()


def test_keras3_model_with_hostile_name():
    import keras as keras3

    model = keras3.Sequential([keras3.Input((4,)), keras3.layers.Dense(3, name=HOSTILE + "$")])
    panel = cw.WeightInspector(model)
    assert panel.report.keras == "keras3"
    assert "&lt;img" in panel._stats.value and "<img src=x" not in panel._stats.value


def test_static_fallback_for_non_widget_frontends(panel):
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    html = bundle["text/html"]
    assert html.count("data:image/png;base64,") == 3
    assert "conv2d" in html and "distinct values" in html


def test_the_model_is_untouched(demo):
    model, _ = demo
    before = weights_bytes(model)
    panel = cw.WeightInspector(model)
    for i in range(len(panel.report.tensors)):
        panel.layer = i
    panel.bins, panel.exclude_zeros, panel.log_scale = 8, True, True
    panel.refresh()
    assert weights_bytes(model) == before


@pytest.mark.parametrize("thing", [None, "model.keras", np.ones(3)])
def test_bad_input_raises_clear_errors(thing):
    with pytest.raises(TypeError, match="expects a Keras model"):
        cw.WeightInspector(thing)


def test_unbuilt_model_raises(keras):
    with pytest.raises(ValueError, match=r"model.build\(input_shape\)"):
        cw.WeightInspector(keras.Sequential([keras.layers.Dense(2)]))
