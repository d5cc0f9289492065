"""The Studio without a browser: one Workbench behind every tab; variants flow between them."""

from __future__ import annotations

import pytest
from _helpers import HOSTILE, table_rows, weights_bytes

import compresswidgets as cw

pytestmark = pytest.mark.slow  # make test-fast leaves this module out


def test_studio_chains_techniques_through_its_tabs(demo):
    model, data = demo
    live = weights_bytes(model)
    studio = cw.Studio(model, data)
    assert studio.tabs.titles == ("Inspect", "Sensitivity", "Prune", "Cluster", "Quantize",
                                  "Benchmark", "Sweep")
    assert studio.workbench.original.keras_model is not model  # a private clone
    rows = table_rows(studio._variants.value)
    assert rows[0][:3] == ["variant", "technique", "base"] and rows[1][0] == "original"

    studio.prune._epochs.value = 0
    studio.prune._apply.click()
    # one job at a time: the other tabs wait, and say why
    assert studio.cluster._apply.disabled and studio.benchmark._run_button.disabled
    assert "Prune is running" in studio._busy.value
    studio.prune.wait(300)
    assert not studio.cluster._apply.disabled and not studio.benchmark._run_button.disabled
    assert studio._busy.value == ""
    pruned = studio.prune.result.name
    # the new variant is offered everywhere at once
    assert pruned in studio.cluster._base.options and pruned in studio.quantize._base.options
    assert pruned in [v.name for v in studio.benchmark.selected_variants]  # ticked when new
    assert pruned in studio._inspect_pick.options
    assert [r[0] for r in table_rows(studio._variants.value)[1:]] == ["original", pruned]

    studio.cluster._base.value = pruned
    studio.cluster._epochs.value = 0
    studio.cluster._apply.click()
    studio.cluster.wait(300)
    clustered = studio.cluster.result
    assert clustered.parent.name == pruned and clustered.lineage[1].name == pruned

    studio._inspect_pick.value = clustered.name  # Inspect shows the chosen variant's weights
    assert studio.inspector.model is clustered.keras_model
    assert studio.inspector.report.sparsity > 0.3
    assert weights_bytes(model) == live


def test_studio_takes_a_workbench_and_escapes_names(demo):
    wb = cw.Workbench(*demo)
    wb.prune(0.4, epochs=0, name=HOSTILE)
    studio = cw.Studio(wb)
    assert studio.workbench is wb
    assert "<img" not in studio._variants.value and "&lt;img" in studio._variants.value
    static = studio._repr_mimebundle_()["text/html"]
    assert "&lt;img" in static and "<img src=x" not in static


def test_studio_needs_data(demo):
    model, data = demo
    with pytest.raises(TypeError, match="needs the data"):
        cw.Studio(model)
    with pytest.raises(TypeError, match="takes no data"):
        cw.Studio(cw.Workbench(model, data), data)
