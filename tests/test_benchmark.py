"""cw.benchmark: real LiteRT measurements in fresh processes, and every failure as a row."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pytest

import compresswidgets as cw

pytestmark = pytest.mark.slow  # make test-fast leaves this module out


@pytest.fixture(scope="module")
def wb(demo):
    wb = cw.Workbench(*demo)
    wb.quantize("int8-only")
    wb.quantize("dynamic")
    return wb


def test_real_measurements_on_the_demo(wb):
    ticks = []
    report = wb.benchmark(threads=(1, 2), runs=20, warmup=2, progress=ticks.append)
    assert [(r.variant, r.threads) for r in report.rows] == [
        (v.name, t) for v in wb.variants for t in (1, 2)]
    for row in report.rows:
        assert row.ok, row.error
        assert 0 < row.min_ms <= row.median_ms <= row.p90_ms
        assert row.p10_ms <= row.median_ms and row.mean_ms > 0 and row.std_ms >= 0
        assert row.init_ms > 0 and row.first_inference_ms > 0 and row.memory_mb > 0
        assert row.runs == 20 and row.batch == 1
    dtypes = {r.variant: r.input_dtype for r in report.rows}
    assert dtypes == {"original": "float32", "int8-only": "int8", "dynamic": "float32"}
    sizes = {r.variant: r.size_bytes for r in report.rows}
    assert sizes["int8-only"] == wb["int8-only"].size_bytes < sizes["original"]
    assert ticks[0].index == 1 and ticks[-1].index == 6 and ticks[-1].total == 6
    assert max(t.run for t in ticks) == 20
    assert "Init" in str(report)


def test_stop_between_variants(wb):
    def stop_second(tick):
        if tick.index == 2 and tick.run == 0:
            tick.stop()

    report = cw.benchmark(wb.variants, runs=5, progress=stop_second)
    assert report.stopped and len(report.rows) == 1 and report.rows[0].variant == "original"


def test_stop_during_a_measurement_ends_after_it(wb):
    def stop_midway(tick):
        if tick.index == 1 and tick.run == 3:
            tick.stop()

    report = cw.benchmark(wb.variants, runs=10, progress=stop_midway)
    assert report.stopped and [r.variant for r in report.rows] == ["original"]
    assert report.rows[0].ok and report.rows[0].runs == 10  # the one in progress is complete


def truncated(blob: bytes) -> bytes:
    """A .tflite cut in half, as an interrupted copy leaves it (its header is intact)."""
    return blob[: len(blob) // 2]


def test_a_corrupt_model_is_an_error_row_and_the_rest_is_measured(wb):
    broken = cw.Variant("broken <b>", {"technique": "original"},
                        tflite=truncated(wb.original.tflite))
    report = cw.benchmark([broken, wb.original], runs=5)
    bad, good = report.rows
    assert not bad.ok and bad.variant == "broken <b>" and np.isnan(bad.median_ms)
    assert bad.error == "ValueError: The model is not a valid Flatbuffer buffer"
    assert good.ok and good.median_ms > 0 and good.error == ""


def test_a_hanging_measurement_times_out(wb):
    report = cw.benchmark([wb.original], runs=5, timeout=0.01)
    assert "timed out after" in report.rows[0].error


def test_a_failed_conversion_is_an_error_row(keras, demo):
    tf = cw._keras.tf()
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Reshape((8, 8))(inputs)
    x = keras.layers.Lambda(lambda t: tf.linalg.inv(t + tf.eye(8)))(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(x)))
    report = cw.Workbench(model, demo[1]).benchmark(runs=5)
    assert report.rows[0].error.startswith("conversion failed: The TFLite converter failed")


def test_unknown_non_batch_dimensions_need_input_shape(keras):
    inputs = keras.Input((None, 4))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 6, 4)).astype(np.float32)
    wb = cw.Workbench(model, (x, x[..., :2], x, x[..., :2]),
                      metric=lambda y, p: -float(np.mean((y - p) ** 2)))
    row = wb.benchmark(runs=5).rows[0]
    assert "unknown dimension(s) [1]" in row.error and "input_shape=" in row.error
    row = wb.benchmark(runs=5, input_shape={"0": (6, 4)}).rows[0]
    assert row.ok, row.error


@pytest.mark.parametrize("kwargs,pattern", [
    ({"threads": 0}, r"threads must be in \[1, "),
    ({"threads": ()}, r"threads is empty"),
    ({"runs": 0}, r"runs must be in \[1, .*got 0"),
    ({"batch": -1}, r"batch must be"),
    ({"warmup": -1}, r"warmup must be"),
])
def test_bad_arguments(wb, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        wb.benchmark(**kwargs)


def test_bad_variant_lists(wb):
    with pytest.raises(ValueError, match="at least one variant"):
        cw.benchmark([])
    with pytest.raises(TypeError, match="takes Variants"):
        cw.benchmark(["original"])


def test_exports(wb, tmp_path):
    report = cw.benchmark([wb.original], runs=5)
    text = report.to_csv(tmp_path / "b.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "b.csv").read_text())))
    assert text == (tmp_path / "b.csv").read_text()
    assert rows[0]["variant"] == "original" and float(rows[0]["median_ms"]) > 0
    document = json.loads(report.to_json(tmp_path / "b.json"))
    assert document["rows"][0]["threads"] == 1 and not document["stopped"]


def test_plots_draw_the_report(wb):
    from matplotlib.figure import Figure

    from compresswidgets import plots

    broken = cw.Variant("broken", {"technique": "original"}, tflite=truncated(wb.original.tflite))
    report = cw.benchmark([*wb.variants, broken], threads=(1, 2), runs=10)
    fig = Figure(figsize=(10, 8))
    (a, b), (c, d) = fig.subplots(2, 2)
    plots.plot_latency(report, a, threads=2)
    assert len(a.patches) == 3  # one bar per measured variant; the broken one is left out
    assert "2 thread(s)" in a.get_title()
    widths = sorted(p.get_width() for p in a.patches)
    medians = sorted(r.median_ms for r in report.rows if r.ok and r.threads == 2)
    assert widths == pytest.approx(medians)
    plots.plot_memory(report, b)
    assert len(b.patches) == 3
    plots.plot_sizes(report, c)
    assert len(c.patches) == 8  # raw and gzipped for the 3 measured + the broken one's size
    plots.plot_tradeoff(report, d)
    # the front, found here by brute force over the plotted points: none beaten by another
    points = [tuple(map(float, p)) for p in d.collections[0].get_offsets()]
    measured = [r for r in report.rows if r.ok and r.threads == 1]
    assert sorted(points) == sorted((r.gzipped_bytes / 1024, r.accuracy) for r in measured)
    unbeaten = sorted(p for p in points if not any(
        q != p and q[0] <= p[0] and q[1] >= p[1] for q in points))
    front_line = d.lines[0]
    assert list(zip(front_line.get_xdata(), front_line.get_ydata(), strict=True)) == unbeaten
    smallest = min(measured, key=lambda r: r.gzipped_bytes)
    assert (smallest.gzipped_bytes / 1024, smallest.accuracy) in unbeaten
    fig.savefig(io.BytesIO(), format="png")  # renders without error


def test_pareto_front():
    from compresswidgets.plots import pareto_front

    assert pareto_front([(1, 0.9), (2, 0.95), (3, 0.94), (1.5, 0.8)]) == [0, 1]
    assert pareto_front([(1, 0.9), (1, 0.9)]) == [0, 1]  # ties dominate nobody
    assert pareto_front([]) == []


def test_a_fixed_batch_is_the_models_own(demo, keras):
    model, _ = demo
    fixed = keras.Sequential([keras.layers.InputLayer(input_shape=(8, 8, 1), batch_size=16),
                              *[type(layer).from_config(layer.get_config())
                                for layer in model.layers]])
    fixed.set_weights(model.get_weights())
    from compresswidgets import tflite

    variant = cw.Variant("fixed", {"technique": "original"}, tflite=tflite.convert(fixed))
    row = cw.benchmark([variant], runs=5, batch=4).rows[0]
    assert row.ok and row.batch == 16  # not resized to the requested 4
    dynamic = cw.benchmark([cw.Workbench(*demo).original], runs=5, batch=4).rows[0]
    assert dynamic.ok and dynamic.batch == 4


def test_int8_needs_less_memory_than_its_float_parent(keras):
    model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
    rng = np.random.default_rng(0)
    x = rng.random((12, 96, 96, 3), dtype=np.float32)
    y = rng.integers(0, 1000, size=12)
    wb = cw.Workbench(model, (x, y, x[:4], y[:4]))
    q = wb.quantize("int8", representative_samples=8)
    float_row, int8_row = cw.benchmark([wb.original, q], runs=5, warmup=1, timeout=600).rows
    assert float_row.ok and int8_row.ok, (float_row.error, int8_row.error)
    assert int8_row.memory_mb < 0.8 * float_row.memory_mb
    assert int8_row.size_bytes < 0.4 * float_row.size_bytes


@pytest.mark.parametrize("script,pattern", [
    ("import os; os.abort()", r"ended without a result \(exit code -6\)"),
    ("print('{\"result\": {\"init_ms\": -1}}')", r"unusable numbers"),
    ("print('not json at all')", r"ended without a result \(exit code 0\)"),
])
def test_crashing_or_garbage_workers_become_error_rows(wb, tmp_path, monkeypatch, script,
                                                       pattern):
    from compresswidgets import benchmarking

    fake = tmp_path / "worker.py"
    fake.write_text(script)
    monkeypatch.setattr(benchmarking, "WORKER", fake)
    report = cw.benchmark([wb.original, wb["dynamic"]], runs=5)
    assert len(report.rows) == 2
    for row in report.rows:
        assert not row.ok and row.error
    assert report.rows[0].error == report.rows[1].error
    assert re.search(pattern, report.rows[0].error), report.rows[0].error


def test_the_tradeoff_plot_follows_the_metric_and_its_direction():
    from matplotlib.figure import Figure

    from compresswidgets._data import MetricSpec
    from compresswidgets.benchmarking import BenchmarkReport, BenchmarkRow
    from compresswidgets.plots import pareto_front, plot_tradeoff

    assert pareto_front([(1, 0.9), (2, 0.95), (3, 0.94), (1.5, 0.8)],
                        greater_is_better=False) == [0, 3]

    def row(name, gzipped, mae):
        return BenchmarkRow(name, "x", 1, 1, 3, 2 * gzipped, gzipped, mae, median_ms=1.0,
                            memory_mb=1.0, init_ms=1.0, first_inference_ms=1.0, mean_ms=1.0)

    report = BenchmarkReport(rows=[row("big", 4096, 0.20), row("small", 1024, 0.50),
                                   row("worse", 2048, 0.60), row("best", 3072, 0.10)],
                             metric=MetricSpec(lambda y, p: 0.0, "MAE", False, False))
    ax = Figure().add_subplot()
    plot_tradeoff(report, ax)
    assert ax.get_ylabel() == "MAE (lower is better)"
    assert ax.get_title().startswith("MAE against")
    front = sorted(zip(ax.lines[0].get_xdata(), ax.lines[0].get_ydata(), strict=True))
    assert front == [(1.0, 0.5), (3.0, 0.1)]  # "worse" and "big" are beaten (KiB, MAE)
    assert "%" not in ax.yaxis.get_major_formatter().format_data(0.5)
