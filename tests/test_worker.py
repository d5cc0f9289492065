"""The worker process: kept while it stays small, replaced when TensorFlow's leaks make it
big, and a death in the middle of a job is told, not hidden."""

from __future__ import annotations

import os
import signal
import time

import pytest

import compresswidgets as cw
from compresswidgets import _process, tflite


@pytest.fixture
def worker(monkeypatch):
    """Jobs go to a fresh worker process; it is stopped afterwards."""
    monkeypatch.setenv("COMPRESSWIDGETS_IN_PROCESS", "")
    monkeypatch.delenv("COMPRESSWIDGETS_WORKER_MB", raising=False)
    tflite.shutdown()
    yield
    tflite.shutdown()


def _wait_until_gone(pid: int) -> None:
    """Reap our own child (the worker is a subprocess of this process)."""
    proc = _process._process.proc
    assert proc.pid == pid
    proc.wait(timeout=60)


def test_a_small_worker_is_kept_and_a_big_one_is_replaced(demo, worker, monkeypatch):
    model, _ = demo
    tflite.convert(model)
    first = _process.pid()
    assert first is not None and _process._process.rss > 100 * 2**20  # TensorFlow is in it
    tflite.convert(model, "float16")
    assert _process.pid() == first  # under the limit: the same process, TF already imported

    monkeypatch.setenv("COMPRESSWIDGETS_WORKER_MB", "100")  # below what it uses already
    blob = tflite.convert(model)
    second = _process._process.proc.pid
    assert second != first  # the big one was replaced before this job
    assert tflite.op_names(blob)  # which was done
    _wait_until_gone(second)  # and over the limit after it: let go at once, not kept idle
    assert _process.pid() is None
    monkeypatch.delenv("COMPRESSWIDGETS_WORKER_MB")
    tflite.convert(model)
    third = _process.pid()
    assert third not in (None, first, second)


@pytest.mark.parametrize("value", ["lots", "0", "-5", "nan"])
def test_a_bad_memory_limit_says_what_to_set(demo, worker, monkeypatch, value):
    monkeypatch.setenv("COMPRESSWIDGETS_WORKER_MB", value)
    model, _ = demo
    with pytest.raises(ValueError, match=r"COMPRESSWIDGETS_WORKER_MB=.*(megabytes|unset)"):
        tflite.convert(model)  # refused before the job, so no result is lost
    assert _process.pid() is None


def test_a_worker_killed_during_a_fine_tune_is_not_restarted(demo, worker):
    model, data = demo
    wb = cw.Workbench(model, data)

    def kill(report):
        pid = _process.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)

    with pytest.raises(RuntimeError, match=r"(?s)died \(prune\) and was not restarted.*SIGKILL"):
        wb.prune(0.5, epochs=2, progress=kill)
    assert [v.name for v in wb.variants] == ["original"]  # nothing half-made was kept
    made = wb.prune(0.5, epochs=0)  # the next job gets a fresh process
    assert made.sparsity > 0.4 and _process.pid() is not None


def test_a_deferred_model_is_built_once_whoever_asks_first():
    from concurrent.futures import ThreadPoolExecutor

    from compresswidgets import _keras

    built = []

    def build():
        built.append(object())
        return built[-1]

    deferred = _keras.Deferred(build)
    assert not deferred.built and not built
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: _keras.resolve(deferred), range(8)))
    assert len(built) == 1 and all(m is built[0] for m in got) and deferred.built
    assert _keras.resolve(built[0]) is built[0]  # a model is its own answer


def test_spares_start_when_the_kernel_idles_after_a_job(demo, worker, monkeypatch):
    monkeypatch.setenv("COMPRESSWIDGETS_SPARE_WORKERS", "1")
    monkeypatch.setattr(_process, "SPARE_DELAY", 0.2)
    model, _ = demo
    tflite.convert(model)  # a job; then this process idles
    first = _process.pid()
    spares = []
    for _ in range(100):
        spares = _process.spare_pids()
        if spares:
            break
        time.sleep(0.1)
    monkeypatch.setenv("COMPRESSWIDGETS_SPARE_WORKERS", "0")  # no more after this test
    assert len(spares) == 1 and first not in spares
    (spare,) = _process._spares
    assert spare.threads == _process.spare_threads()  # a full local pool's, for a sweep
    tflite.convert(model, "float16")
    assert _process.pid() == first and _process.spare_pids() == spares  # kept for a sweep
    _process.shutdown()  # stops the spares too
    assert _process.spare_pids() == [] and spare.proc.poll() is not None


@pytest.mark.parametrize("value", ["many", "-1", "65"])
def test_a_bad_spare_count_says_what_to_set(demo, worker, monkeypatch, value):
    monkeypatch.setenv("COMPRESSWIDGETS_SPARE_WORKERS", value)
    model, _ = demo
    with pytest.raises(ValueError, match=r"COMPRESSWIDGETS_SPARE_WORKERS=.*0 to 64"):
        tflite.convert(model)  # refused before the job
    assert _process.pid() is None and _process.spare_pids() == []
