"""What notebooks/00_quickstart.ipynb must show once executed."""


def check(nb, text: str) -> None:
    studio_cell = next(c for c in nb.cells if "cw.Studio(model, data)" in c.source)
    bundle = studio_cell.outputs[-1]["data"]
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "Studio" in bundle["text/html"] and "original" in bundle["text/html"]
    widget_cell = next(c for c in nb.cells if "cw.WeightInspector(model)" in c.source)
    bundle = widget_cell.outputs[-1]["data"]
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "distinct values" in bundle["text/html"]  # the static fallback is there too
    assert "32,810 parameters" in text
    assert "dense/kernel: 4,096 weights" in text
    figure_cell = next(c for c in nb.cells if "plot_histogram(" in c.source)
    assert any("image/png" in o.get("data", {}) for o in figure_cell.outputs)
    assert "prune 80% > dynamic" in text  # the comparison table
    assert "tfmot.sparsity.keras.prune_low_magnitude" in text  # the variant's code
