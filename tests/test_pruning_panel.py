"""PruningPanel without a browser: set controls, click, wait for the background run."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import table_rows, weights_bytes

import compresswidgets as cw
from compresswidgets.preview import pruned_count

PNG = b"\x89PNG"


@pytest.fixture
def panel(demo):
    return cw.PruningPanel(cw.Workbench(*demo))


def preview_total(panel):
    ax = panel._preview_fig.figure.axes[0]
    after = ax.patches[-1].get_data().values
    return int(after.sum())


def test_defaults_and_tiny_layers(panel):
    assert panel.base == "original" and panel.target_sparsity == 0.5 and panel.epochs == 2
    ticked = {b.layer_name: b.value for b in panel._layers.children}
    assert ticked == {"conv2d": False, "conv2d_1": True, "conv2d_2": True, "dense": True,
                      "dense_1": False}
    assert "conv2d, dense_1" in panel._layers_note.value
    assert panel.preview_layer == "conv2d_1"  # the biggest layer
    assert bytes(panel._preview_fig.widget.value).startswith(PNG)
    assert "cw-pruning-panel" in panel._dom_classes


def test_moving_the_slider_redraws_the_preview(panel):
    kernel = panel.workbench.original.keras_model.get_layer("conv2d_1").kernel.numpy()
    before = bytes(panel._preview_fig.widget.value)
    assert preview_total(panel) == kernel.size - pruned_count(kernel.size, 0.5)
    panel._sparsity.value = 0.9
    assert bytes(panel._preview_fig.widget.value) != before
    assert preview_total(panel) == kernel.size - pruned_count(kernel.size, 0.9)
    panel._preview.value = "dense"
    assert "dense" in panel._preview_fig.figure.axes[0].get_title()


def test_apply_makes_a_variant_and_shows_it(panel, demo):
    model, _ = demo
    live = weights_bytes(model)
    panel._sparsity.value = 0.6
    panel._epochs.value = 1
    panel._apply.click()
    assert panel.running and panel._apply.disabled and not panel._stop_button.disabled
    panel.wait(300)
    assert not panel.running and not panel._apply.disabled
    variant = panel.result
    assert variant is panel.workbench.variants[-1] and variant.recipe["target_sparsity"] == 0.6
    assert variant.recipe["layers"] == ["conv2d_1", "conv2d_2", "dense"]
    rows = {row[0]: row for row in table_rows(panel._result.value)}
    size = variant.keras_model.get_layer("conv2d_1").kernel.shape.num_elements()
    assert rows["conv2d_1"][1:4] == ["Conv2D", f"{size:,}", "60.0%"]  # class, params, sparsity
    assert rows["conv2d"][3] == "0.0%"  # a tiny layer, left out
    assert rows["accuracy"][1].endswith("vs original)")
    assert "prune_low_magnitude" in panel._code.value
    assert variant.name in panel._base.options  # can be the base of the next step
    ax = panel._result_fig.figure.axes[0]
    before, after = (patch.get_data().values for patch in ax.patches)
    kernel = variant.keras_model.get_layer("conv2d_1").kernel.numpy()
    assert int(after.sum()) == int(np.count_nonzero(kernel))  # the real result, zeros left out
    assert int(before.sum()) == kernel.size
    assert panel._result_fig.widget.layout.display is None  # shown once there is a result
    assert panel._progress.value == 1.0
    assert weights_bytes(model) == live


def test_stop_leaves_the_workbench_as_it_was(panel):
    before = panel.workbench.variants
    panel._epochs.value = 20
    panel._apply.click()
    panel._stop_button.click()
    panel.wait(300)
    assert panel.workbench.variants == before
    assert "stopped" in panel._status.value and panel.result is None
    assert panel._error.value == ""


def test_errors_show_in_the_panel(panel):
    before = panel.workbench.variants
    panel._structure.value = "2:4"
    for box in panel._layers.children:
        box.value = box.layer_name == "conv2d"  # one input channel: cannot be 2:4
    panel._apply.click()
    panel.wait(300)
    assert "cw-error" in panel._error.value and "multiple of 4" in panel._error.value
    assert panel.workbench.variants == before and not panel.running


def test_each_layer_at_its_own_sparsity(panel):
    """The slider beside a layer follows the panel's until moved; then Apply passes a dict,
    and the recipe, the result and the code are per layer."""
    sliders = {c.layer_name: c for c in panel._targets.children}
    boxes = {b.layer_name: b for b in panel._layers.children}
    assert set(sliders) == set(boxes)
    assert sliders["conv2d"].disabled and not sliders["conv2d_1"].disabled  # unticked: off
    panel.target_sparsity = 0.6
    assert {s.value for s in sliders.values()} == {0.6}  # they follow the panel's value
    assert panel.per_layer_values is None  # all alike: the engine gets a number
    sliders["conv2d_1"].value = 0.9
    panel.target_sparsity = 0.7
    assert sliders["conv2d_1"].value == 0.9 and sliders["dense"].value == 0.7  # moved: kept
    assert panel.per_layer_values == {"conv2d_1": 0.9, "conv2d_2": 0.7, "dense": 0.7}
    panel.epochs = 0
    panel._apply.click()
    assert sliders["conv2d_1"].disabled  # locked while it runs
    panel.wait(300)
    assert panel._error.value == "", panel._error.value
    v = panel.result
    assert v.recipe["target_sparsity"] == {"conv2d_1": 0.9, "conv2d_2": 0.7, "dense": 0.7}
    got = {r["layer"]: r["sparsity"] for r in v.layers}
    assert got["conv2d_1"] == pytest.approx(0.9, abs=0.01)
    assert got["dense"] == pytest.approx(0.7, abs=0.01) and got["conv2d"] == 0
    assert not sliders["conv2d_1"].disabled and sliders["conv2d"].disabled
    assert "'conv2d_1': tfmot.sparsity.keras.ConstantSparsity(target_sparsity=0.9" in v.code
    panel.structure = "2:4"  # 50 % everywhere: the per-layer sliders do not apply
    assert all(s.disabled for s in sliders.values()) and panel.per_layer_values is None
