"""Sweeps: many candidates in parallel worker processes and on a Dask cluster, seeded so
that a rerun and a distributed run give the same rows; the front, the plot, Stop, a worker
that dies, a candidate that fails, and bad input."""

from __future__ import annotations

import concurrent.futures
import importlib.metadata
import math
import os
import re
import signal

import numpy as np
import pytest
from _helpers import weights_bytes
from matplotlib.figure import Figure

import compresswidgets as cw
from compresswidgets import _process
from compresswidgets import search as search_module
from compresswidgets import sweeps as sw
from compresswidgets.plots import pareto_front
from compresswidgets.techniques._common import kernel_of

pytestmark = pytest.mark.slow

LEVELS = [0.5, 0.8]


@pytest.fixture(scope="module")
def wb(demo):
    model, data = demo
    return cw.Workbench(model, data)


@pytest.fixture(scope="module")
def local(wb):
    return wb.sweep(prune=LEVELS, epochs=1, then=["int8"], max_workers=2)


#: what must agree between two runs of the same candidates
SAME = ("name", "level", "then", "seed", "metric", "size_bytes", "gzipped_bytes", "sparsity")


def comparable(rows):
    """The rows without the " #2" that a second run's names get."""
    return [{k: (re.sub(r" #\d+", "", r[k]) if k == "name" else r[k]) for k in SAME}
            for r in rows]


def test_a_sweep_makes_ordinary_variants(wb, local):
    assert local.complete and local.executor == "local" and local.workers == 2
    assert [(r["name"], r["then"]) for r in local.rows] == [
        ("prune 50%", None), ("prune 50% > int8", "int8"),
        ("prune 80%", None), ("prune 80% > int8", "int8")]
    assert all(r["error"] is None for r in local.rows)
    for row, variant in zip(local.rows, local.variants, strict=True):
        assert wb[row["name"]] is variant  # an ordinary variant of the Workbench
        assert variant.accuracy == row["metric"]
        assert variant.gzipped_bytes == row["gzipped_bytes"]
        assert variant.recipe["parent"] == ("original" if row["then"] is None
                                            else row["name"].rsplit(" > ", 1)[0])
    pruned = [v for v in local.variants if not v.is_quantized]
    for v, level in zip(pruned, LEVELS, strict=True):
        assert v.recipe["seed"] == 0 and v.recipe["target_sparsity"] == level
        assert "keras.utils.set_random_seed(0)" in v.code
        for name in v.recipe["layers"]:
            kernel = kernel_of(v.keras_model.get_layer(name)).numpy()
            assert abs(float(np.mean(kernel == 0)) - level) <= 0.02, name
    int8 = [v for v in local.variants if v.is_quantized]
    assert all(str(cw.tflite.input_dtype(v.tflite)) == "float32" for v in int8)
    assert all(v.size_bytes < v.parent.size_bytes / 3 for v in int8)
    # the metric was computed here from the worker's predictions: the same as evaluating
    assert int8[0].accuracy == pytest.approx(
        cw.tflite.evaluate(int8[0].tflite, wb.data.x_test, wb.data.y_test, wb.metric))
    assert pruned[0].accuracy == pytest.approx(
        float(wb.metric(wb.data.y_test, pruned[0].keras_model.predict(wb.data.x_test,
                                                                       verbose=0))))


def test_the_front_is_what_nothing_beats(local):
    rows = local.rows
    front = {v.name for v in local.front()}
    points = [(r["gzipped_bytes"], r["metric"]) for r in rows]
    assert {rows[i]["name"] for i in pareto_front(points)} == front
    for r in rows:
        beaten = any(o["gzipped_bytes"] <= r["gzipped_bytes"] and o["metric"] >= r["metric"]
                     and (o["gzipped_bytes"], o["metric"]) != (r["gzipped_bytes"], r["metric"])
                     for o in rows)
        assert (r["name"] in front) != beaten, r["name"]
    sizes = [v.gzipped_bytes for v in local.front()]
    assert sizes == sorted(sizes)
    best = local.best(max_drop=1.0)
    assert best.gzipped_bytes == min(r["gzipped_bytes"] for r in rows)


