"""Every notebook in notebooks/ runs top to bottom (stored without outputs, executed here)."""

from __future__ import annotations

import importlib.util
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
CHECKS = pathlib.Path(__file__).parent / "notebook_checks"


def execute(path: pathlib.Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def outputs(cell) -> list[dict]:
    return cell.get("outputs", [])


def text_of(nb) -> str:
    """Everything the notebook printed or displayed as text (stdout, text/plain, text/html)."""
    parts = []
    for cell in nb.cells:
        for out in outputs(cell):
            parts.append(out.get("text", ""))
            data = out.get("data", {})
            parts.append(str(data.get("text/plain", "")))
            parts.append(str(data.get("text/html", "")))
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
    check = load_check(path.stem)
    if check is not None:
        check(nb, text_of(nb))


def load_check(stem: str):
    """``check(nb, text)`` from tests/notebook_checks/<stem>.py, if there is one: the
    notebook's own assertions (its prose quotes numbers: they must be what it printed)."""
    path = CHECKS / f"{stem}.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(f"notebook_check_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.check


