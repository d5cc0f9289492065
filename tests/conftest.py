"""Shared fixtures. The demo model's cache goes to a temporary folder, never the user's."""

from __future__ import annotations

import os
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


def pytest_terminal_summary(terminalreporter):
    """The notebooks' wall time and peak memory in the simulated Binder (docs/benchmarks.md
    records them); also written to test-artifacts/binder-notebooks.md."""
    import pathlib

    from _binder import RUNS, summary

    if not RUNS:
        return
    table = summary()
    terminalreporter.write_sep("-", "notebooks in the simulated Binder")
    terminalreporter.write_line(table)
    artifacts = pathlib.Path(__file__).resolve().parents[1] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "binder-notebooks.md").write_text(table + "\n")