def test_the_plot_shows_every_row_and_the_front(local):
    axes = local.plot()
    left, right = axes
    plotted = sum(len(c.get_offsets()) for c in left.collections[:-1])
    assert plotted == len(local.rows)
    assert left.get_xlabel() == "gzipped size (KiB)"
    assert right.get_xlabel() == "target sparsity"
    front_line = [line for line in left.get_lines() if line.get_label() == "Pareto front"]
    assert len(front_line[0].get_xdata()) == len(local.front())
    one = local.plot(Figure().subplots())
    assert one.get_xlabel() == "gzipped size (KiB)"


def test_a_rerun_gives_the_same_numbers(wb, local):
    again = wb.sweep(prune=LEVELS, epochs=1, then=["int8"], max_workers=2)
    assert comparable(again.rows) == comparable(local.rows)
    assert {r["name"] for r in again.rows}.isdisjoint({r["name"] for r in local.rows})


def test_a_dask_cluster_gives_the_same_rows(wb, local):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None, silence_logs=40) as cluster, \
            distributed.Client(cluster) as client:
        remote = wb.sweep(prune=LEVELS, epochs=1, then=["int8"],
                          executor=client.get_executor())
        dask_pids = set(client.run(os.getpid).values())
    assert remote.executor == "dask" and remote.complete
    assert comparable(remote.rows) == comparable(local.rows)
    assert {int(r["worker"].rsplit(":", 1)[1]) for r in remote.rows} <= dask_pids


def test_a_grid_clusters_each_pruned_variant_keeping_its_zeros(wb):
    grid = wb.sweep(prune=[0.6], cluster=[8], epochs=0, max_workers=1)
    pruned, clustered = grid.variants
    assert clustered.parent is pruned and clustered.recipe["preserve_sparsity"] is True
    for name in clustered.recipe["layers"]:
        kernel = kernel_of(clustered.keras_model.get_layer(name)).numpy()
        before = kernel_of(pruned.keras_model.get_layer(name)).numpy()
        assert np.unique(kernel).size <= 8 + 1  # eight centroids and the preserved zero
        assert np.all(kernel[before == 0] == 0), name


def test_stop_keeps_the_finished_candidates_and_adds_no_half_variant(wb):
    before = len(wb.variants)
    events = []

    def progress(p):  # Stop while the second candidate trains
        events.append(p.event)
        if p.event == "batch" and p.label == "prune 40%":
            p.stop()

    stopped = wb.sweep(prune=[0.3, 0.4, 0.6, 0.7], epochs=2, max_workers=1, progress=progress)
    assert not stopped.complete
    assert len(stopped.rows) == 1 and stopped.rows[0]["error"] is None
    assert len(wb.variants) == before + 1
    assert events.count("finished") == 1


def test_a_worker_that_dies_is_replaced_and_its_candidate_retried(wb):
    killed = []

    def progress(p):
        if p.event == "batch" and not killed:
            pid = sw.local_pool(1, _process.cpu_count()).pids()[0]
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    result = wb.sweep(prune=[0.55], epochs=1, max_workers=1, progress=progress)
    assert killed and result.complete
    row = result.rows[0]
    assert row["error"] is None and int(row["worker"].rsplit(":", 1)[1]) != killed[0]


class Flaky(concurrent.futures.Executor):
    """An executor whose worker is lost whenever it runs one given candidate."""

    def __init__(self, pool, fails: str):
        self.pool, self.fails, self.tries = pool, fails, 0

    def submit(self, fn, /, *args, **kwargs):
        if len(args) == 2 and args[1]["label"] == self.fails:
            self.tries += 1
            future = concurrent.futures.Future()
            future.set_exception(OSError("Connection to the worker lost"))
            return future
        return self.pool.submit(fn, *args, **kwargs)


def test_a_candidate_that_keeps_failing_is_an_error_row_and_the_rest_go_on(wb):
    flaky = Flaky(sw.local_pool(1, 1), "prune 65%")
    result = wb.sweep(prune=[0.45, 0.65], epochs=0, executor=flaky)
    assert flaky.tries == 2  # retried once
    by_name = {r["name"]: r for r in result.rows}
    assert by_name["prune 45%"]["error"] is None
    assert "failed 2 time(s)" in by_name["prune 65%"]["error"]
    assert "Connection to the worker lost" in by_name["prune 65%"]["error"]
    assert [v.name for v in result.variants] == ["prune 45%"]


