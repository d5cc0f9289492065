"""The Sensitivity panel without a browser: measure, stop, suggest, apply, bad input."""

from __future__ import annotations

import pytest
import traitlets

import compresswidgets as cw


@pytest.fixture
def panel(demo):
    model, data = demo
    return cw.SensitivityPanel(cw.Workbench(model, data), int8=False, samples=200)


def test_measure_then_apply_the_suggestion(panel):
    panel.cluster_levels = "16, 8"
    panel.run()
    panel.wait(300)
    assert panel.result is not None and panel.result.complete, panel._error.value
    assert panel._heatmap.widget.value  # the heatmap was drawn
    assert "dense_1" in panel._table.value and "Most sensitive first" in panel._table.value
    assert panel.suggestion is not None and not panel._apply.disabled
    assert "Expected before fine-tuning" in panel._suggested.value
    before = len(panel.workbench)
    panel.max_drop = 0.02  # the suggestion follows the budget at once
    assert panel.suggestion.max_drop == 0.02
    panel.epochs = 0
    panel.apply_suggestion()
    panel.wait(300)
    assert panel._error.value == "", panel._error.value
    made = panel.workbench[panel.made]
    assert len(panel.workbench) == before + 2  # prune, then cluster on it
    assert made.technique == "cluster" and made.parent.technique == "prune"
    assert "gzipped: got" in panel._result.value and "expected" in panel._result.value


def test_a_stop_keeps_the_rows_so_far(panel, monkeypatch):
    original = panel._report

    def stop_soon(report):
        if report.batch >= 2:
            panel._job.stop_requested.set()
        original(report)

    monkeypatch.setattr(panel, "_report", stop_soon)
    before = panel.workbench.variants
    panel.run()
    panel.wait(300)
    assert panel.result is not None and not panel.result.complete
    assert len(panel.result.rows) == 2
    assert "incomplete" in panel._status.value
    assert panel.workbench.variants == before
    assert not panel._run_button.disabled  # usable again


def test_bad_input_lands_in_the_panel(panel):
    panel.prune_levels = "0.5, lots"
    panel.run()
    assert "not a list of numbers" in panel._error.value and "0.5, 0.8, 0.9" in panel._error.value
    panel.prune_levels = "0.5, 1.5"
    panel.run()
    panel.wait(60)
    assert "got 1.5" in panel._error.value
    panel.prune = panel.cluster = False
    panel.run()
    assert "No technique is ticked" in panel._error.value
    with pytest.raises(traitlets.TraitError, match="max_drop"):
        panel.max_drop = -1
    with pytest.raises(traitlets.TraitError, match="not a variant it can measure"):
        panel.base = "nope"
    panel.apply_suggestion()
    assert "Measure first" in panel._error.value


def test_the_studio_has_a_sensitivity_tab(demo):
    model, data = demo
    studio = cw.Studio(model, data)
    assert studio.tabs.titles[1] == "Sensitivity"
    assert studio.sensitivity in studio.panels
    studio.prune.running = True  # another tab runs: this one may not start
    assert studio.sensitivity.blocked and studio.sensitivity._run_button.disabled
    studio.prune.running = False
    assert not studio.sensitivity.blocked
