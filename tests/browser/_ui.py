"""Driving JupyterLab (and Notebook 7) like a user: open, run, wait, accept dialogs."""

from __future__ import annotations


def open_notebook(page, lab, name: str) -> None:
    # reset: a fresh workspace, so notebooks of earlier tests are not reopened beside it
    page.goto(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
    # the kernel must be connected and idle, or a Run All may be lost
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]"
        ".some(el => /ipykernel\\) \\| Idle/.test(el.innerText))", timeout=120_000)


#: the notebook on screen (other tabs' notebooks are hidden, with their own prompts)
CURRENT = ".jp-NotebookPanel:not(.lm-mod-hidden)"
STARTED = f"""() => [...document.querySelectorAll('{CURRENT} .jp-CodeCell .jp-InputPrompt')]
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


def wait_idle(page, timeout_ms: int = 300_000) -> None:
    """Until no cell shows [*]: widget events wait for an idle kernel."""
    page.wait_for_function(
        f"() => ![...document.querySelectorAll('{CURRENT} .jp-CodeCell .jp-InputPrompt')]"
        ".some(el => el.innerText.includes('[*]'))", timeout=timeout_ms)


def wait_image(page, img, timeout_ms: int = 60_000) -> None:
    """Until ``img`` is visible and decoded."""
    img.wait_for(state="visible", timeout=timeout_ms)
    page.wait_for_function("el => el.complete && el.naturalWidth > 0",
                           arg=img.element_handle(), timeout=timeout_ms)


def wait_changed(page, img, old_src: str, timeout_ms: int = 30_000) -> None:
    """Until ``img`` shows another picture than ``old_src``, decoded."""
    page.wait_for_function(
        "([el, old]) => el.getAttribute('src') !== old && el.complete && el.naturalWidth > 0",
        arg=[img.element_handle(), old_src], timeout=timeout_ms)


SETTLED = """([el, quiet]) => {
    const now = Date.now(), src = el.getAttribute('src');
    if (el.__cwSrc !== src) { el.__cwSrc = src; el.__cwSince = now; }
    return el.complete && el.naturalWidth > 0 && now - el.__cwSince >= quiet;
}"""


def wait_settled(page, img, quiet_ms: int = 1500, timeout_ms: int = 60_000) -> None:
    """Until ``img`` has not changed for ``quiet_ms``: every value the front end sent has
    reached the kernel and been drawn (ipywidgets holds back a slider's last values while the
    kernel is busy, and a click sent meanwhile would overtake them)."""
    page.wait_for_function(SETTLED, arg=[img.element_handle(), quiet_ms], polling=100,
                           timeout=timeout_ms)


def open_studio(page, lab, name: str):
    """Open notebook ``name``, run all its cells and wait for its Studio: the Studio's
    locator, once the kernel is idle."""
    open_notebook(page, lab, name)
    run_all(page)
    studio = page.locator(".cw-studio")
    wait_visible(page, studio, 240_000)
    wait_idle(page)
    return studio
