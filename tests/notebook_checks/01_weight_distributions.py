"""What notebooks/01_weight_distributions.ipynb must show once executed.

The prose quotes parameter counts (deterministic) and describes the int8 tables (per tensor
against per channel, trained against rescaled model): the descriptions are asserted here.
"""

import re

ROW = re.compile(
    r"^(?P<key>\S+/kernel)\s+(?P<spread>[\d.]+)x \|\s+(?P<snr_t>[\d.]+)\s+(?P<snr_c>[\d.]+) \|"
    r"\s+(?P<worst_t>[\d.]+)\s+(?P<worst_c>[\d.]+) \|\s+(?P<zeroed>\d+) \|\s+(?P<distinct>[\d,]+)$",
    re.M)


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")


def _cell(nb, needle: str):
    return next(c for c in nb.cells if c.cell_type == "code" and needle in c.source)


def _table(cell) -> dict[str, dict[str, float]]:
    rows = {}
    for m in ROW.finditer(_stdout(cell)):
        rows[m["key"]] = {k: float(v.replace(",", "")) for k, v in m.groupdict().items()
                          if k != "key"}
    assert len(rows) == 5, rows  # five kernels
    return rows


def _has_png(cell) -> bool:
    return any("image/png" in o.get("data", {}) for o in cell.outputs)


def check(nb, text: str) -> None:
    # the inspector was displayed, with its static fallback
    bundle = _cell(nb, "cw.WeightInspector(model)").outputs[-1]["data"]
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "distinct values" in bundle["text/html"]

    # parameter counts quoted in the prose
    assert "digits_cnn: 32,810 parameters; 1,347 training and 450 test images" in text
    assert "32,810 parameters, 0.13 MB as float32" in text
    for key, params in (("conv2d/kernel", "576"), ("conv2d_1/kernel", "18,432"),
                        ("dense_1/kernel", "320")):
        assert re.search(rf"^{re.escape(key)}\s+\(.*?\)\s+{params}\s", text, re.M), key
    assert "conv2d_1/kernel: shape (3, 3, 64, 32), 18,432 weights" in text

    # the figures
    for needle in ("plot_histogram(report.histogram", "plot_layer_overview(",
                   "plot_channel_ranges(report.find", "rescaled_report.find(\"conv2d_1\")"):
        assert _has_png(_cell(nb, needle)), needle

    # trained model: channels alike, per channel buys only a little
    trained = _table(_cell(nb, "def int8_table("))
    for row in trained.values():
        assert row["spread"] < 2
        assert 0 <= row["snr_c"] - row["snr_t"] < 6
        assert row["distinct"] <= 255  # per-tensor int8: at most 255 values
        assert row["zeroed"] == 0

    # the rescaled model computes the same function
    same = re.search(r"largest difference in the predicted probabilities: (\S+)", text)
    assert same and float(same[1]) < 1e-4
    assert "same predicted class for all 450 test images: True" in text

    rescaled = _table(_cell(nb, "int8_table(rescaled_report)"))
    before, after = trained["conv2d_1/kernel"], rescaled["conv2d_1/kernel"]
    assert after["spread"] > 3 * before["spread"]  # "its spread jumped"
    assert after["snr_t"] > 20  # "still looks respectable"
    assert after["worst_c"] - after["worst_t"] > 20  # "the worst channel tells the truth"
    assert after["zeroed"] > 0  # filters rounded away
    assert abs(after["worst_c"] - before["worst_c"]) < 1  # "per channel hardly moves"
    assert abs(after["snr_c"] - before["snr_c"]) < 1.5
    c2_before, c2_after = trained["conv2d_2/kernel"], rescaled["conv2d_2/kernel"]
    assert c2_after["snr_t"] < c2_before["snr_t"] and c2_after["snr_c"] < c2_before["snr_c"]
    assert all(row["distinct"] <= 255 for row in rescaled.values())

    # weights-only rounding: per tensor costs accuracy on conv2d_1, per channel does not
    acc = {k: float(v) for k, v in re.findall(r"rescaled model, (.+?)\s+accuracy ([\d.]+)%",
                                              text)}
    assert len(acc) == 4, acc
    assert acc["conv2d_1 rounded per tensor"] < acc["float32 (nothing rounded)"]
    assert acc["conv2d_1 rounded per channel"] > acc["conv2d_1 rounded per tensor"]
    assert acc["conv2d_1 rounded per channel"] >= acc["float32 (nothing rounded)"] - 0.5

    # the converter's kernels are int8 and match the per-channel rounding
    matches = re.findall(r"^(\w+)\s+(int8|float32|float16)\s+[\d.]+ dB\s+(.+)$", text, re.M)
    assert [m[0] for m in matches] == ["conv2d", "conv2d_1", "conv2d_2", "dense", "dense_1"]
    assert all(m[1] == "int8" and m[2].strip() == "per-channel" for m in matches), matches
    trained_acc = re.search(r"int8 .tflite of the trained model:\s+accuracy ([\d.]+)%", text)
    rescaled_acc = re.search(r"int8 .tflite of the rescaled model: accuracy ([\d.]+)% "
                             r"\(float32: ([\d.]+)%\)", text)
    assert trained_acc and rescaled_acc
    # "on the trained model int8 costs next to nothing; the rescaled one loses more"
    assert float(trained_acc[1]) >= float(rescaled_acc[2]) - 1
    assert float(rescaled_acc[1]) < float(trained_acc[1])
    assert float(rescaled_acc[1]) < acc["all kernels rounded per channel"]

    # the exercise ran
    assert "rescaled: widest spread is conv2d_1/kernel" in text
    assert "±1.0 decades: spread" in text
