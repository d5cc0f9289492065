"""The Studio in a real JupyterLab: preview, Apply, Stop and a benchmark, as a user does them.

Screenshots of each panel go to docs/img/ (the README shows them).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from _ui import (
    open_studio,
    run_all,
    wait_changed,
    wait_idle,
    wait_image,
    wait_settled,
    wait_visible,
)

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "img"

pytestmark = pytest.mark.browser


def tab(page, studio, title: str):
    studio.locator(".lm-TabBar-tab", has_text=title).first.click()
    panel = {"Prune": ".cw-pruning-panel", "Cluster": ".cw-clustering-panel",
             "Quantize": ".cw-quantization-panel", "Benchmark": ".cw-benchmark-panel",
             "Inspect": ".cw-weight-inspector", "Sensitivity": ".cw-sensitivity-panel",
             "Sweep": ".cw-sweep-panel"}[title]
    located = studio.locator(panel)
    located.wait_for(state="visible", timeout=30_000)
    return located


def slider(panel, label: str):
    """The handle of the slider described by ``label`` (keyboard moves it like a user)."""
    return panel.locator(".widget-slider", has=panel.page.locator("label", has_text=label)) \
        .first.locator(".noUi-handle")


def readout(panel, label: str) -> str:
    return panel.locator(".widget-slider", has=panel.page.locator("label", has_text=label)) \
        .first.locator(".widget-readout").inner_text()


def move_slider(page, panel, label: str, key: str, times: int, *, click: bool = False) -> None:
    """Press ``key`` ``times`` on the slider ``label`` and wait for the preview to redraw."""
    preview = panel.locator("img.cw-preview-plot")
    wait_image(page, preview)
    old = preview.get_attribute("src")
    handle = slider(panel, label)
    if click:  # as a mouse user focuses it (some front ends take keyboard focus back)
        handle.click()
    else:
        handle.focus()
    for _ in range(times):
        handle.press(key)
    wait_changed(page, preview, old)
    wait_settled(page, preview)


WATCH = """el => {
    window.__cwSeen = [];
    const record = () => {
        const bar = el.querySelector('.widget-hprogress .progress-bar');
        const line = (el.innerText.match(/epoch [^\\n]*/) || [''])[0];
        window.__cwSeen.push([line, bar ? bar.style.width : '']);
    };
    new MutationObserver(record).observe(el, {subtree: true, childList: true,
                                             characterData: true, attributes: true});
}"""


def watch(page, panel) -> None:
    """Record every status line and progress-bar width the panel shows from now on."""
    page.evaluate(WATCH, panel.element_handle())


def shoot(locator, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(SHOTS / name))
    assert (SHOTS / name).stat().st_size > 20_000


def test_studio_preview_apply_stop_and_benchmark(page, lab):
    studio = open_studio(page, lab, "studio_app.ipynb")
    variants = studio.locator(".cw-variants")
    assert "original" in variants.inner_text()

    # --- Prune: the preview follows the slider
    prune = tab(page, studio, "Prune")
    move_slider(page, prune, "Sparsity", "ArrowRight", 6)  # 50 % -> 80 %
    assert readout(prune, "Sparsity") == "80%"

    # --- Apply with one epoch: progress, then the result table
    epochs = slider(prune, "Epochs")
    epochs.focus()
    epochs.press("ArrowLeft")  # 2 -> 1
    assert readout(prune, "Epochs") == "1"
    watch(page, prune)
    prune.locator("button", has_text="Apply").click()
    result = prune.locator(".cw-result table")
    result.first.wait_for(state="visible", timeout=240_000)
    page.wait_for_function("el => /made /.test(el.innerText)", arg=prune.element_handle(),
                           timeout=240_000)
    seen = page.evaluate("window.__cwSeen")
    assert any(re.fullmatch(r"epoch 1/1, batch \d+/\d+.*loss \d.*", t) for t, _ in seen), seen
    assert any(0 < float(w.rstrip("%") or 0) < 100 for _, w in seen), seen  # the bar moved
    text = prune.locator(".cw-result").inner_text()
    assert "accuracy" in text and "conv2d_1" in text and "80.0%" in text
    wait_image(page, prune.locator("img.cw-result-plot"))
    prune.locator(".lm-AccordionPanel-title, .jupyter-widget-Collapse-header").first.click()
    page.wait_for_function("el => el.innerText.includes('prune_low_magnitude')",
                           arg=prune.element_handle(), timeout=30_000)
    assert "prune 80%" in variants.inner_text()  # the Studio lists the new variant
    shoot(prune, "pruning-panel.png")

    # --- a long fine-tune, stopped: it stops where it is, long before its 20 epochs
    epochs.focus()
    epochs.press("End")  # 20 epochs
    assert readout(prune, "Epochs") == "20"
    prune.locator("button", has_text="Apply").click()
    page.wait_for_function("el => /epoch \\d+\\/20, batch/.test(el.innerText)",
                           arg=prune.element_handle(), timeout=120_000)
    stop = prune.locator("button", has_text="Stop")
    assert stop.is_enabled() and prune.locator("button", has_text="Apply").is_disabled()
    pressed = time.monotonic()
    stop.click()
    page.wait_for_function("el => /stopped/i.test(el.innerText)", arg=prune.element_handle(),
                           timeout=60_000)
    print(f"Stop took {time.monotonic() - pressed:.1f} s")  # for the log; not asserted
    stopped_at = re.search(r"stopped at epoch (\d+)/20", prune.inner_text())
    assert stopped_at and int(stopped_at.group(1)) < 20, prune.inner_text()[-400:]
    assert prune.locator("button", has_text="Apply").is_enabled()
    assert len(re.findall(r"prune 80%", variants.inner_text())) == 1  # nothing added

    # --- Cluster: preview of k-means, then the screenshot
    cluster = tab(page, studio, "Cluster")
    move_slider(page, cluster, "Clusters", "ArrowLeft", 2)  # 16 -> 12 -> 8
    assert readout(cluster, "Clusters") == "8"
    shoot(cluster, "clustering-panel.png")

    # --- Quantize the pruned variant (dynamic range): per-layer error table
    quantize = tab(page, studio, "Quantize")
    base = quantize.locator(".widget-dropdown", has=page.locator("label", has_text="Base")) \
        .locator("select")
    base.select_option(label="prune 80%")
    quantize.locator("button", has_text="Apply").click()
    page.wait_for_function("el => /made /.test(el.innerText)", arg=quantize.element_handle(),
                           timeout=240_000)
    assert "SNR dB" in quantize.locator(".cw-result").inner_text()
    wait_image(page, quantize.locator("img.cw-result-plot"))
    shoot(quantize, "quantization-panel.png")

    # --- Benchmark: a quick run and its plots
    bench = tab(page, studio, "Benchmark")
    bench.locator("button", has_text="Run").first.click()
    latency = bench.locator("img.cw-latency-plot")
    wait_visible(page, latency, 240_000)
    wait_image(page, latency)
    assert "prune 80% > dynamic" in bench.inner_text()
    shoot(bench, "benchmark-panel.png")
    shoot(studio, "studio.png")


def test_studio_sensitivity_measure_and_apply(page, lab):
    """Which layers: Measure draws the heatmap and the table, the suggestion follows the
    budget, Apply suggestion makes the variants and says what it expected and got."""
    studio = open_studio(page, lab, "studio_app.ipynb")
    panel = tab(page, studio, "Sensitivity")
    panel.locator("button", has_text="Measure").click()
    heatmap = panel.locator("img.cw-sensitivity-plot")
    wait_visible(page, heatmap, 240_000)
    wait_image(page, heatmap)
    page.wait_for_function("el => /measurements on/.test(el.innerText)",
                           arg=panel.element_handle(), timeout=240_000)
    table = panel.locator(".cw-sensitivity-table").inner_text()
    assert "Most sensitive first" in table and "dense_1" in table
    assert "rmse/scale" in panel.locator(".cw-layer-errors").inner_text()
    suggestion = panel.locator(".cw-suggestion")
    assert "Expected before fine-tuning" in suggestion.inner_text()
    shoot(panel, "sensitivity-panel.png")
    epochs = panel.locator(".widget-inline-hbox", has=page.locator("label", has_text="Epochs")) \
        .locator("input")
    epochs.fill("1")
    epochs.press("Enter")
    panel.locator("button", has_text="Apply suggestion").click()
    page.wait_for_function("el => /made /.test(el.innerText)", arg=panel.element_handle(),
                           timeout=240_000)
    result = panel.locator(".cw-result").inner_text()
    assert "gzipped: got" in result and "expected" in result, result
    assert "per layer" in studio.locator(".cw-variants").inner_text()


def field(page, panel, label: str):
    """The input of the text or number field described by ``label``."""
    return panel.locator(".widget-inline-hbox", has=page.locator("label", has_text=label)) \
        .first.locator("input")


def test_studio_sweep_grows_its_plot_and_hands_a_base_to_the_other_tabs(page, lab):
    """Run a sweep: a row per candidate, points on the plot before the sweep ends, the
    front; then Use as base makes a swept variant the Prune tab's base."""
    studio = open_studio(page, lab, "studio_app.ipynb")
    panel = tab(page, studio, "Sweep")
    for label, value in (("Sparsities", "0.5, 0.7, 0.8, 0.9"), ("Epochs", "1")):
        box = field(page, panel, label)
        box.fill(value)
        box.press("Enter")
    page.wait_for_function("el => /prune=\\[0.5, 0.7, 0.8, 0.9\\], epochs=1/.test(el.innerText)",
                           arg=panel.element_handle(), timeout=30_000)
    panel.locator("button.widget-button", has_text="Run").click()
    table = panel.locator(".cw-sweep-table")
    page.wait_for_function("el => /queued|training/.test(el.innerText)",
                           arg=table.element_handle(), timeout=240_000)
    stop = panel.locator("button.widget-button", has_text="Stop")
    plot = panel.locator("img.cw-sweep-plot")
    # the first points are drawn while the other candidates still run (Stop still enabled)
    page.wait_for_function(
        "([img, stop]) => img.offsetParent !== null && img.naturalWidth > 0 && !stop.disabled",
        arg=[plot.element_handle(), stop.element_handle()], polling=100, timeout=240_000)
    partial = table.inner_text()
    assert "done" in partial and re.search(r"queued|training", partial), partial
    page.wait_for_function("el => /variants in \\d+ s/.test(el.innerText)",
                           arg=panel.element_handle(), timeout=300_000)
    wait_image(page, plot)
    final = table.inner_text()
    for name in ("prune 50%", "prune 90% > int8"):
        assert name in final, final
    assert "queued" not in final and "training" not in final
    assert "Pareto front" in panel.locator(".cw-result").inner_text()
    shoot(panel, "sweep-panel.png")
    pick = panel.locator("select").last
    pick.select_option("prune 70%")
    panel.locator("button.widget-button", has_text="Use as base").click()
    page.wait_for_function("el => /is the base of the other tabs/.test(el.innerText)",
                           arg=panel.element_handle(), timeout=30_000)
    prune = tab(page, studio, "Prune")
    assert prune.locator("select").first.input_value() == "prune 70%"
    assert "prune 90% > int8" in studio.locator(".cw-variants").inner_text()


def test_studio_in_notebook_7(page, lab):
    """The same notebook in Notebook 7's interface (served by the same server)."""
    page.goto(f"{lab.url}/notebooks/studio_app.ipynb?token={lab.token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=120_000)
    run_all(page)
    studio = page.locator(".cw-studio")
    wait_visible(page, studio, 240_000)
    wait_idle(page)
    prune = tab(page, studio, "Prune")
    preview = prune.locator("img.cw-preview-plot")
    wait_image(page, preview)
    old = preview.get_attribute("src")
    # Notebook 7 takes keyboard focus back to the cell, so click the track like a mouse user
    track = slider(prune, "Sparsity").locator("xpath=ancestor::*[contains(@class, 'noUi-target')]")
    box = track.bounding_box()
    page.mouse.click(box["x"] + 0.1 * box["width"], box["y"] + box["height"] / 2)
    wait_changed(page, preview, old)
    assert readout(prune, "Sparsity") in ("5%", "10%", "15%")
    assert "original" in studio.locator(".cw-variants").inner_text()
