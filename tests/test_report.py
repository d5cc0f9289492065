"""The HTML report: self-contained (nothing fetched), every name escaped, each section there
(model, variants, benchmark, sensitivity, sweep, per-variant tables, histograms, code)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from _helpers import HOSTILE, table_rows

import compresswidgets as cw

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wb(demo):
    """The demo model; the names a user types (variants, the title) are hostile. (Layer
    names cannot be: tf_keras refuses '<' at build time, and Keras 3 on TensorFlow at its
    first call.)"""
    model, data = demo
    return cw.Workbench(model, data)


@pytest.fixture(scope="module")
def page(wb, tmp_path_factory):
    wb = wb
    pruned = wb.prune(0.6, epochs=0, name="pruned " + HOSTILE)
    wb.quantize("int8", base=pruned, representative_samples=50)
    report = wb.benchmark(runs=3, warmup=1)
    s = wb.sensitivity(("prune",), {"prune": (0.5,)}, samples=100)
    path = wb.report(tmp_path_factory.mktemp("report") / "report.html", benchmark=report,
                     sensitivity=s, title="Review " + HOSTILE)
    return path.read_text()


def test_every_hostile_name_is_escaped(page):
    assert HOSTILE not in page
    assert "<img src=x" not in page and "onerror=alert" not in page.replace(
        "onerror=alert(1)&gt;", "")
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # shown, as text
    tags = set(re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)", page))
    assert tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p",
                    "img", "table", "tr", "th", "td", "ul", "li", "details", "summary", "pre",
                    "div"}, tags


def test_it_needs_nothing_from_outside(page):
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", page)
    assert "url(" not in page
    sources = re.findall(r"<img [^>]*src='([^']+)'", page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)


def test_every_section_is_there(page, wb):
    wb = wb
    for heading in ("The model", "Variants against the original", "Benchmark (LiteRT)",
                    "Sensitivity", "Each variant"):
        assert f"<h2>{heading}</h2>" in page, heading
    rows = table_rows(page)
    variants = [r for r in rows if r and r[0] in {v.name for v in wb.variants}]
    names = {r[0] for r in variants}
    assert {"original", "pruned " + HOSTILE} <= names
    assert page.count("<h3>") == len(wb.variants) - 1  # a section per variant
    assert page.count("<summary>Code</summary>") == len(wb.variants) - 1
    assert "prune_low_magnitude" in page  # the code, escaped in a <pre>
    assert page.count("data:image/png;base64,") >= 1 + 4 + 1 + 2  # overview, bench, heat, hist
    assert "TFLite dtype" in page  # the int8 variant's per-layer table


def test_a_bad_path_or_variant_is_refused(wb, tmp_path):
    with pytest.raises(TypeError, match=r"path of the \.html file"):
        wb.report(None)
    other = cw.Workbench(*cw.demo_model())
    with pytest.raises(ValueError, match="variants of this Workbench"):
        wb.report(tmp_path / "r.html", variants=[other.original])
    assert not (tmp_path / "r.html").exists()
    assert np.isfinite(wb.original.accuracy)


def test_the_studio_saves_the_report_with_what_its_tabs_measured(wb, tmp_path):
    studio = cw.Studio(wb)
    written = studio.save_report(str(tmp_path / "studio report.html"))
    assert written is not None and "saved" in studio._report_status.value
    page = written.read_text()
    assert "<h2>Variants against the original</h2>" in page
    assert studio.save_report(str(tmp_path / "missing-dir" / "x" / "r.html")) is not None
    studio._report_path.value = "   "
    assert studio.save_report() is None and "Report box is empty" in studio._report_status.value
