"""BenchmarkPanel without a browser: tick, click Run, wait for the background measurements."""

from __future__ import annotations

import csv
import io
import time

import pytest
from _helpers import HOSTILE

import compresswidgets as cw
from compresswidgets.variant import safe_filename
from compresswidgets.widgets.benchmark import BenchmarkPanel

PNG = b"\x89PNG"


@pytest.fixture(scope="module")
def wb(demo):
    wb = cw.Workbench(*demo)
    wb.quantize("dynamic")
    return wb


@pytest.fixture
def panel(wb):
    panel = BenchmarkPanel(wb)
    panel.runs, panel.warmup = 5, 1
    return panel


def run(panel):
    panel._run_button.click()
    panel.wait(300)
    assert not panel.running
    return panel.report


def test_defaults(panel, wb):
    fresh = BenchmarkPanel(wb)
    assert (fresh.threads, fresh.runs, fresh.warmup, fresh.batch, fresh.folder) == (
        [1], 50, 5, 1, "")
    assert [v.name for v in fresh.selected_variants] == ["original", "dynamic"]
    assert [b.description for b in fresh._variants.children] == [
        "original · original", "dynamic · quantize"]
    assert {1, 2, 4} <= set(fresh._thread_toggles)
    assert [c for c, t in fresh._thread_toggles.items() if t.value] == [1]
    for control in (fresh._runs, fresh._warmup, fresh._batch, fresh._folder, fresh._run_button,
                    fresh._stop_button, fresh._save_report, fresh._save_tflite,
                    *fresh._thread_toggles.values(), *fresh._variants.children):
        assert control.tooltip
    assert fresh._stop_button.disabled and not fresh._run_button.disabled
    assert fresh._results.layout.display == "none" and fresh.report is None
    assert "cw-benchmark-panel" in fresh._dom_classes
    fresh._thread_toggles[2].value = True
    assert fresh.threads == [1, 2]
    fresh.threads = [3]  # a count not offered gets its own button
    assert fresh._thread_toggles[3].value and not fresh._thread_toggles[1].value


def test_run_shows_table_and_plots(panel, wb):
    panel._run_button.click()
    assert panel.running and panel._run_button.disabled and not panel._stop_button.disabled
    assert all(b.disabled for b in panel._variants.children)
    panel.wait(300)
    report = panel.report
    assert [(r.variant, r.threads) for r in report.rows] == [("original", 1), ("dynamic", 1)]
    assert all(r.ok and r.runs == 5 for r in report.rows) and not report.stopped
    table = panel._table.value
    assert "original" in table and "dynamic" in table and "median ms" in table
    assert f"{report.rows[0].median_ms:.3f}" in table
    for figure in panel._figures:
        assert bytes(figure.widget.value).startswith(PNG)
    assert panel._results.layout.display is None
    assert panel._progress.value == 1.0 and panel._error.value == ""
    assert "done: 2 measurement" in panel._status.value
    assert not panel._run_button.disabled and panel._stop_button.disabled
    assert not any(b.disabled for b in panel._variants.children)
    assert 'download="benchmark.csv"' in panel._downloads.value.replace("'", '"')
    assert "data:text/csv;base64," in panel._downloads.value


def test_unticked_variant_is_left_out(panel):
    panel._boxes["original"].value = False
    assert [v.name for v in panel.selected_variants] == ["dynamic"]
    report = run(panel)
    assert [r.variant for r in report.rows] == ["dynamic"]


def test_save_report_and_tflite(demo, tmp_path):
    wb = cw.Workbench(*demo)
    hostile = wb.quantize("float16", name=HOSTILE)
    assert hostile.name == HOSTILE
    panel = BenchmarkPanel(wb)
    panel.runs, panel.warmup = 5, 1
    report = run(panel)
    assert HOSTILE not in panel._table.value and "<img" not in panel._table.value
    assert "&lt;img src=x" in panel._table.value
    folder = tmp_path / "out" / "new"
    panel._folder.value = str(folder)
    panel._save_report.click()
    assert panel._error.value == ""
    header = next(csv.reader(io.StringIO((folder / "benchmark.csv").read_text())))
    assert header == list(cw.BenchmarkRow.__dataclass_fields__)
    assert (folder / "benchmark.json").read_text() == report.to_json()
    panel._save_tflite.click()
    assert panel._error.value == ""
    written = sorted(p.name for p in folder.iterdir())
    stem = safe_filename(HOSTILE)
    assert written == sorted(["benchmark.csv", "benchmark.json", "original.tflite",
                              f"{stem}.tflite"])
    assert (folder / f"{stem}.tflite").read_bytes() == hostile.tflite
    assert (folder / "original.tflite").read_bytes() == wb.original.tflite
    assert "<img" not in panel._status.value and "original.tflite" in panel._status.value
    (folder / "benchmark.csv").unlink()
    (folder / "benchmark.csv").symlink_to(tmp_path / "elsewhere.csv")
    panel._save_report.click()  # a link out of the folder is refused, nothing written
    assert "outside" in panel._error.value and not (tmp_path / "elsewhere.csv").exists()
    static = panel._repr_mimebundle_()["text/html"]  # the fallback escapes the name too
    assert "<img src=x" not in static and "&lt;img src=x" in static
    assert static.count("data:image/png;base64,") == 4


