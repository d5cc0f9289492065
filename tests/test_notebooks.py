"""Every notebook in notebooks/ runs top to bottom (stored without outputs, executed here)."""

from __future__ import annotations

import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def execute(path: pathlib.Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def outputs(cell) -> list[dict]:
    return cell.get("outputs", [])


def text_of(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in outputs(cell):
            parts.append(out.get("text", ""))
            parts.append(str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    assert all(not outputs(c) for c in nb.cells if c.cell_type == "code"), (
        f"{path.name} is stored with outputs; clear them (the suite executes notebooks itself)")


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path):
    nb = execute(path)
    errors = [o for c in nb.cells for o in outputs(c) if o.get("output_type") == "error"]
    assert not errors, errors
    stderr = "".join(o.get("text", "") for c in nb.cells for o in outputs(c)
                     if o.get("name") == "stderr")
    assert "oneDNN" not in stderr and "absl" not in stderr  # TensorFlow kept quiet
    check = CHECKS.get(path.stem)
    if check is not None:
        check(nb)


def check_quickstart(nb) -> None:
    widget_cell = next(c for c in nb.cells if "cw.WeightInspector(model)" in c.source)
    bundle = widget_cell.outputs[-1]["data"]
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "distinct values" in bundle["text/html"]  # the static fallback is there too
    text = text_of(nb)
    assert "32,810 parameters" in text
    assert "dense/kernel: 4,096 weights" in text
    figure_cell = next(c for c in nb.cells if "plot_histogram(" in c.source)
    assert any("image/png" in o.get("data", {}) for o in outputs(figure_cell))
    assert "prune 80% > dynamic" in text  # the comparison table
    assert "tfmot.sparsity.keras.prune_low_magnitude" in text  # the variant's code


def check_studio(nb) -> None:
    bundle = nb.cells[-1].outputs[-1]["data"]
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "original" in bundle["text/html"] and "gzipped B" in bundle["text/html"]


CHECKS = {"00_quickstart": check_quickstart, "studio_app": check_studio}
