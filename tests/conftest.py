"""Shared fixtures. The demo model's cache goes to a temporary folder, never the user's."""

from __future__ import annotations

import os
import pathlib
import tempfile

import pytest

_CACHE = tempfile.mkdtemp(prefix="cw-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE  # before anything reads it; kernels inherit it too

import compresswidgets as cw  # noqa: E402
from compresswidgets import _keras  # noqa: E402


@pytest.fixture(scope="session")
def keras():
    """tf_keras, the Keras tfmot understands."""
    return _keras.keras()


@pytest.fixture(scope="session")
def demo():
    """The trained demo model and its data (trained once per session, cached in a temp dir)."""
    return cw.demo_model()


_ARTIFACTS = pathlib.Path(__file__).resolve().parents[1] / "test-artifacts"
_BINDER_TABLE = _ARTIFACTS / "binder-notebooks.md"


def pytest_collection_modifyitems(items):
    """Groups for ``pytest -n`` (``--dist loadgroup``, as ``make test`` runs it): what shares
    a costly fixture runs in one worker. A module is a group (its module-scoped fixtures are
    built once); the browser tests share one JupyterLab; a zoo family's tests share its
    trained model, and the families spread over the workers. The notebooks' group (the
    simulated Binder is built once, then ten notebooks) comes first so that it is not the
    last one left running."""
    for item in items:
        path = item.path
        if "browser" in path.parts:
            group = "browser"
        elif path.parent.name == "zoo" and hasattr(item, "callspec"):
            group = f"zoo-{item.callspec.params.get('zoo', path.stem)}"
        else:
            group = path.stem
        item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: item.path.name != "test_notebooks.py")


def pytest_sessionfinish(session):
    """The notebooks' wall time and peak memory in the simulated Binder, written by the
    process that ran them (an xdist worker, or pytest itself) to
    test-artifacts/binder-notebooks.md; docs/benchmarks.md records them."""
    from _binder import RUNS, summary

    if RUNS:
        _ARTIFACTS.mkdir(exist_ok=True)
        _BINDER_TABLE.write_text(summary() + "\n")


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # pytest itself or xdist's controller
        _BINDER_TABLE.unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter):
    if _BINDER_TABLE.exists():
        terminalreporter.write_sep("-", "notebooks in the simulated Binder")
        terminalreporter.write_line(_BINDER_TABLE.read_text().rstrip())
