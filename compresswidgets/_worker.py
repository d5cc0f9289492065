"""A separate, recycled Python process for the work that leaks memory in TensorFlow 2.21.

``TFLiteConverter.convert()`` and every ``fit`` leave graphs behind that the user's kernel
would never get back (measured: ~20 MB per prune + convert cycle on the demo model). Jobs run
here instead; the process is replaced after :data:`RECYCLE_AFTER` jobs, so memory stays
bounded. It is a plain subprocess fed over pipes (not multiprocessing), so scripts without a
``__main__`` guard work too.

Protocol: length-prefixed pickles. The kernel sends ``("convert", ...)`` or
``("technique", payload)``, and ``("stop",)`` while a job runs; the worker answers with any
number of ``{"progress": {...}}`` frames and one ``{"done": result}``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import queue
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

#: Jobs before the process is replaced.
RECYCLE_AFTER = 8


# --------------------------------------------------------------------------- framing
def _read(stream: Any) -> Any:
    header = stream.read(8)
    if len(header) < 8:
        return None
    size = int.from_bytes(header, "little")
    return pickle.loads(stream.read(size))


def _write(stream: Any, value: Any) -> None:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(payload).to_bytes(8, "little") + payload)
    stream.flush()


# --------------------------------------------------------------------------- portable models
def write_model(model: Any, folder: str) -> None:
    """A tf_keras model as ``model.json`` + ``weights.npz`` (see :func:`read_model`)."""
    with open(os.path.join(folder, "model.json"), "w") as fh:
        fh.write(model.to_json())
    np.savez(os.path.join(folder, "weights.npz"),
             **{f"w{i}": w for i, w in enumerate(model.get_weights())})


def read_model(folder: str) -> Any:
    """Rebuild what :func:`write_model` wrote: new layers, no traced functions."""
    from compresswidgets import _keras

    k = _keras.keras()
    with open(os.path.join(folder, "model.json")) as fh:
        model = k.models.model_from_json(fh.read())
    with np.load(os.path.join(folder, "weights.npz")) as npz:
        model.set_weights([npz[f"w{i}"] for i in range(len(npz.files))])
    return model


# --------------------------------------------------------------------------- jobs (worker side)
def convert_model(kind: str, path: str, mode: str, representative_path: str | None,
                  fixed: bool = False) -> dict[str, Any]:
    """Convert; ``{"tflite": bytes, "fixed": bool}``, ``{"error": message}`` or
    ``{"rebuild": message}``.

    A Keras model that does not convert with a dynamic batch (recurrent layers in TF 2.21)
    is converted again from a concrete function with a fixed batch of 1 (at once with
    ``fixed``: the caller knows this architecture needs it).
    """
    try:
        from compresswidgets import _keras
        from compresswidgets.tflite import _retry_fixed, configure, fixed_input_spec

        tf = _keras.tf()
        with _keras._quiet_native_logs(keep=False):  # the exception has the converter's words
            if kind != "keras":
                converter = tf.lite.TFLiteConverter.from_saved_model(path)
                configure(converter, tf, mode, representative_path)
                return {"tflite": bytes(converter.convert())}
            try:
                model = read_model(path)
            except Exception as exc:
                return {"rebuild": f"{type(exc).__name__}: {exc}"}
            if not fixed:
                converter = tf.lite.TFLiteConverter.from_keras_model(model)
                configure(converter, tf, mode, representative_path)
                try:
                    return {"tflite": bytes(converter.convert()), "fixed": False}
                except Exception as exc:
                    if not _retry_fixed(model, str(exc)):
                        raise
            function = tf.function(lambda x: model(x, training=False))
            concrete = function.get_concrete_function(*fixed_input_spec(model, 1))
            converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
            configure(converter, tf, mode, representative_path)
            return {"tflite": bytes(converter.convert()), "fixed": True}
    except Exception as exc:  # the message is what the user needs; the type may not pickle
        return _error(exc)


def run_technique(payload: dict[str, Any], emit: Callable[[dict], None],
                  stop: threading.Event) -> dict[str, Any]:
    """Prune, cluster or QAT-train the model in ``payload["model_dir"]``.

    Pruned and clustered models are written to ``payload["out_dir"]`` as JSON + weights; a QAT
    model as weights only (the kernel rebuilds its structure), with its .tflite in the answer.
    """
    try:
        from compresswidgets import _keras
        from compresswidgets._data import Data
        from compresswidgets._training import CompileSettings, Progress
        from compresswidgets.techniques import clustering, pruning, quantization

        tf = _keras.tf()
        technique = payload["technique"]
        module = {"prune": pruning, "cluster": clustering, "qat": quantization}[technique]
        with _keras._quiet_native_logs():
            model = read_model(payload["model_dir"])
        with np.load(payload["data"]) as npz:
            x, y = npz["x_train"], npz["y_train"]
        data = Data(x, y, x[:1], y[:1])
        settings = CompileSettings.from_wire(payload["settings"])

        def progress(report: Progress) -> None:
            emit(dataclasses.asdict(report))
            if stop.is_set():
                report.stop()

        result, notes = module.apply(model, data, payload["params"], settings, progress)
        if technique != "qat":
            write_model(result, payload["out_dir"])
            return {"notes": list(notes)}
        # A QAT model does not survive JSON; the kernel rebuilds it and takes these weights.
        np.savez(os.path.join(payload["out_dir"], "weights.npz"),
                 **{f"w{i}": w for i, w in enumerate(result.get_weights())})
        from compresswidgets.tflite import configure

        try:
            with _keras._quiet_native_logs():
                converter = tf.lite.TFLiteConverter.from_keras_model(result)
                configure(converter, tf, "qat", None)
                return {"notes": list(notes), "tflite": bytes(converter.convert())}
        except Exception as exc:
            return {"notes": list(notes), "conversion_error": f"{type(exc).__name__}: {exc}"}
    except Exception as exc:
        return _error(exc)


def _error(exc: BaseException) -> dict[str, Any]:
    text = str(exc).strip() or type(exc).__name__
    return {"error": text, "type": type(exc).__name__, "trace": traceback.format_exc()}


def main(max_jobs: int) -> None:
    """Serve jobs on stdin/stdout until ``max_jobs`` are done or stdin closes.

    The protocol gets its own copy of stdout; fd 1 then points at stderr so that whatever
    TensorFlow prints cannot corrupt it. A reader thread takes ``("stop",)`` frames while a
    job runs.
    """
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = os.fdopen(os.dup(0), "rb")
    jobs: queue.Queue = queue.Queue()
    stop = threading.Event()

    def reader() -> None:
        while True:
            frame = _read(requests)
            if frame is None:
                jobs.put(None)
                return
            if frame[0] == "stop":
                stop.set()
            else:
                jobs.put(frame)

    threading.Thread(target=reader, daemon=True).start()
    for _ in range(max_jobs):
        request = jobs.get()
        if request is None:
            return
        stop.clear()
        if request[0] == "convert":
            result = convert_model(*request[1:])
        else:
            result = run_technique(request[1], lambda m: _write(channel, {"progress": m}), stop)
        _write(channel, {"done": result})


# --------------------------------------------------------------------------- client (kernel side)
class WorkerDied(RuntimeError):
    """The worker process ended in the middle of a job."""


class _Process:
    def __init__(self) -> None:
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        env = dict(os.environ)
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent,
                                                          env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "compresswidgets._worker", str(RECYCLE_AFTER)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env)
        self.jobs = 0

    def usable(self) -> bool:
        return self.proc.poll() is None and self.jobs < RECYCLE_AFTER

    def call(self, request: tuple, on_progress: Callable[[dict], bool] | None) -> Any:
        self.jobs += 1
        failure: BaseException | None = None
        try:
            _write(self.proc.stdin, request)
            stopping = False
            while True:
                frame = _read(self.proc.stdout)
                if frame is None:
                    raise WorkerDied(self.last_words())
                if "done" in frame:
                    if failure is not None:  # the job has wound down: now the caller's error
                        raise failure
                    return frame["done"]
                if on_progress is None or failure is not None:
                    continue
                try:
                    wants_stop = on_progress(frame["progress"])
                except BaseException as exc:  # a failing callback stops the job, then raises
                    failure, wants_stop = exc, True
                if wants_stop and not stopping:
                    stopping = True
                    _write(self.proc.stdin, ("stop",))
        except (BrokenPipeError, OSError) as exc:
            raise WorkerDied(self.last_words()) from exc

    def last_words(self) -> str:
        """How the process ended (a signal such as SIGSEGV says it crashed) and its stderr."""
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None and code < 0:
            import signal

            try:
                how = f"it crashed ({signal.Signals(-code).name})"
            except ValueError:
                how = f"it was killed by signal {-code}"
        else:
            how = f"it exited with code {code}"
        tail = self.stderr_tail().strip()
        return how + (f"; its last output:\n{tail}" if tail else "; it printed nothing")

    def stderr_tail(self, limit: int = 1500) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-limit:]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


_lock = threading.Lock()
_process: _Process | None = None


def in_process() -> bool:
    """``COMPRESSWIDGETS_IN_PROCESS=1``: no worker; jobs run in the calling process.

    For small machines (Binder gives 1-2 GB): one TensorFlow in memory instead of two, at the
    price of TensorFlow's leaks (about 10-20 MB per fine-tuning or conversion) staying in the
    kernel until it restarts.
    """
    return os.environ.get("COMPRESSWIDGETS_IN_PROCESS", "").lower() in ("1", "true", "yes")


def call(request: tuple, on_progress: Callable[[dict], bool] | None = None) -> Any:
    """Run one job in the worker (started or replaced as needed); one job at a time.

    ``on_progress`` gets each progress frame and returns True to ask the job to stop.
    A worker that dies is replaced and the job is tried once more before WorkerDied.
    With :func:`in_process`, the job runs here instead.
    """
    global _process
    if in_process():
        with _lock:
            if request[0] == "convert":
                return convert_model(*request[1:])
            stop = threading.Event()

            def emit(message: dict) -> None:
                if on_progress is not None and on_progress(message):
                    stop.set()
            return run_technique(request[1], emit, stop)
    with _lock:
        for attempt in (1, 2):
            if _process is None or not _process.usable():
                if _process is not None:
                    _process.close()
                _process = _Process()
            try:
                return _process.call(request, on_progress)
            except WorkerDied:
                _process.close()
                _process = None
                if attempt == 2:
                    raise
    raise AssertionError("unreachable")


def shutdown() -> None:
    """Stop the worker (a new one starts with the next job)."""
    global _process
    with _lock:
        if _process is not None:
            _process.close()
            _process = None


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else RECYCLE_AFTER)
