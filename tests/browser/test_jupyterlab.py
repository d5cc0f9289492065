"""The quickstart in a real JupyterLab: run it, see the inspector, change the tensor."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "img"

pytestmark = pytest.mark.browser


def open_notebook(page, lab, name: str) -> None:
    page.goto(f"{lab.url}/lab/tree/{name}?token={lab.token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
    # the kernel must be connected and idle, or a Run All may be lost
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]"
        ".some(el => /ipykernel\\) \\| Idle/.test(el.innerText))", timeout=120_000)


STARTED = """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
    .some(el => /\\[(\\*|\\d+)\\]/.test(el.innerText))"""


def accept_dialogs(page) -> None:
    """JupyterLab may ask which kernel to use (e.g. when Run All races the kernel's start):
    take the preselected one, as a user would."""
    dialog = page.locator(".jp-Dialog .jp-mod-accept")
    for _ in range(3):
        if not dialog.count() or not dialog.first.is_visible():
            return
        print("accepting a JupyterLab dialog:", page.locator(".jp-Dialog").first.inner_text()[:80])
        dialog.first.click()
        page.wait_for_timeout(500)


def wait_visible(page, locator, timeout_ms: int) -> None:
    """Wait for ``locator`` while accepting any dialog that would block the notebook."""
    waited = 0
    while True:
        accept_dialogs(page)
        try:
            locator.wait_for(state="visible", timeout=5_000)
            return
        except Exception:
            waited += 5_000
            if waited >= timeout_ms:
                raise


def run_all(page) -> None:
    """Run > Run All Cells, once more if the kernel did not pick it up."""
    for attempt in range(3):
        accept_dialogs(page)
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
        try:
            page.wait_for_function(STARTED, timeout=30_000)
            return
        except Exception:
            if attempt == 2:
                raise
            print(f"Run All attempt {attempt + 1} did not start the cells; trying again")
            accept_dialogs(page)


def test_quickstart_inspector_renders_and_reacts(page, lab):
    open_notebook(page, lab, "00_quickstart.ipynb")
    run_all(page)
    inspector = page.locator(".cw-weight-inspector")
    wait_visible(page, inspector, 240_000)
    # let the remaining cells finish: widget events wait for an idle kernel
    page.wait_for_function(
        "() => ![...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
        ".some(el => el.innerText.includes('[*]'))", timeout=300_000)
    hist = inspector.locator("img.cw-histogram-plot")
    hist.wait_for(state="visible", timeout=60_000)
    page.wait_for_function(
        "el => el.complete && el.naturalWidth > 0", arg=hist.element_handle(), timeout=30_000)
    stats = inspector.locator(".cw-stats")
    assert "conv2d" in stats.inner_text()
    before_src = hist.get_attribute("src")
    before_png = hist.screenshot()

    picker = inspector.locator(".cw-layer-picker select")
    labels = picker.locator("option").all_inner_texts()
    target = next(label for label in labels if label.startswith("dense/kernel"))
    picker.select_option(label=target)

    page.wait_for_function(
        "([el, old]) => el.getAttribute('src') !== old && el.complete && el.naturalWidth > 0",
        arg=[hist.element_handle(), before_src], timeout=30_000)
    page.wait_for_function(
        "el => el.innerText.includes('4,096')", arg=stats.element_handle(), timeout=30_000)
    assert hist.screenshot() != before_png  # the plot itself changed, not just its URL
    assert "dense" in stats.inner_text()

    SHOTS.mkdir(parents=True, exist_ok=True)
    inspector.scroll_into_view_if_needed()
    inspector.screenshot(path=str(SHOTS / "inspector.png"))
    assert (SHOTS / "inspector.png").stat().st_size > 20_000
