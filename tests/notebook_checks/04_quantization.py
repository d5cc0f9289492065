"""What notebooks/04_quantization.ipynb must show once executed (the figures its prose quotes)."""

import re

WIDGET = "application/vnd.jupyter.widget-view+json"


def _cell(nb, snippet: str):
    return next(c for c in nb.cells if c.cell_type == "code" and snippet in c.source)


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")


def _has_image(cell) -> bool:
    return any("image/png" in o.get("data", {}) for o in cell.outputs)


def _table(printed: str) -> dict[str, tuple[int, int]]:
    """``{variant: (size_bytes, gzipped_bytes)}`` from a printed ``wb.compare()``."""
    rows = {}
    for m in re.finditer(r"^(\S.*?)\s+[\d.]+ [+-][\d.]+\s+([\d,]+)\s+([\d,]+)\s", printed, re.M):
        rows[m.group(1)] = (int(m.group(2).replace(",", "")), int(m.group(3).replace(",", "")))
    return rows


def _sections(printed: str) -> dict[str, str]:
    """The per-layer error listing, split by its unindented variant names."""
    parts = re.split(r"^(dynamic|int8|float16)$", printed, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def check(nb, text: str) -> None:
    # The float model: 134,932 B, 450 test images (one image = 0.22 points).
    assert "on 450 test images, .tflite 134,932 B" in text

    # The panel (widget view plus static HTML), then its headless twin.
    bundle = _cell(nb, "panel = cw.QuantizationPanel(wb)").outputs[-1]["data"]
    assert WIDGET in bundle and "QuantizationPanel" in bundle["text/html"]
    assert re.search(r"^dynamic: accuracy [\d.]+% \([+-][\d.]+%\), \.tflite 40,952 B", text, re.M)

    # Every mode: float16 about half (70,932 B), the int8 modes a little under a third, gzip
    # saving only a small fraction; int16x8 a little larger than int8.
    table = _table(_stdout(_cell(nb, 'variants["qat"] = wb.quantize("qat"')))
    assert set(table) == {"original", "dynamic", "float16", "int8", "int8-only", "int16x8", "qat"}
    assert table["original"][0] == 134_932 and table["float16"][0] == 70_932
    for mode in ("dynamic", "int8", "int8-only", "qat"):
        assert 0.25 < table[mode][0] / 134_932 < 1 / 3, (mode, table[mode])
    for mode in ("dynamic", "float16", "int8", "int8-only", "int16x8", "qat"):
        size, gzipped = table[mode]
        assert gzipped > 0.75 * size, (mode, table[mode])
    assert table["int8"][0] < table["int16x8"][0]

    # Input and output types: float for int8, int8 (scale 1/255, zero point -128) for int8-only.
    io = _stdout(_cell(nb, "from ai_edge_litert.interpreter import Interpreter"))
    assert re.search(r"^int8 +input float32 .* output float32", io, re.M)
    only = re.search(r"^int8-only input int8 +\(scale, zero point\) \(([\d.e-]+), (-?\d+)\)", io,
                     re.M)
    assert abs(float(only.group(1)) - 1 / 255) < 1e-6 and only.group(2) == "-128"
    assert re.search(r"-> digit \d \(label \d\)", io)

    # Per-layer error: dynamic keeps the two kernels under 1,024 weights float32; int8 SNR
    # around 40 dB, float16 higher everywhere.
    errors = _sections(_stdout(_cell(nb, 'for name in ["dynamic", "int8", "float16"]:')))
    dynamic = {line.split()[0]: line for line in errors["dynamic"].strip().splitlines()}
    for layer in ("conv2d", "dense_1"):
        assert "float32" in dynamic[layer] and "SNR    inf dB" in dynamic[layer], dynamic[layer]
    assert "576 weights" in dynamic["conv2d"] and "320 weights" in dynamic["dense_1"]
    for layer in ("conv2d_1", "conv2d_2", "dense"):
        assert " int8 " in dynamic[layer], dynamic[layer]
    assert errors["int8"].count(" int8 ") == 5  # full integer: every kernel int8
    snrs = [float(x) for x in re.findall(r"SNR\s+([\d.]+) dB", errors["int8"])]
    assert len(snrs) == 5 and all(35 < s < 55 for s in snrs), snrs
    assert "float16's SNR is higher than int8's in every layer: True" in text

    # Per channel, no error beyond half a step, and some weight in every layer close to it.
    bound = _stdout(_cell(nb, "half_step = "))
    assert "every channel within half a step: True" in bound
    ratios = [float(x) for x in re.findall(r"half step = ([\d.]+)", bound)]
    assert len(ratios) == 5 and all(0.9 <= r <= 1.0001 for r in ratios), ratios
    assert _has_image(_cell(nb, "ax.scatter(w[:, channel]"))

    # The benchmark table and its plots.
    bench_cell = _cell(nb, "report = wb.benchmark(runs=20, threads=(1,))")
    bench = _stdout(bench_cell)
    assert "Mem MB" in bench and "error:" not in bench
    assert sum(1 for line in bench.splitlines() if re.match(r"^\S.* +1 +[\d.]+ ", line)) == 7
    assert _has_image(bench_cell)

    # Quantize last: the refusal, and the chain whose gzipped size beats int8 alone.
    assert "Clustering cannot start from 'dynamic': it is already quantized" in text
    assert "bases the technique panels offer: ['original']" in text
    chain = _table(_stdout(_cell(nb, 'both = wb.quantize("int8", base=clustered)')))
    assert chain["cluster 16 > int8"][0] == table["int8"][0]
    assert chain["cluster 16 > int8"][1] < 0.9 * table["int8"][1]

    # The converter settings in variant.code, and the exercise.
    assert "converter.target_spec.supported_types = [tf.float16]" in text
    assert "converter.inference_input_type = tf.int8" in text
    assert "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8" in text
    assert "tfmot.quantization.keras.quantize_apply(annotated" in text
    exercise = _stdout(_cell(nb, "for n in (1, 10):"))
    assert exercise.count(" samples: accuracy ") == 2
