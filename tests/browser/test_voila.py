"""The Studio as a standalone Voila app: `voila notebooks/studio_app.ipynb`, used as a no-code
station. Open it, apply a technique, see the result."""

from __future__ import annotations

import pytest
from _ui import wait_image
from test_studio_browser import SHOTS, move_slider, slider, tab

pytestmark = pytest.mark.browser


def test_voila_app_applies_pruning(page, voila):
    # Voila runs the whole notebook before the page is complete (the demo model, the Studio)
    page.goto(f"{voila.url}/?token={voila.token}", timeout=240_000)
    studio = page.locator(".cw-studio")
    studio.wait_for(state="visible", timeout=240_000)
    assert "import compresswidgets" not in page.inner_text("body")  # no code, only the app
    prune = tab(page, studio, "Prune")
    epochs = slider(prune, "Epochs")
    epochs.click()
    epochs.press("Home")  # one-shot: no fine-tuning, quick for a demo station
    move_slider(page, prune, "Sparsity", "ArrowRight", 4, click=True)  # 50 % -> 70 %
    prune.locator("button", has_text="Apply").click()
    page.wait_for_function("el => /made /.test(el.innerText)", arg=prune.element_handle(),
                           timeout=240_000)
    assert "70.0%" in prune.locator(".cw-result").inner_text()
    wait_image(page, prune.locator("img.cw-result-plot"))
    assert "prune 70%" in studio.locator(".cw-variants").inner_text()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "voila-studio.png"))
