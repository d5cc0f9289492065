"""The Sweep panel without a browser: run with a plot that grows, stop, bad input, the
chosen variant as the base of the Studio's other tabs."""

from __future__ import annotations

import pytest
import traitlets
from _helpers import table_rows

import compresswidgets as cw

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wb(demo):
    model, data = demo
    return cw.Workbench(model, data)


def test_a_run_grows_the_plot_as_candidates_finish(wb, monkeypatch):
    panel = cw.SweepPanel(wb, prune_levels="0.5, 0.8", epochs=1, max_workers=1)
    assert panel._code.value == ("<code>sw = wb.sweep(prune=[0.5, 0.8], epochs=1, "
                                 "then=[&#x27;int8&#x27;], max_workers=1)</code>")
    drawn = []  # (rows on the plot, the sweep still running)
    original = panel._draw_plot

    def spy(result):
        drawn.append((len(result.rows), panel.running))
        original(result)

    monkeypatch.setattr(panel, "_draw_plot", spy)
    states = []
    report = panel._report

    def seen(p):
        report(p)
        states.append(panel._table.value)

    monkeypatch.setattr(panel, "_report", seen)
    panel.run()
    panel.wait(300)
    assert panel._error.value == "", panel._error.value
    assert panel.result is not None and panel.result.complete
    assert drawn[0] == (2, True)  # the first candidate (and its int8), before the end
    assert drawn[-1][0] == 4 and len(drawn) >= 3
    assert any("training: epoch 1/1" in s for s in states)  # per-candidate progress
    assert any("queued" in s for s in states)
    rows = table_rows(panel._table.value)
    assert [r[0] for r in rows[1:]] == ["prune 50%", "prune 50% > int8", "prune 80%",
                                        "prune 80% > int8"]
    assert all(r[1] == "done" for r in rows[1:])
    assert panel._plot.widget.layout.display is None and panel._plot.widget.value
    assert "Pareto front" in panel._summary.value
    assert list(panel._pick.options) == ["prune 50%", "prune 80%"]
    assert "4 variants" in panel._status.value
    assert not panel._run_button.disabled


def test_stop_keeps_the_finished_candidates(wb):
    panel = cw.SweepPanel(wb, prune_levels="0.3, 0.4, 0.6", epochs=2, max_workers=1,
                          then_int8=False)
    before = len(wb.variants)
    original = panel._report

    def stop_after_first(p):
        original(p)
        if p.event == "finished":
            panel.stop()

    panel._report = stop_after_first
    panel.run()
    panel.wait(300)
    assert panel.result is not None and not panel.result.complete
    finished = len(panel.result.rows)
    assert 1 <= finished < 3 and len(wb.variants) == before + finished
    assert "stopped" in panel._status.value
    assert not panel._run_button.disabled and panel._stop_button.disabled


def test_bad_input_lands_in_the_panel(wb):
    panel = cw.SweepPanel(wb)
    before = len(wb.variants)
    panel.prune_levels = "0.5, lots"
    assert "not a list of numbers" in panel._code.value  # said before Run, too
    panel.run()
    assert "not a list of numbers" in panel._error.value and not panel.running
    panel.prune_levels = "0.5, 1.5"
    panel.run()
    panel.wait(60)
    assert "prune[1]" in panel._error.value
    assert len(wb.variants) == before
    with pytest.raises(traitlets.TraitError, match="technique"):
        panel.technique = "distill"
    with pytest.raises(traitlets.TraitError, match="not a variant it can start from"):
        panel.base = "nope"


def test_the_chosen_variant_is_the_base_of_the_other_tabs(wb):
    studio = cw.Studio(wb)
    assert studio.tabs.titles[-1] == "Sweep" and studio.sweep in studio.panels
    made = wb.prune(0.5, epochs=0, name="for the studio")
    studio.sweep._pick.options = [made.name]
    studio.sweep.use(made.name)
    assert studio.sweep.chosen == made.name
    assert studio.prune.base == studio.cluster.base == studio.quantize.base == made.name
    assert studio.sensitivity.base == made.name
