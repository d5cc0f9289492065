"""The quickstart in a real JupyterLab: run it, see the inspector, change the tensor."""

from __future__ import annotations

from pathlib import Path

import pytest
from _ui import open_notebook, run_all, wait_changed, wait_idle, wait_image, wait_visible

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "img"

pytestmark = pytest.mark.browser


def test_quickstart_inspector_renders_and_reacts(page, lab):
    open_notebook(page, lab, "00_quickstart.ipynb")
    run_all(page)
    inspector = page.locator(".cw-weight-inspector").last  # the Studio above has one too
    wait_visible(page, inspector, 240_000)
    wait_idle(page)  # let the remaining cells finish: widget events wait for an idle kernel
    hist = inspector.locator("img.cw-histogram-plot")
    wait_image(page, hist)
    stats = inspector.locator(".cw-stats")
    assert "conv2d" in stats.inner_text()
    before_src = hist.get_attribute("src")
    before_png = hist.screenshot()

    picker = inspector.locator(".cw-layer-picker select")
    labels = picker.locator("option").all_inner_texts()
    target = next(label for label in labels if label.startswith("dense/kernel"))
    picker.select_option(label=target)

    wait_changed(page, hist, before_src)
    page.wait_for_function(
        "el => el.innerText.includes('4,096')", arg=stats.element_handle(), timeout=30_000)
    assert hist.screenshot() != before_png  # the plot itself changed, not just its URL
    assert "dense" in stats.inner_text()

    SHOTS.mkdir(parents=True, exist_ok=True)
    inspector.scroll_into_view_if_needed()
    inspector.screenshot(path=str(SHOTS / "inspector.png"))
    assert (SHOTS / "inspector.png").stat().st_size > 20_000
