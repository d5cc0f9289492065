"""What notebooks/07_your_architecture.ipynb must show once executed.

Quoted in its prose and asserted here. The LSTM: 5,091 parameters; its .tflite converted for a
fixed batch of 1 (tflite_batch=1 and the note) at 23,636 B, float16 15,272 B, int8 10,248 B
calibrated on 100 sequences; the default prune leaves out `dense` (99) and zeroes 50.0 % of
both LSTM kernels (768 and 4,096 weights); the benchmark measures batch 1; QAT is refused up
front. The UNet: judged by IoU (no percent sign), tflite_batch=None, the default prune leaves
out conv2d (80) and conv2d_5 (9), 49.7 % of all kernels, IoU within a few hundredths after one
epoch with the notebook's own focal Tversky loss; float16 37,908 B and int8-only 24,584 B
within a hundredth of the original's 64,108 B; the pruned int8-only gzips smaller.
"""

import re


def _cell(nb, needle: str):
    return next(c for c in nb.cells if c.cell_type == "code" and needle in c.source)


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")


def _ious(text: str) -> dict[str, tuple[float, int, int]]:
    """The quantization table of part 2: name -> (IoU, .tflite bytes, gzipped bytes)."""
    rows = re.findall(r"^(.+?)\s+IoU (\d\.\d{4})  \.tflite\s+([\d,]+) B  gzipped\s+([\d,]+) B$",
                      text, re.M)
    return {name: (float(iou), int(size.replace(",", "")), int(gz.replace(",", "")))
            for name, iou, size, gz in rows}


FIXED_BATCH = ("The .tflite was converted for a fixed batch of 1 (the model does not convert "
               "with a dynamic batch, as Keras LSTM/GRU layers in TF 2.21); it is evaluated "
               "sample by sample.")


def check(nb, text: str) -> None:
    # ------------------------------------------------------------ part 1: the LSTM
    assert "lstm_classifier: 5,091 parameters, 384 training and 96 test sequences" in text
    assert "metric: accuracy\n" in text
    assert re.search(r"^original: accuracy [\d.]+%, \.tflite 23,636 B, tflite_batch=1$", text,
                     re.M)
    assert f"note: {FIXED_BATCH}" in text
    ptq = _stdout(_cell(nb, 'wb.quantize("float16")'))
    for name, size in (("original", "23,636"), ("float16", "15,272"), ("int8", "10,248")):
        assert re.search(rf"^{name}\s+accuracy [\d.]+%\s+{size} B  tflite_batch=1$", ptq,
                         re.M), (name, ptq)
    assert f"int8 calibrated on 100 training sequences; note: {FIXED_BATCH}" in ptq

    prune = _stdout(_cell(nb, "wb.prune(0.5, epochs=1)"))
    assert ("note: Left out by default (under 1,024 weights): dense (99). Name them in "
            "layers=[...] to include them.") in prune
    assert re.search(r"^lstm/lstm_cell/kernel:0\s+768 weights, 50\.0% zeros$", prune, re.M)
    assert re.search(r"^lstm/lstm_cell/recurrent_kernel:0\s+4,096 weights, 50\.0% zeros$",
                     prune, re.M)
    assert re.search(r"^dense/kernel:0\s+96 weights, 0\.0% zeros$", prune, re.M)
    assert re.search(r"prune 50%: accuracy [\d.]+% \(original [\d.]+%\), gzipped [\d,]+ B "
                     r"instead of [\d,]+ B", prune)

    bench = _stdout(_cell(nb, "wb.benchmark("))
    assert "error:" not in bench, bench
    assert re.findall(r"^(\w+): batch (\d+), [\d.]+ ms per sequence", bench, re.M) == [
        ("original", "1"), ("int8", "1")], bench

    assert ("ValueError: Quantization-aware training does not support recurrent layers "
            "('lstm' (LSTM)): tfmot 0.8.1 has no 8-bit QAT scheme for them. Use post-training "
            "quantization instead") in text

    # ------------------------------------------------------------ part 2: the UNet
    assert "unet_tiny: 14,321 parameters, 512 training and 64 test images" in text
    assert "metric: IoU, greater is better: True" in text
    found = re.search(r"^original: IoU (\d\.\d{4}), \.tflite 64,108 B, tflite_batch=None$", text,
                      re.M)
    assert found, "the UNet's original line"
    original = float(found[1])
    assert 0.5 < original <= 1.0  # it learnt the squares

    seg_prune = _stdout(_cell(nb, "seg.prune(0.5, epochs=1)"))
    assert ("note: Left out by default (under 1,024 weights): conv2d (80), conv2d_5 (9). Name "
            "them in layers=[...] to include them.") in seg_prune
    assert ("pruned layers: ['conv2d_1', 'conv2d_2', 'conv2d_transpose', 'conv2d_3', "
            "'conv2d_4']") in seg_prune
    found = re.search(r"prune 50%: IoU (\d\.\d{4}) \(original (\d\.\d{4})\), sparsity of all "
                      r"kernels 49\.7%", seg_prune)
    assert found, seg_prune
    assert float(found[2]) == original
    assert float(found[1]) >= original - 0.05, found[0]  # "within a few hundredths"
    compile_line = seg_prune.strip().splitlines()[-1]
    assert compile_line.startswith("pruned.compile(") and "loss=focal_tversky," in compile_line

    table = _ious(_stdout(_cell(nb, 'seg.quantize("float16")')))
    assert list(table) == ["original", "float16", "int8-only", "prune 50% > int8-only"], table
    assert [v[1] for v in table.values()] == [64108, 37908, 24584, 24584]
    for name in ("float16", "int8-only"):
        assert abs(table[name][0] - original) <= 0.01, (name, table[name])
    assert table["prune 50% > int8-only"][2] < table["int8-only"][2]  # the zeros gzip

    panel = _cell(nb, "cw.PruningPanel(seg)")
    bundle = panel.outputs[-1]["data"]
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "PruningPanel" in bundle["text/html"]
    assert ("ticked layers: ['conv2d_1', 'conv2d_2', 'conv2d_transpose', 'conv2d_3', "
            "'conv2d_4']") in _stdout(panel)

    compare = _stdout(_cell(nb, "print(seg.compare())")).splitlines()
    assert re.match(r"^variant\s+IoU\s+Δ\s+size\s+gzipped", compare[0]), compare[0]
    rows = [line for line in compare[2:] if line.strip()]
    assert [re.split(r"\s{2,}", r)[0] for r in rows] == [
        "original", "prune 50%", "float16", "int8-only", "prune 50% > int8-only"], rows
    for row in rows:  # the IoU column: a plain number, no percent sign
        assert re.search(r"\s\d\.\d{4} [+-]\d\.\d{4}\s", row), row
    assert re.search(rf"^original\s+{original:.4f} \+0\.0000\s+64,108 ", rows[0])

    # ------------------------------------------------------------ the exercise ran
    assert re.search(r"^default layers 50%\s+5 layers pruned, IoU \d\.\d{4}, sparsity 49\.7%$",
                     text, re.M)
    assert re.search(r"^every conv 50%\s+7 layers pruned, IoU \d\.\d{4}, sparsity 50\.0%$", text,
                     re.M)
