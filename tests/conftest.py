"""Shared fixtures. The demo model's cache goes to a temporary folder, never the user's."""

from __future__ import annotations

import os
import pathlib
import tempfile

import pytest

_CACHE = tempfile.mkdtemp(prefix="cw-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE  # before anything reads it; kernels inherit it too
# No spare worker processes (TensorFlow imported while the kernel idles) unless a test asks
# for them: on 2 shared cores they would only compete with the next test; kernels inherit it.
os.environ.setdefault("COMPRESSWIDGETS_SPARE_WORKERS", "0")

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


#: Groups that take longest go to the workers first, so that none is the last one left
#: running (the notebooks: the simulated Binder is built once, then ten notebooks).
_FIRST = ("test_notebooks", "zoo-transfer_keras3", "browser", "test_code")


def group_of(nodeid: str) -> str:
    """The tests that share a costly fixture, run by one worker under ``pytest -n`` (as
    ``make test`` runs it): a module (its module-scoped fixtures are built once); all the
    browser tests (one JupyterLab); a zoo family (its trained model: the families spread
    over the workers)."""
    path, _, test = nodeid.partition("::")
    parts = path.split("/")
    if "browser" in parts:
        return "browser"
    if "zoo" in parts and "[" in test:
        return "zoo-" + test.split("[", 1)[1].split("-", 1)[0].rstrip("]")
    return parts[-1].removesuffix(".py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Schedule by :func:`group_of`, in collection order (see ``_FIRST``)."""
    from xdist.scheduler import LoadScopeScheduling

    class Groups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    config.option.loadscopereorder = False
    return Groups(config, log)


@pytest.hookimpl(trylast=True)  # after pytest's own ordering by fixture
def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        group = group_of(item.nodeid)
        return _FIRST.index(group) if group in _FIRST else len(_FIRST)

    items.sort(key=rank)


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
