"""The HTML report in Chromium, offline: every image decodes, nothing is requested from the
network, and the page is screenshot for the README (docs/img/report.png)."""

from __future__ import annotations

from pathlib import Path

import pytest

import compresswidgets as cw

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.browser


def test_the_report_renders_offline(page, demo, tmp_path):
    model, data = demo
    wb = cw.Workbench(model, data)
    pruned = wb.prune(0.8, epochs=1, seed=0)
    wb.quantize("int8", base=pruned, representative_samples=50)
    wb.sweep(prune=[0.5, 0.9], epochs=1, then="int8", max_workers=2)
    report = wb.benchmark(runs=5, warmup=1)
    s = wb.sensitivity(("prune",), {"prune": (0.5, 0.8)}, samples=200)
    path = wb.report(tmp_path / "report.html", benchmark=report, sensitivity=s)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    images = page.locator("img")
    assert images.count() >= 8
    broken = page.evaluate("() => [...document.images].filter(i => !i.complete || "
                           "i.naturalWidth === 0).length")
    assert broken == 0
    assert page.locator("h2", has_text="Variants against the original").is_visible()
    shots = ROOT / "docs" / "img"
    shots.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1150, "height": 1500})
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(shots / "report.png"))
    assert (shots / "report.png").stat().st_size > 50_000
    page.locator("details summary", has_text="Code").first.click()
    assert "prune_low_magnitude" in page.locator("details[open] pre").first.inner_text()