class Lacking(concurrent.futures.ThreadPoolExecutor):
    """Workers without compresswidgets: the probe says so, or (``probe_ok``) the candidate."""

    def __init__(self, probe_ok: bool = False):
        super().__init__(1)
        self.probe_ok = probe_ok

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        if fn is importlib.metadata.version and args[0] == "compresswidgets" and not \
                self.probe_ok:
            future.set_exception(importlib.metadata.PackageNotFoundError("compresswidgets"))
            return future
        if fn is importlib.metadata.version:
            return super().submit(fn, *args, **kwargs)
        future.set_exception(ModuleNotFoundError("No module named 'compresswidgets'",
                                                 name="compresswidgets"))
        return future


def test_a_worker_without_compresswidgets_is_named(wb):
    before = len(wb.variants)
    with pytest.raises(RuntimeError, match=r"lack compresswidgets .*pip install "
                                           r"compresswidgets\[dask\]"):
        wb.sweep(prune=[0.5], epochs=0, executor=Lacking())
    result = wb.sweep(prune=[0.5], epochs=0, executor=Lacking(probe_ok=True))
    (row,) = result.rows
    assert "lacks the module 'compresswidgets'" in row["error"] and "install" in row["error"]
    assert len(wb.variants) == before


@pytest.mark.parametrize(("kwargs", "kind", "message"), [
    ({}, ValueError, r"neither prune= nor cluster="),
    ({"prune": []}, ValueError, r"prune=\[\] has no level"),
    ({"prune": 0.5}, TypeError, r"prune must be a list of levels, but got .*float"),
    ({"prune": [0.5, 1.5]}, ValueError, r"prune\[1\]"),
    ({"cluster": [16, 1]}, ValueError, r"cluster\[1\]"),
    ({"prune": [0.5], "then": ["qat"]}, ValueError, r"then=\['qat'\] has 'qat'"),
    ({"prune": [0.5], "executor": "dask"}, TypeError, r"concurrent.futures.Executor"),
    ({"prune": [0.5], "epochs": -1}, ValueError, r"epochs"),
    ({"prune": [0.1, 0.2, 0.3], "cluster": [4, 8, 16, 32], "max_candidates": 10}, ValueError,
     r"15 candidates \(3 prune \+ 3 x 4 cluster\).*about \d+ minutes on \d+ worker.*"
     r"max_candidates=15"),
])
def test_bad_input_is_refused_before_anything_runs(wb, kwargs, kind, message):
    before = list(wb.variants)
    with pytest.raises(kind, match=message):
        wb.sweep(**kwargs)
    assert list(wb.variants) == before


def test_the_pool_is_sized_by_cores_and_memory(monkeypatch):
    monkeypatch.setattr(_process, "cpu_count", lambda: 8)
    monkeypatch.setattr(_process, "available_bytes", lambda: 10 * 2**30)
    assert sw.pool_size(2**30, 20) == 8  # cores
    assert sw.pool_size(3 * 2**30, 20) == 2  # 80 % of 10 GB holds two of 3 GB
    assert sw.pool_size(2**30, 3) == 3  # no more workers than candidates
    assert sw.pool_size(100 * 2**30, 20) == 1  # always one
    assert sw.pool_size(2**30, 20, max_workers=5) == 5
    with pytest.raises(ValueError, match="max_workers"):
        sw.pool_size(2**30, 20, max_workers=0)


def test_a_model_that_cannot_travel_runs_in_the_kernel(demo, keras):
    model, data = demo

    def notebook_loss(y_true, y_pred):  # a function of a notebook cell: not importable
        return keras.losses.sparse_categorical_crossentropy(y_true, y_pred)

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.compile(optimizer="adam", loss=notebook_loss, metrics=["accuracy"])
    before = weights_bytes(clone)
    here = cw.Workbench(clone, data)
    result = here.sweep(prune=[0.5], epochs=1)
    assert result.executor == "kernel" and "in the kernel" in result.notes[0]
    (row,) = result.rows
    assert row["error"] is None and math.isfinite(row["metric"])
    assert weights_bytes(clone) == before
    with pytest.raises(ValueError, match="cannot travel to the executor's workers"):
        here.sweep(prune=[0.5], executor=concurrent.futures.ThreadPoolExecutor(1))


