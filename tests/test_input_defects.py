"""Three input defects: non-finite data, an unknown base, and tables wider than their panel.

Each error must say what was passed, what is expected and how to fix it; a wide table must
scroll inside its own box instead of being cut at the panel's right edge.
"""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from _helpers import table_rows

import compresswidgets as cw
from compresswidgets.benchmarking import BenchmarkReport, BenchmarkRow

PARTS = ("x_train", "y_train", "x_test", "y_test")


@pytest.fixture(scope="module")
def tiny(keras):
    """A small tf_keras classifier (one Dense layer large enough for tfmot's default
    selection) and float data: 4 features, 3 classes."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")], name="tiny")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    data = {"x_train": rng.normal(size=(24, 4)).astype("float32"),
            "y_train": rng.integers(0, 3, 24).astype("float32"),  # float labels: checked too
            "x_test": rng.normal(size=(12, 4)).astype("float32"),
            "y_test": rng.integers(0, 3, 12).astype("float32")}
    return model, data


@pytest.fixture(scope="module")
def wb(tiny):
    model, data = tiny
    return cw.Workbench(model, tuple(data.values()))


# ------------------------------------------------------------------ 1. NaN and infinity
@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize(("value", "said"), [(math.nan, "NaN"), (math.inf, "inf"),
                                             (-math.inf, "-inf")], ids=["nan", "inf", "-inf"])
def test_non_finite_data_is_refused(tiny, part, value, said):
    model, data = tiny
    bad = dict(data)
    bad[part] = data[part].copy()
    index = (5, 2) if bad[part].ndim == 2 else (5,)
    bad[part][index] = value
    bad[part][7] = value  # a later one too: the message names the first
    with pytest.raises(ValueError) as raised:
        cw.Workbench(model, tuple(bad.values()))
    message = str(raised.value)
    assert part in message, message  # what was passed: which array,
    assert f"{said} at index {index}" in message, message  # the first bad index, NaN or inf
    assert "finite numbers" in message, message  # what is expected
    assert f"np.isfinite({part})" in message and "drop or impute" in message.lower(), message
    assert data[part][index] != value  # the caller's arrays were not touched


def test_non_finite_data_counts_every_bad_value(tiny):
    model, data = tiny
    bad = dict(data)
    bad["x_test"] = data["x_test"].copy()
    bad["x_test"][0, 0], bad["x_test"][3, 1], bad["x_test"][4] = math.inf, math.nan, math.nan
    with pytest.raises(ValueError, match=r"x_test holds inf at index \(0, 0\)") as raised:
        cw.Workbench(model, tuple(bad.values()))
    assert "6 non-finite values in 3 samples" in str(raised.value)


def test_finite_and_integer_data_are_accepted(tiny):
    model, data = tiny
    ints = {**data, "y_train": data["y_train"].astype("int64"),
            "y_test": data["y_test"].astype("int64")}
    assert cw.Workbench(model, ints).data.y_train.dtype == np.int64
    big = {**data, "x_train": np.full(data["x_train"].shape, 1e308)}  # the sum overflows
    assert cw.Workbench(model, big).data.x_train.shape == (24, 4)


def test_the_studio_shows_the_same_error(tiny):
    """The Studio builds its Workbench from (model, data): the error reaches the cell."""
    model, data = tiny
    bad = {**data, "y_test": data["y_test"].copy()}
    bad["y_test"][2] = math.nan
    with pytest.raises(ValueError, match=r"y_test holds NaN at index \(2,\)"):
        cw.Studio(model, tuple(bad.values()))


# ------------------------------------------------------------------ 2. an unknown base
BAD_BASE = {
    "prune": lambda wb: wb.prune(0.5, epochs=0, base="nope"),
    "cluster": lambda wb: wb.cluster(8, epochs=0, base="nope"),
    "quantize": lambda wb: wb.quantize("dynamic", base="nope"),
    "qat": lambda wb: wb.quantize("qat", epochs=0, base="nope"),
    "sensitivity": lambda wb: wb.sensitivity(("prune",), base="nope"),
    "apply_suggestion": lambda wb: wb.apply_suggestion({"prune": {"dense": 0.5}}, base="nope"),
    "sweep": lambda wb: wb.sweep(prune=[0.5], epochs=0, base="nope"),
    "search": lambda wb: wb.search(0.01, base="nope"),
}


@pytest.mark.parametrize("call", BAD_BASE.values(), ids=BAD_BASE.keys())
def test_an_unknown_base_is_a_value_error(wb, call):
    before = wb.variants
    with pytest.raises(ValueError) as raised:
        call(wb)
    message = str(raised.value)
    assert "base='nope'" in message, message  # what was passed
    assert "Variants: original" in message, message  # the names that exist
    assert "wb.variants" in message, message  # how to fix it
    assert wb.variants == before


def test_an_unknown_name_is_a_key_error_too(wb):
    with pytest.raises(KeyError) as raised:
        wb["nope"]
    assert isinstance(raised.value, ValueError)
    message = str(raised.value)
    assert message.startswith("No variant named 'nope'"), message  # not quoted as a repr
    assert "Variants: original" in message and "wb.variants" in message, message
    assert wb["original"] is wb.original


def test_a_panel_shows_the_unknown_name(wb):
    """The Sweep panel's "Use as base" looks a name up and catches KeyError: still caught,
    and its box shows the whole message (no traceback: it is the user's input)."""
    panel = cw.SweepPanel(wb)
    panel.use("nope")
    box = panel._error.value
    assert "<b>UnknownVariantError</b>" in box and "No variant named &#x27;nope&#x27;" in box
    assert "Variants: original" in box and "cw-traceback" not in box


# ------------------------------------------------------------------ 3. wide tables scroll
class _Boxes(HTMLParser):
    """The style of every <div> that encloses a <table>."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.around_tables: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "div":
            self.open.append(dict(attrs).get("style") or "")
        elif tag == "table":
            self.around_tables.append(";".join(self.open))

    def handle_endtag(self, tag):
        if tag == "div" and self.open:
            self.open.pop()


def _scrolls(markup: str) -> bool:
    """Every table of ``markup`` is inside a box that scrolls sideways and is no wider than
    its container."""
    boxes = _Boxes()
    boxes.feed(markup)
    styles = [re.sub(r"\s+", "", s) for s in boxes.around_tables]
    return bool(styles) and all("overflow-x:auto" in s and "max-width:100%" in s
                                for s in styles)


def test_shared_table_helpers_scroll():
    from compresswidgets.widgets._controls import grid_html, table_html

    wide = ["x" * 400] * 6
    assert _scrolls(grid_html(["a"] * 6, [wide]))
    assert _scrolls(table_html([("key", "x" * 400)], columns=2))
    assert table_rows(grid_html(["a", "b"], [[1, "<b>"]])) == [["a", "b"], ["1", "<b>"]]


def _scroll_box(widget) -> bool:
    """An HTML widget that scrolls sideways in its own box when its table is wider than the
    panel (measured in JupyterLab, Notebook 7 and Voila: there, this box is what scrolls),
    without ``width: 100%``, which with the widget's margins overflows the VBox around it."""
    layout = widget.layout
    return layout.overflow == "auto" and layout.max_width == "100%" \
        and layout.width in (None, "", "auto")


def test_benchmark_table_scrolls_inside_its_box(wb):
    panel = cw.BenchmarkPanel(wb)
    assert _scroll_box(panel._table) and _scroll_box(panel._exported)
    rows = [BenchmarkRow(f"variant {i} " + "with a long name " * 8, "original", threads=1,
                         batch=1, runs=2, size_bytes=1000, gzipped_bytes=900, accuracy=0.5,
                         mean_ms=0.1, median_ms=0.1, p90_ms=0.2, memory_mb=1.0,
                         error="a long error message " * 10) for i in range(2)]
    panel.report = BenchmarkReport(rows=rows, metric=wb.metric)  # as a run leaves it
    panel._show(panel.report)
    assert _scrolls(panel._table.value)
    assert len(table_rows(panel._table.value)) == 3  # the header and both rows
    assert _scrolls(panel._repr_mimebundle_()["text/html"])  # the static view too


def test_other_wide_tables_scroll_inside_their_box(wb):
    studio = cw.Studio(wb)
    assert _scroll_box(studio._variants) and _scroll_box(studio.sweep._table)
    assert _scrolls(studio._variants.value)
