"""What notebooks/02_pruning.ipynb must show once executed.

Quoted in its prose and asserted here: the float .tflite size (134,932 B, unchanged by pruning),
the panel's default layers, which are wb.prune's default too (its note names what it left out),
and 77.8 %; the exact sparsity of one-shot pruning of every layer (50.0 %, 80.0 %), 43 steps per
epoch and the schedules the Workbench derives from them (end_step=64, frequency=8; constant:
frequency=21), the tutorial-style schedule that never fires (0.0 %) or stops short (18.9 %), 2:4
refusing conv2d (one input channel), two zeros in every group of four and 49.1 % over all
kernels, and 896 of 32,640 kernel weights (2.7 %) in the first and last layers.
"""

import re


def _cell(nb, needle: str):
    return next(c for c in nb.cells if c.cell_type == "code" and needle in c.source)


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")


def _has_png(cell) -> bool:
    return any("image/png" in o.get("data", {}) for o in cell.outputs)


def _accuracies(cell) -> list[float]:
    """The `accuracy` line of a layer_table, one value per column."""
    line = re.search(r"^accuracy\s+(.+)$", _stdout(cell), re.M)
    assert line, _stdout(cell)
    return [float(v) for v in re.findall(r"([\d.]+)%", line[1])]


def check(nb, text: str) -> None:
    # the panel was displayed (widget view and static fallback with its preview)
    bundle = _cell(nb, "cw.PruningPanel(wb)").outputs[-1]["data"]
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "PruningPanel" in bundle["text/html"] and "data:image/png" in bundle["text/html"]
    # its headless twin: the ticked layers (tiny ones left out) and the sparsity they give
    assert "ticked layers: ['conv2d_1', 'conv2d_2', 'dense']" in text
    # ... which are wb.prune's default, with a note on what it left out
    assert "pruned layers: ['conv2d_1', 'conv2d_2', 'dense']" in text
    assert ("note: Left out by default (under 1,024 weights): conv2d (640), dense_1 (330). "
            "Name them in layers=[...] to include them.") in text
    assert re.search(r"80% ticked layers, 2 epochs: accuracy [\d.]+% \(original [\d.]+%\), "
                     r"sparsity of all kernels 77\.8%", text)

    # one-shot: exact sparsity per layer, accuracy falls with it
    table = _stdout(_cell(nb, "layer_table(original, one_shot_50, one_shot_80)"))
    for layer in ("conv2d", "conv2d_1", "conv2d_2", "dense", "dense_1", "all kernels"):
        assert re.search(rf"^{layer}\s+[\d,]*\s+0\.0%\s+50\.0%\s+80\.0%$", table, re.M), layer
    original, half, most = _accuracies(_cell(nb, "layer_table(original, one_shot_50, one_shot_80)"))
    assert most < half < original  # "even 50 % costs accuracy"
    assert most < 60  # "at 80 % the network falls apart"
    assert _has_png(_cell(nb, "plot_histogram(report.histogram(k"))

    # the .tflite does not shrink; gzip does
    sizes = re.findall(r"^(.+?)\s+\.tflite\s+([\d,]+) B\s+gzipped\s+([\d,]+) B", text, re.M)
    assert [s[0] for s in sizes] == ["original", "one-shot 50%", "one-shot 80%"]
    assert all(s[1] == "134,932" for s in sizes)
    gz = [int(s[2].replace(",", "")) for s in sizes]
    assert gz[0] > gz[1] > gz[2]
    raw = re.findall(r"conv2d_1 kernel: ([\d,]+) B raw, ([\d,]+) B gzipped", text)
    assert len(raw) == 3 and all(r[0] == "73,728" for r in raw)

    # schedules: the steps quoted in the prose, as tfmot answers them
    assert "1,347 images / batch 32 = 43 steps per epoch; 2 epochs = 86 steps" in text
    assert re.search(r"tutorial-style: end_step=1000, frequency=100\s+no mask update\s+"
                     r"final sparsity 0\.0%", text)
    assert re.search(r"tutorial-style: end_step=1000, frequency=1\s+86 mask updates, steps 1-86"
                     r"\s+final sparsity 18\.9%", text)
    assert re.search(r"Workbench, polynomial: end_step=64, frequency=8\s+8 mask updates, "
                     r"steps 8-64\s+final sparsity 80\.0%", text)
    assert re.search(r"Workbench, constant: frequency=21\s+4 mask updates, steps 21-84\s+"
                     r"final sparsity 80\.0%", text)
    assert _has_png(_cell(nb, "ax.step(steps, levels"))
    # ... and what the Workbench used
    assert "80% polynomial, 2 epochs: begin_step=0, end_step=64, frequency=8" in text
    assert "80% constant, 2 epochs: begin_step=0, end_step=-1, frequency=21" in text
    _, one_shot, poly, const = _accuracies(_cell(nb, "layer_table(original, one_shot_80, poly_80"))
    assert poly > (one_shot + original) / 2 and const > (one_shot + original) / 2  # "most of it"

    # 2:4: conv2d (one input channel) refused, two zeros per group of four, 49.1 %
    assert ("ValueError: structure='2:4' zeros two of every four input channels, so a layer's "
            "input channels must be a multiple of 4; 'conv2d' has 1.") in text
    assert "pruned layers: ['conv2d_1', 'conv2d_2', 'dense', 'dense_1']" in text
    groups = re.findall(r"zeros per group of 4 = (\[.*?\])", text)
    assert groups == ["[2]"] * 4, groups
    two_four = _stdout(_cell(nb, "layer_table(original, two_four, unstructured_50)"))
    assert re.search(r"^all kernels\s+0\.0%\s+49\.1%\s+49\.1%$", two_four, re.M)
    assert "sparsity_m_by_n=(2, 4)" in text

    # layer selection
    assert "conv2d + dense_1: 896 of 32,640 kernel weights (2.7%)" in text
    selection = _stdout(_cell(nb, "layer_table(original, poly_80, big_80)"))
    assert re.search(r"^all kernels\s+0\.0%\s+80\.0%\s+77\.8%$", selection, re.M)

    # the comparison: every .tflite is 134,932 B
    compare = _stdout(_cell(nb, "print(wb.compare())"))
    rows = [line for line in compare.splitlines()[2:] if line.strip()]
    assert len(rows) == 8, rows
    assert all(" 134,932 " in row for row in rows)
    assert _has_png(_cell(nb, "rows = wb.compare()"))

    # the plain tfmot code
    assert "tfmot.sparsity.keras.prune_low_magnitude" in text
    assert ("PolynomialDecay(initial_sparsity=0.0, final_sparsity=0.8, begin_step=0, "
            "end_step=64, frequency=8)") in text
    assert "tfmot.sparsity.keras.UpdatePruningStep()" in text
    assert "tfmot.sparsity.keras.strip_pruning(pruned)" in text

    # the exercise ran
    assert re.search(r"highest sparsity within 1 point: \d+%|none within 1 point", text)