def test_search_finds_a_smaller_variant_within_the_drop_than_uniform_half(wb):
    uniform = wb.sweep(prune=[0.5], epochs=2, then="int8")
    best_uniform = min(v.gzipped_bytes for v in uniform.variants)
    wb.sensitivity(techniques=("prune",), samples=None)  # guides the search
    best = wb.search(max_drop=0.01, budget=8)
    found = wb.sweeps[-1]
    assert wb[best.name] is best
    drop = wb.original.accuracy - best.accuracy
    assert drop <= 0.01 + 1e-12
    assert best.gzipped_bytes < best_uniform
    assert len({r["candidate"] for r in found.rows}) <= 8
    assert any(r["targets"] for r in found.rows)  # the guided family took part
    qualifying = [r for r in found.rows if r["error"] is None and r["drop"] <= 0.01 + 1e-12]
    assert best.gzipped_bytes == min(r["gzipped_bytes"] for r in qualifying)


def test_search_stopped_returns_the_best_so_far(wb):
    def progress(p):
        if p.event == "finished":
            p.stop()

    best = wb.search(max_drop=0.05, budget=6, epochs=0, progress=progress)
    found = wb.sweeps[-1]
    assert not found.complete
    qualifying = [r for r in found.rows if r["error"] is None and r["drop"] <= 0.05]
    assert (best is None) == (not qualifying)
    if best is not None:
        assert best.gzipped_bytes == min(r["gzipped_bytes"] for r in qualifying)


def test_search_says_when_nothing_qualifies(wb, monkeypatch):
    monkeypatch.setattr(search_module, "FIRST_LEVELS", (0.95, 0.97))  # one-shot: a sure drop
    before = len(wb.variants)
    with pytest.raises(ValueError, match=r"No candidate stayed within max_drop=0.*closest.*"
                                         r"wb.sweeps\[-1\].*larger max_drop"):
        wb.search(max_drop=0.0, budget=2, epochs=0, then=None, objective="size_bytes")
    assert len(wb.variants) > before  # what it made is kept
    with pytest.raises(ValueError, match="objective"):
        wb.search(objective="speed")


def test_an_idle_pool_process_gives_its_memory_back():
    import time

    pool = _process.WorkerPool(1, idle_seconds=1.0)
    try:
        first = pool.submit(os.getpid).result(timeout=60)
        assert pool.pids() == [first]
        deadline = time.monotonic() + 30
        while pool.pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pool.pids() == []  # closed while idle
        second = pool.submit(os.getpid).result(timeout=60)
        assert second != first  # the next job started a new one
        with pytest.raises(TypeError):
            pool.submit(math.factorial, "x").result(timeout=60)  # its exception, in the Future
    finally:
        pool.shutdown()


def test_search_for_latency_benchmarks_the_qualifying_variants(wb):
    best = wb.search(max_drop=0.05, objective="median_ms", budget=2, epochs=0)
    found = wb.sweeps[-1]
    qualifying = {r["name"] for r in found.rows if r["error"] is None and r["drop"] <= 0.05}
    assert best is not None and best.name in qualifying


def test_a_sweep_adopts_the_spares_and_gives_the_same_rows(wb, local, monkeypatch):
    monkeypatch.setenv("COMPRESSWIDGETS_SPARE_WORKERS", "2")
    sw.shutdown()  # no pool process left from the sweeps before: only the spares are warm
    threads = max(1, _process.cpu_count() // 2)  # those of the two workers of `local`
    spares = _process.start_spares(threads=threads)  # as the kernel does once it idles
    assert len(spares) == 2 and _process.spare_pids() == spares
    assert _process.take_spare(threads + 1) is None  # other threads: never adopted
    try:
        again = wb.sweep(prune=LEVELS, epochs=1, then=["int8"], max_workers=2)
        pool = sw.local_pool(2, threads)
        assert sorted(pool.adopted) == sorted(spares)  # no process was started cold
        assert _process.spare_pids() == []
        assert {int(r["worker"].rsplit(":", 1)[1]) for r in again.rows} == set(spares)
        # warmed by a toy candidate, with the threads of the pool's own processes: the
        # same rows as the cold processes of `local`
        assert comparable(again.rows) == comparable(local.rows)
    finally:
        _process.close_spares()