def test_names_that_make_the_same_file_name_get_distinct_files(demo, tmp_path):
    wb = cw.Workbench(*demo)
    a, b = wb.quantize("dynamic", name="x y"), wb.quantize("dynamic", name="x/y")
    panel = BenchmarkPanel(wb)
    panel._boxes["original"].value = False
    panel.folder = str(tmp_path)
    paths = panel.save_tflite()
    assert [p.name for p in paths] == ["x_y.tflite", "x_y-2.tflite"]
    assert [p.read_bytes() for p in paths] == [a.tflite, b.tflite]


def test_errors_leave_the_panel_usable(panel, tmp_path, monkeypatch):
    panel._save_report.click()
    assert "cw-error" in panel._error.value and "Folder box is empty" in panel._error.value
    panel.folder = str(tmp_path / "x")
    panel._save_report.click()
    assert "no benchmark report" in panel._error.value and not (tmp_path / "x").exists()
    afile = tmp_path / "taken.txt"
    afile.write_text("keep")
    panel.folder = str(afile)
    panel._save_tflite.click()
    assert "it is a file, not a folder" in panel._error.value and afile.read_text() == "keep"
    for box in panel._variants.children:
        box.value = False
    panel._run_button.click()
    assert "No variant is ticked" in panel._error.value
    assert panel._job.thread is None and not panel.running
    panel._save_tflite.click()
    assert "No variant is ticked" in panel._error.value
    panel._boxes["dynamic"].value = True
    panel.threads = []
    panel._run_button.click()
    assert "No thread count" in panel._error.value and panel._job.thread is None

    def broken(*args, **kwargs):
        raise RuntimeError("engine <b>failed</b>")

    panel.threads = [1]
    monkeypatch.setattr(panel.workbench, "benchmark", broken)
    run(panel)
    assert "RuntimeError" in panel._error.value and "&lt;b&gt;failed" in panel._error.value
    monkeypatch.undo()
    report = run(panel)  # still works
    assert panel._error.value == "" and [r.variant for r in report.rows] == ["dynamic"]
    panel.folder = str(tmp_path / "ok")
    panel._save_report.click()
    assert panel._error.value == "" and (tmp_path / "ok" / "benchmark.csv").exists()


def test_stop_between_measurements(panel):
    panel.runs = 2000
    panel.threads = [1, 2]
    panel._run_button.click()
    deadline = time.monotonic() + 120
    while not panel._status.value.startswith("measuring") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "at 1 thread(s)" in panel._status.value
    panel._stop_button.click()
    panel.wait(300)
    report = panel.report
    assert report.stopped and [(r.variant, r.threads) for r in report.rows] == [("original", 1)]
    assert panel._status.value.startswith("stopped")
    assert "Stopped: measured" in panel._summary.value
    assert panel._error.value == "" and not panel._run_button.disabled


def test_follows_the_workbench_and_keeps_ticks(demo):
    """A variant made in code appears in the panel at once (it observes the Workbench),
    ticked, and the user's ticks stay."""
    wb = cw.Workbench(*demo)
    panel = BenchmarkPanel(wb)
    panel._boxes["original"].value = False
    made = wb.quantize("dynamic")
    assert panel.selected_variants == [made]
    assert [b.description for b in panel._variants.children] == ["original · original",
                                                                  "dynamic · quantize"]
    assert [b.value for b in panel._variants.children] == [False, True]


def test_static_fallback(panel):
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "original (original)" in bundle["text/html"] and "dynamic" in bundle["text/html"]
    assert "<table" not in bundle["text/html"]  # no report yet
