"""What notebooks/05_benchmark_and_choose.ipynb must show once executed."""

import re

DYNAMIC = ("dynamic", "prune 80% > dynamic", "cluster 16 > dynamic")


def _cell(nb, snippet: str):
    return next(c for c in nb.cells if c.cell_type == "code" and snippet in c.source)


def _has_image(cell) -> bool:
    return any("image/png" in o.get("data", {}) for o in cell.outputs)


def check(nb, text: str) -> None:
    # figures the prose quotes
    assert "32,810 parameters; the float32 .tflite is 134,932 B" in text
    for name in DYNAMIC:  # the same .tflite size for the three dynamic range variants
        assert re.search(rf"^{re.escape(name)}\s+40,952 B, gzipped", text, re.M), name
    distinct = re.search(r"distinct values per kernel after clustering: (.*)", text).group(1)
    # the three big kernels clustered; conv2d and dense_1 left out by default keep theirs
    assert distinct == "conv2d 576, conv2d_1 16, conv2d_2 16, dense 16, dense_1 320", distinct
    assert "14 rows" in text  # 7 variants at 1 and 2 threads
    # the panel: a live widget, and its static view with the table and the four plots
    bundle = _cell(nb, "cw.BenchmarkPanel(wb)").outputs[-1]["data"]
    assert "application/vnd.jupyter.widget-view+json" in bundle
    html = bundle["text/html"]
    assert "memory MB" in html and "cluster 16 &gt; dynamic" in html
    assert html.count("<img") == 4
    # the headless report, its plots, the Pareto front and the rule
    assert "Init" in text and "Mem MB" in text
    assert _has_image(_cell(nb, "plot_latency(report"))
    assert "On the Pareto front (gzipped size against accuracy):" in text
    assert "winner by gzipped_bytes: " in text
    assert "winner on the Pareto front: True" in text
    # the export, the .json, the reload and the clean-up
    assert re.search(r"^benchmark\.csv\s+[\d,]+ B$", text, re.M)
    assert re.search(r"^\S+\.tflite\s+[\d,]+ B$", text, re.M)
    assert "lineage: original -> " in text
    assert "TFLiteConverter" in text  # the winner's code
    assert "same .tflite bytes: True" in text
    assert "export folder removed: True" in text
    assert _has_image(nb.cells[-1])  # the exercise draws its trade-off
