"""Every notebook in notebooks/ runs top to bottom, in a simulated Binder.

Notebooks are stored without outputs; here each is executed in a fresh virtual environment
built only from binder/requirements.txt and binder/postBuild, with its kernel started through
binder/start, as a learner's Binder session would. Its wall time and the peak resident memory
of the kernel (and of the processes it starts) are recorded and printed at the end of the run;
the memory must fit Binder.
"""

from __future__ import annotations

import importlib.util
import pathlib

import nbformat
import pytest
from _binder import RUNS, BinderEnv, execute

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
CHECKS = pathlib.Path(__file__).parent / "notebook_checks"
#: Binder gives 1-2 GB; a notebook must stay under this (kernel and its processes together).
LIMIT_MB = 1536


@pytest.fixture(scope="session")
def binder(tmp_path_factory):
    return BinderEnv(tmp_path_factory.mktemp("binder")).build()


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
def test_notebook_runs_on_binder(path, binder, tmp_path):
    run = execute(binder, path, tmp_path)
    RUNS[path.stem] = run
    nb = run.notebook
    errors = [o for c in nb.cells for o in outputs(c) if o.get("output_type") == "error"]
    assert not errors, errors
    stderr = "".join(o.get("text", "") for c in nb.cells for o in outputs(c)
                     if o.get("name") == "stderr")
    assert "oneDNN" not in stderr and "absl" not in stderr  # TensorFlow kept quiet
    assert run.tree_peak_mb < LIMIT_MB, (
        f"{path.name} peaked at {run.tree_peak_mb:.0f} MB (kernel {run.kernel_peak_mb:.0f} MB); "
        f"Binder sessions get 1-2 GB")
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
