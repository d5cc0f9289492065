"""The engine of a sweep: candidates onto an Executor, answers into Variants and rows.

The kernel validates every candidate before anything runs, sends each one as a job
(:func:`compresswidgets._candidate.run_candidate`), and turns each answer into the Workbench's
variants as it arrives, so observers (the panels) see them appear one by one. A candidate
whose worker failed (it died, or a Dask worker was lost) is sent once more, then becomes an
error row; a candidate whose own code failed becomes an error row at once. Dependent
candidates (a grid's cluster levels on a pruned variant) are sent when their base is made.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import importlib.metadata
import os
import shutil
import tempfile
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from compresswidgets import _candidate, _jobs, _keras, _process
from compresswidgets import sweeps as sw
from compresswidgets._keras import describe
from compresswidgets._training import CompileSettings, compile_settings, seeded_code
from compresswidgets.techniques import clustering, pruning, quantization
from compresswidgets.techniques._common import LayerSelection, steps_per_epoch
from compresswidgets.variant import Variant, keras_predict

if TYPE_CHECKING:
    from compresswidgets.workbench import Workbench

MODULES = {"prune": pruning, "cluster": clustering}


def check_executor(executor: Any) -> None:
    if not isinstance(executor, concurrent.futures.Executor):
        raise TypeError(
            f"executor must be a concurrent.futures.Executor, but got {describe(executor)}. "
            "Pass None for local worker processes, or e.g. "
            "`dask.distributed.Client('tcp://scheduler:8786').get_executor()`.")


def dask_client(executor: Any) -> Any:
    """The Dask client behind ``Client.get_executor()``, else None."""
    if type(executor).__module__.split(".")[0] == "distributed":
        return getattr(executor, "_client", None)
    return None


def check_workers(executor: concurrent.futures.Executor, timeout: float = 120) -> list[str]:
    """Ask a worker of ``executor`` for the versions of :data:`sweeps.REQUIREMENTS`; raise
    a three-part error naming what it lacks; return notes on versions that differ."""
    asked = {name: executor.submit(importlib.metadata.version, name)
             for name in sw.REQUIREMENTS}
    missing, notes = [], []
    for name, future in asked.items():
        try:
            theirs = future.result(timeout=timeout)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
            continue
        except concurrent.futures.TimeoutError:
            raise RuntimeError(
                f"The executor ran no task within {timeout:.0f} s (asked for the version of "
                f"{name}). Expected workers that take tasks: check that the cluster has "
                "workers (client.scheduler_info()['workers']), or pass executor=None.") from None
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            ours = importlib.metadata.version(name)
            if theirs != ours:
                notes.append(f"A worker has {name} {theirs}, this kernel {ours}: results may "
                             "differ from a local run.")
    if missing:
        raise RuntimeError(
            f"The executor's workers lack {', '.join(missing)} (not installed there). A "
            "candidate runs compresswidgets with TensorFlow, tf-keras and tfmot on the "
            "worker. Install the same versions as here on every worker, e.g. `pip install "
            "compresswidgets[dask]` in the workers' environment (or a Dask PipInstall plugin), "
            "then run the sweep again.")
    return notes


def missing_module(exc: BaseException) -> str | None:
    """The module a worker could not import, when that is why a candidate failed."""
    if isinstance(exc, ModuleNotFoundError):
        return exc.name or str(exc)
    text = str(exc)
    if "No module named" in text:
        return text.split("No module named", 1)[1].strip(" '\"")
    return None


def estimate_seconds(model: Any, data: Any, epochs: int, batch_size: int, candidates: int,
                     workers: int) -> float:
    """A rough wall time: a training step as three forward passes of one batch (timed
    here, eagerly), times the steps, plus a few seconds a candidate for conversion."""
    x = data.x_train[:batch_size]
    keras_predict(model, x)
    start = time.perf_counter()
    keras_predict(model, x)
    step = 3 * (time.perf_counter() - start)
    each = epochs * steps_per_epoch(len(data.x_train), batch_size) * step + 3.0
    return each * -(-candidates // workers)


class Engine:
    """One sweep's run: see :meth:`Workbench.sweep` for the arguments."""

    def __init__(self, wb: Workbench, base: Variant, candidates: list[sw.Candidate], *,
                 epochs: int, seed: int, layers: LayerSelection, executor: Any,
                 progress: Any, max_workers: int | None, threads: int | None) -> None:
        self.wb, self.base, self.candidates = wb, base, candidates
        self.epochs, self.seed, self.layers = epochs, seed, layers
        self.progress = progress
        self.model = wb._tfmot_model(base, "A sweep")
        self.settings = {t: compile_settings(wb._reference, wb.data, None,
                                             MODULES[t].DEFAULT_LEARNING_RATE)
                         for t in {c.technique for c in candidates}}
        portable = _jobs.portable(self.model) and all(s.portable for s in self.settings.values())
        self.notes: list[str] = []
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.rows: list[dict[str, Any]] = []
        self.made: dict[str, Variant] = {}
        self.failure: BaseException | None = None
        self.pending: dict[concurrent.futures.Future, sw.Candidate] = {}
        self.own: concurrent.futures.Executor | None = None
        self.folder: str | None = None
        if executor is None and (_jobs.in_process() or not portable):
            self.kind, self.workers, self.threads = "kernel", 1, None
            self.executor = self.own = concurrent.futures.ThreadPoolExecutor(1)
            self.notes.append(
                "The candidates ran one after another in the kernel: "
                + ("COMPRESSWIDGETS_IN_PROCESS is set." if _jobs.in_process() else
                   "the model (custom layers) or its compile settings (a loss or metric "
                   "defined in a notebook) cannot be rebuilt in a worker process."))
        elif executor is None:
            self.kind = "local"
            # the pool (and so the threads of a candidate) does not depend on how many
            # candidates this sweep has: the same numbers for a level in any sweep
            possible = sw.pool_size(sw.worker_bytes(self.model, wb.data), 1 << 20, max_workers)
            self.workers = min(possible, len(candidates))
            self.threads = threads or max(1, _process.cpu_count() // possible)
            self.executor = sw.local_pool(possible, self.threads)
            # its processes start (spares adopted) while the candidates are checked here
            self.executor.prestart(self.workers)
        else:
            check_executor(executor)
            if not portable:
                raise ValueError(
                    "This model cannot travel to the executor's workers: it has custom layers, "
                    "or was compiled with a loss or metric defined in a notebook (not "
                    "importable by name). Expected built-in tf_keras layers and importable "
                    "loss/metrics; pass executor=None to run the sweep here, or move the "
                    "loss into a module the workers can import.")
            self.kind = "dask" if dask_client(executor) is not None else "executor"
            self.executor, self.workers, self.threads = executor, 0, threads or 1
            self.notes.extend(check_workers(executor))
        self.shared = self._shared()

    # ------------------------------------------------------------------ the shared part
    def _shared(self) -> Any:
        key = uuid.uuid4().hex
        data = self.wb.data
        if self.kind == "kernel":
            return {"key": key, "live": {"model": self.model, "data": data}}
        if self.kind == "local":  # the data: the Workbench's own file, written once
            data_file = self.wb._train_file()
            self.folder = tempfile.mkdtemp(prefix="cw-sweep-", dir=os.path.dirname(data_file))
            _jobs.write_model(self.model, self.folder)
            return {"key": key, "folder": self.folder, "data": data_file}
        inline = {"key": key, "model_json": self.model.to_json(),
                  "weights": self.model.get_weights(),
                  "data": (data.x_train, data.y_train, data.x_test)}
        client = dask_client(self.executor)
        if client is not None:  # once to every worker, not once per candidate
            return client.scatter([inline], broadcast=True, hash=False)[0]
        return inline

    # ------------------------------------------------------------------ sending
    def _job(self, c: sw.Candidate) -> dict[str, Any]:
        settings = self.settings[c.technique]
        job: dict[str, Any] = {
            "technique": c.technique, "params": c.params, "seed": self.seed,
            "threads": self.threads, "label": c.label, "attempt": c.attempts,
            "then": [(m, sw.REPRESENTATIVE_SAMPLES if m == "int8" else 0) for m in c.then],
            "settings": settings if self.kind == "kernel" else settings.wire()}
        if c.base is not self.base:
            model = c.base.keras_model
            job["model"] = model if self.kind == "kernel" else {
                "json": model.to_json(), "weights": model.get_weights()}
        if self.kind == "kernel":
            job["stop"] = self.stop_event
        return job

    def _validate(self, c: sw.Candidate) -> None:
        model = self.wb._tfmot_model(c.base, "A sweep")
        if c.technique == "prune":
            c.params = pruning.validate(
                model, self.wb.data, target_sparsity=c.level, schedule="polynomial",
                structure=None, layers=self.layers, epochs=self.epochs,
                batch_size=self.wb.batch_size)
            step = (f"prune {c.params.target_sparsity:.0%}"
                    + (" per layer" if c.params.per_layer else ""))
        else:
            pruned = any(v.technique == "prune" for v in c.base.lineage)
            c.params = clustering.validate(
                model, self.wb.data, clusters=c.level, init="kmeans++",
                preserve_sparsity=pruned, layers=self.layers, epochs=self.epochs,
                batch_size=self.wb.batch_size)
            step = f"cluster {c.params.clusters}"
        c.label = step if c.base is self.wb.original else f"{c.base.name} > {step}"

    def _send(self, c: sw.Candidate, pending: dict) -> None:
        c.attempts += 1
        job = self._job(c)
        if self.kind == "local":
            future = self.executor.submit_with_progress(
                _candidate.run_candidate, (self.shared, job), {},
                functools.partial(self._batch, c))
        else:
            future = self.executor.submit(_candidate.run_candidate, self.shared, job)
        pending[future] = c
        self._tell("sent", c)

    # ------------------------------------------------------------------ progress
    def _tell(self, event: str, c: sw.Candidate, rows: tuple = (),
              detail: dict | None = None) -> bool:
        if self.progress is None:
            return self.stop_event.is_set()
        done = len({r["candidate"] for r in self.rows})  # a candidate's rows come together
        report = sw.SweepProgress(event, c.label, done, len(self.candidates),
                                  self.running, rows, dict(detail or {}))
        with self.lock:
            try:
                self.progress(report)
            except BaseException as exc:  # stop, then raise it to the caller
                self.failure = self.failure or exc
                report.stop()
        if report.stop_requested:
            self.stop_event.set()
        return self.stop_event.is_set()

    def _batch(self, c: sw.Candidate, message: dict) -> bool:
        return self._tell("batch", c, detail=message)

    @property
    def running(self) -> int:
        return sum(1 for future in list(self.pending) if future.running())

    # ------------------------------------------------------------------ the run
    def run(self) -> sw.Sweep:
        start = time.perf_counter()
        pending = self.pending
        try:
            for c in self.candidates:  # every independent level is checked before any runs
                if isinstance(c.base, Variant):
                    self._validate(c)
            for c in self.candidates:
                if isinstance(c.base, Variant):
                    self._send(c, pending)
            stopped = False
            while pending:
                done, _ = concurrent.futures.wait(
                    pending, timeout=0.25, return_when=concurrent.futures.FIRST_COMPLETED)
                if self.stop_event.is_set() and not stopped:
                    stopped = True
                    self._stop(pending)
                    if self.kind in ("dask", "executor"):
                        break  # running tasks cannot be interrupted there: not waited for
                for future in done:
                    self._finish(pending.pop(future), future, pending)
        finally:
            self._release()
        if self.failure is not None:
            raise self.failure
        return sw.Sweep(self.rows, self.made, self.wb.metric,
                        complete=not self.stop_event.is_set(), executor=self.kind,
                        workers=self.workers, seconds=time.perf_counter() - start,
                        notes=tuple(self.notes))

    def _stop(self, pending: dict) -> None:
        for future in pending:
            future.cancel()
        if isinstance(self.executor, _process.WorkerPool):
            self.executor.stop_running()

    def _release(self) -> None:
        if self.own is not None:
            self.own.shutdown(wait=True)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        client = dask_client(self.executor)
        if client is not None:
            with contextlib.suppress(Exception):
                client.cancel([self.shared])

    def _finish(self, c: sw.Candidate, future: concurrent.futures.Future,
                pending: dict) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            module = missing_module(exc)
            if module is None and c.attempts < 2 and not self.stop_event.is_set():
                self._tell("retry", c, detail={"error": f"{type(exc).__name__}: {exc}"})
                self._send(c, pending)
                return
            self._failed(c, _worker_error(exc, module, c.attempts), pending)
            return
        answer = future.result()
        if answer.get("stopped"):
            return
        if "error" in answer:
            self._failed(c, answer["error"], pending)
            return
        rows = self._accept(c, answer)
        self._tell("finished", c, rows)
        for child in self.candidates:
            if child.base == c.index and not self.stop_event.is_set():
                child.base = self.made[rows[0]["name"]]
                try:
                    self._validate(child)
                except (ValueError, TypeError) as exc:
                    self._failed(child, str(exc), pending)
                    continue
                self._send(child, pending)

    def _failed(self, c: sw.Candidate, message: str, pending: dict) -> None:
        row = {"candidate": c.index, "name": c.label or f"{c.technique} {c.level}",
               "technique": c.technique, "level": _overall(c),
               "targets": dict(c.level) if isinstance(c.level, dict) else None,
               "base": c.base.name if isinstance(c.base, Variant) else None, "then": None,
               "seed": self.seed, "metric": None, "delta": None, "drop": None,
               "size_bytes": None, "gzipped_bytes": None, "sparsity": None, "seconds": None,
               "worker": None, "error": message}
        self.rows.append(row)
        self._tell("finished", c, (row,))
        for child in self.candidates:
            if child.base == c.index:
                child.base = c.base if isinstance(c.base, Variant) else None
                child.label = f"{c.label} > {child.technique} {child.level}"
                self._failed(child, f"Not run: its base {c.label!r} failed.", pending)

    # ------------------------------------------------------------------ answers -> variants
    def _accept(self, c: sw.Candidate, answer: dict[str, Any]) -> tuple[dict[str, Any], ...]:
        wb, metric, y_test = self.wb, self.wb.metric, self.wb.data.y_test
        if "model" in answer:
            model = answer["model"]
        else:
            with _keras._quiet_native_logs():
                model = _jobs.from_parts(answer["json"], answer["weights"])
        settings: CompileSettings = self.settings[c.technique]
        done = _jobs.TechniqueResult(model, tuple(answer["notes"]), answer.get("tflite"), None)
        code = seeded_code(MODULES[c.technique].code(c.params, settings), self.seed,
                           "the sweep's seed: the same numbers on a rerun")
        variant = wb._made(wb._unique(c.label), c.params, c.base, done, code,
                           recipe={"seed": self.seed},
                           metrics={"keras_accuracy": metric(y_test, answer["y_pred"])})
        wb._add(variant)
        self.made[variant.name] = variant
        worker = f"{answer['host']}:{answer['pid']}"
        rows = [self._row(c, variant, None, answer["seconds"], worker, variant.sparsity)]
        for mode in c.then:
            made = answer["then"].get(mode, {"error": "not converted"})
            if "error" in made:
                rows.append({**rows[0], "name": f"{variant.name} > {mode}", "then": mode,
                             "metric": None, "delta": None, "drop": None, "size_bytes": None,
                             "gzipped_bytes": None, "error": made["error"]})
                continue
            params = quantization.validate(
                variant.export_model, wb.data, mode=mode,
                representative_samples=sw.REPRESENTATIVE_SAMPLES, epochs=1, layers=None,
                batch_size=wb.batch_size, lineage=wb._lineage(variant))
            child = wb._add(wb._converted(
                wb._unique(f"{variant.name} > {mode}"), params, variant, made["tflite"],
                {"tflite_accuracy": metric(y_test, made["y_pred"])}))
            self.made[child.name] = child
            rows.append(self._row(c, child, mode, answer["seconds"], worker, variant.sparsity))
        self.rows.extend(rows)
        return tuple(rows)

    def _row(self, c: sw.Candidate, v: Variant, then: str | None, seconds: float, worker: str,
             sparsity: float) -> dict[str, Any]:
        reference = self.wb.original.accuracy
        value = v.accuracy
        per_layer = isinstance(c.level, dict)
        return {"candidate": c.index, "name": v.name, "technique": c.technique,
                "level": _overall(c), "targets": dict(c.level) if per_layer else None,
                "base": c.base.name, "then": then, "seed": self.seed,
                "metric": value, "delta": value - reference,
                "drop": self.wb.metric.drop(reference, value),
                "size_bytes": v.size_bytes, "gzipped_bytes": v.gzipped_bytes,
                "sparsity": sparsity, "seconds": seconds, "worker": worker, "error": None}


def _overall(c: sw.Candidate) -> Any:
    """A candidate's level as one number: per-layer targets give their overall sparsity."""
    if isinstance(c.level, dict):
        return c.params.target_sparsity if c.params is not None else None
    return c.level


def _worker_error(exc: BaseException, module: str | None, attempts: int) -> str:
    if module is not None:
        return (f"The worker lacks the module {module!r} ({type(exc).__name__}). A candidate "
                "runs compresswidgets, TensorFlow, tf-keras and tfmot on the worker: install "
                "them there (`pip install compresswidgets[dask]`), then run the sweep again.")
    return (f"Its worker failed {attempts} time(s) ({type(exc).__name__}: {exc}); the candidate "
            "was retried once and then given up. The worker may have run out of memory: "
            "fewer workers (max_workers=) or a smaller batch_size may help.")

