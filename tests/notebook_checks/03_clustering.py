"""What notebooks/03_clustering.ipynb must show once executed (the figures its prose quotes)."""

import re

WIDGET = "application/vnd.jupyter.widget-view+json"


def _cell(nb, snippet: str):
    return next(c for c in nb.cells if c.cell_type == "code" and snippet in c.source)


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")


def _layer_lines(block: str) -> dict[str, str]:
    """``{layer: its line}`` for the indented per-layer lines of one printed variant."""
    return {m.group(1): m.group(0) for m in re.finditer(r"^\s+(conv2d(?:_\d)?|dense(?:_1)?)\s.*$",
                                                         block, re.M)}


def _widget(nb, snippet: str) -> None:
    bundle = _cell(nb, snippet).outputs[-1]["data"]
    assert WIDGET in bundle
    assert "ClusteringPanel" in bundle["text/html"]  # the static fallback


def check(nb, text: str) -> None:
    # The original: 134,932 B as float32 .tflite, 32,640 kernel weights, nearly all distinct.
    first = _stdout(_cell(nb, "model, data = cw.demo_model()"))
    assert ".tflite 134,932 B" in first
    assert "kernel weights in all: 32,640" in first
    originals = _layer_lines(first)
    assert "576 weights" in originals["conv2d"] and "320 weights" in originals["dense_1"]
    for line in originals.values():
        params, distinct = (int(n.replace(",", "")) for n in re.findall(r"([\d,]+) (?:weights|"
                                                                        r"distinct)", line))
        assert distinct >= 0.99 * params, line

    # Both panels were displayed (widget view plus static HTML).
    _widget(nb, "panel = cw.ClusteringPanel(wb)")
    _widget(nb, "panel_pruned = cw.ClusteringPanel(wb)")
    assert "preserve sparsity ticked: True" in text

    # The panel's headless twin: 16 values in the three ticked kernels, the small ones untouched.
    c16 = _stdout(_cell(nb, "c16 = wb.cluster("))
    assert "ticked layers: ['conv2d_1', 'conv2d_2', 'dense']" in c16
    assert ".tflite 134,932 B" in c16  # the .tflite does not shrink
    lines = _layer_lines(c16)
    for layer in ("conv2d_1", "conv2d_2", "dense"):
        assert lines[layer].endswith(" 16 distinct values"), lines[layer]
    assert lines["conv2d"].endswith(" 576 distinct values")
    assert lines["dense_1"].endswith(" 320 distinct values")
    gzipped = int(re.search(r"gzipped ([\d,]+) B", c16).group(1).replace(",", ""))
    original_gzipped = int(re.search(r"gzipped ([\d,]+) B", first).group(1).replace(",", ""))
    assert gzipped < original_gzipped / 2

    # Index arithmetic: 73,728 B of float32 -> 9,280 B of 4-bit indices; entropy under 4 bits.
    bits = _stdout(_cell(nb, "def entropy_bits("))
    assert "conv2d_1   73,728 B as float32 ->  9,280 B as 4-bit indices + 16 centroids" in bits
    entropies = [float(x) for x in re.findall(r"entropy ([\d.]+) bits", bits)]
    assert len(entropies) == 3 and all(e < 4 for e in entropies)

    # Inits with epochs=0: 8 distinct values in every kernel (random: at most 8).
    inits = _stdout(_cell(nb, 'INITS = ["kmeans++"'))
    for init in ("kmeans++", "linear", "density-based", "random"):
        row = next(line for line in inits.splitlines() if line.startswith(init + " "))
        counts = [int(n) for n in re.findall(r"=(\d+)", row.split("distinct:")[1])]
        assert len(counts) == 5, row
        assert all(n == 8 for n in counts) if init != "random" else all(n <= 8 for n in counts)

    # The preview iterates: lower error than tfmot's bare init, and about the same for each init.
    preview = _stdout(_cell(nb, "from compresswidgets.preview import kmeans_1d"))
    assert "the preview's error is the lower one for every init: True" in preview
    errors = [float(m) for m in re.findall(r"^\S+\s+([\d.]+)\s+[\d.]+$", preview, re.M)]
    assert len(errors) == 4 and max(errors) < 1.1 * min(errors)
    figure = _cell(nb, "fig, axes = plt.subplots(1, 2")
    assert any("image/png" in o.get("data", {}) for o in figure.outputs)

    # Pruned 80.0% in every kernel; preserve_sparsity keeps every zero, zero among <= 8 values.
    pruning = _stdout(_cell(nb, "pruned = wb.prune(target_sparsity=0.8"))
    blocks = re.split(r"^(?=\S)", pruning, flags=re.M)
    pruned = next(b for b in blocks if b.startswith("prune 80%: "))
    kept = next(b for b in blocks if b.startswith("prune 80% > cluster 8: "))
    lost = next(b for b in blocks if b.startswith("prune 80% > cluster 8, zeros not kept: "))
    assert ", sparsity 80.0%," in pruned
    assert all("sparsity  80.0%" in line for line in _layer_lines(pruned).values())
    kept_lines = _layer_lines(kept)
    assert len(kept_lines) == 5
    for line in kept_lines.values():
        distinct = int(re.search(r"([\d,]+) distinct", line).group(1))
        assert distinct <= 8 and "zero among them: True" in line, line
        assert "pruned zeros still zero: True" in line, line
    assert "with preserve_sparsity, every pruned zero is still zero: True" in pruning
    assert len(_layer_lines(lost)) == 5
    left = float(re.search(r"zeros left without preserve_sparsity: ([\d.]+)%", pruning).group(1))
    assert left < 5.0

    # The code, the comparison table and the exercise.
    assert "preserve_sparsity=True" in text and "strip_clustering(clustered)" in text
    assert "CentroidInitialization.KMEANS_PLUS_PLUS" in text
    table = _stdout(_cell(nb, "print(wb.compare())"))
    assert "prune 80% > cluster 8" in table and "8 clusters, linear, no training" in table
    ratio = float(re.search(r"^original .* ([\d.]+)x ", table, re.M).group(1))
    assert ratio == 1.0  # gzipped against gzipped: the original is its own reference
    clustered = float(re.search(r"^prune 80% > cluster 8 .* ([\d.]+)x ", table, re.M).group(1))
    assert clustered > 3.0, table
    exercise = _stdout(_cell(nb, "for k in (4, 8):"))
    assert exercise.count(" clusters (") == 2
