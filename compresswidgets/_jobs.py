"""The jobs of the worker process, and the kernel's way to ask for them.

``TFLiteConverter.convert()`` and every ``fit`` leave graphs behind that the user's kernel
would never get back (measured: ~20 MB per prune + convert cycle on the demo model), so they
run in the recycled process of :mod:`compresswidgets._process` (``python -m
compresswidgets._jobs`` is its entry point). Two jobs:

* ``convert``: a model (as JSON + weights, or a SavedModel) to a .tflite;
* ``technique``: prune, cluster or QAT-train a model, then convert the result, in **one**
  round trip: the kernel gets the stripped model, its .tflite and the notes.

With ``COMPRESSWIDGETS_IN_PROCESS=1`` (see :func:`in_process`) the same jobs run in the
calling process instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import os
import pickle
import queue
import shutil
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from compresswidgets import _converter, _keras, _process

if TYPE_CHECKING:
    from compresswidgets._training import CompileSettings, ProgressCallback

__all__ = ["TechniqueResult", "convert", "in_process", "read_model", "technique",
           "write_model"]


# --------------------------------------------------------------------------- portable models
def write_model(model: Any, folder: str) -> None:
    """A tf_keras model as ``model.json`` + ``weights.npz`` (see :func:`read_model`)."""
    with open(os.path.join(folder, "model.json"), "w") as fh:
        fh.write(model.to_json())
    np.savez(os.path.join(folder, "weights.npz"),
             **{f"w{i}": w for i, w in enumerate(model.get_weights())})


def read_parts(folder: str) -> tuple[str, list[np.ndarray]]:
    """The JSON and the weights that :func:`write_model` wrote."""
    with open(os.path.join(folder, "model.json")) as fh:
        model_json = fh.read()
    with np.load(os.path.join(folder, "weights.npz")) as npz:
        return model_json, [npz[f"w{i}"] for i in range(len(npz.files))]


def from_parts(model_json: str, weights: list[np.ndarray]) -> Any:
    """A tf_keras model from its JSON and weights: new layers, no traced functions."""
    model = _keras.keras().models.model_from_json(model_json)
    model.set_weights(weights)
    return model


def read_model(folder: str) -> Any:
    """Rebuild what :func:`write_model` wrote."""
    return from_parts(*read_parts(folder))


def portable(model: Any) -> bool:
    """A tf_keras Sequential/functional model of built-in layers: rebuildable from its JSON."""
    if _keras.keras_flavour(model) != "tf_keras":
        return False
    if not (getattr(model, "_is_graph_network", False) or type(model).__name__ == "Sequential"):
        return False
    return all(type(layer).__module__.startswith(("tf_keras.", "compresswidgets."))
               for layer in model.layers)


# --------------------------------------------------------------------------- jobs (worker side)
def _convert_job(kind: str, path: str, mode: str, representative_path: str | None,
                 fixed: bool = False, debug: dict[str, Any] | None = None,
                 extra: tuple[tuple[str, Any], ...] = ()) -> dict[str, Any]:
    """``{"tflite": bytes, "fixed": bool}``, ``{"error": message}`` or ``{"rebuild": ...}``
    (the JSON did not rebuild: the caller exports a SavedModel instead). With ``debug``, the
    int8 conversion goes through the quantization debugger: ``stats`` and ``denylist`` too.
    ``extra``: the model's ``_converter.extra_settings`` for a SavedModel (a Keras model's
    are read from it here)."""
    def answer(made: Any) -> dict[str, Any]:
        return dict(made) if isinstance(made, dict) else {"tflite": made}

    try:
        if kind != "keras":
            return answer(_converter.convert_saved_model(path, mode, representative_path,
                                                         debug, tuple(extra)))
        try:
            with _keras._quiet_native_logs():
                model = read_model(path)
        except Exception as exc:
            return {"rebuild": f"{type(exc).__name__}: {exc}"}
        made, was_fixed = _converter.convert_keras(model, mode, representative_path, fixed,
                                                   debug)
        return {**answer(made), "fixed": was_fixed}
    except Exception as exc:  # the message is what the user needs; the type may not pickle
        return _error(exc)


def _technique_job(payload: dict[str, Any], emit: Callable[[dict], None],
                   stop: threading.Event) -> dict[str, Any]:
    """Prune, cluster or QAT-train the model in ``payload["model_dir"]``, then convert it.

    Pruned and clustered models are written to ``payload["out_dir"]`` as JSON + weights; a QAT
    model as weights only (the kernel rebuilds its structure). The answer has the notes and
    the .tflite (float32, or QAT's int8), or the converter's words.
    """
    try:
        from compresswidgets._data import Data
        from compresswidgets._training import CompileSettings, Progress, seed_everything
        from compresswidgets.techniques import clustering, pruning, quantization

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

        seed_everything(payload.get("seed"))
        result, notes = module.apply(model, data, payload["params"], settings, progress)
        if technique == "qat":  # a QAT model does not survive JSON: its weights only
            np.savez(os.path.join(payload["out_dir"], "weights.npz"),
                     **{f"w{i}": w for i, w in enumerate(result.get_weights())})
        else:
            write_model(result, payload["out_dir"])
        answer: dict[str, Any] = {"notes": list(notes)}
        try:
            blob, _ = _converter.convert_keras(  # the variant reads its batch from the blob
                result, "qat" if technique == "qat" else "float32", None)
            answer["tflite"] = blob
        except Exception as exc:
            answer["conversion_error"] = f"{type(exc).__name__}: {exc}"
        return answer
    except Exception as exc:
        return _error(exc)


def _error(exc: BaseException) -> dict[str, Any]:
    text = str(exc).strip() or type(exc).__name__
    return {"error": text, "type": type(exc).__name__, "trace": traceback.format_exc()}


def _call_job(fn: Callable[..., Any], args: tuple, kwargs: dict) -> dict[str, Any]:
    """A :class:`~compresswidgets._process.WorkerPool` job: ``{"value": ...}`` or
    ``{"raised": exception}`` (as text when the exception does not pickle)."""
    try:
        return {"value": fn(*args, **kwargs)}
    except Exception as exc:
        try:
            pickle.dumps(exc)
        except Exception:
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        return {"raised": exc}


def preload(warm: str) -> None:
    """Before the first job: ``"warm"`` imports what a candidate, a fine-tune or a
    conversion needs (TensorFlow, tf_keras, tfmot, the techniques, the converter);
    ``"candidate"`` also runs a toy candidate (:func:`compresswidgets._candidate.warm_up`),
    which starts TensorFlow's runtime with this process's threads."""
    with contextlib.suppress(Exception):  # whatever fails here fails again in the job, told
        _keras.tfmot()
        # by name: the job modules import this one (a worker only loads them ahead of time)
        loaded = {name: importlib.import_module(f"compresswidgets.{name}") for name in _PRELOAD}
        if warm == "candidate":
            loaded["_candidate"].warm_up()


#: What a candidate, a fine-tune or a conversion imports (:func:`preload`).
_PRELOAD = ("_candidate", "_training", "tflite", "techniques.clustering", "techniques.pruning",
            "techniques.quantization")


def _run(request: tuple, emit: Callable[[dict], None], stop: threading.Event) -> dict[str, Any]:
    if request[0] == "unreadable":
        return {"raised": RuntimeError(request[1])}
    if request[0] == "convert":
        return _convert_job(*request[1:])
    if request[0] == "call":
        _process.channel = (emit, stop)  # for _process.report, from the job's function
        try:
            return _call_job(*request[1:])
        finally:
            _process.channel = None
    return _technique_job(request[1], emit, stop)


def main(max_jobs: int, warm: str | None = None) -> None:
    """Serve jobs on stdin/stdout until ``max_jobs`` are done or stdin closes; ``warm``
    (``"warm"`` or ``"candidate"``) first prepares for them (:func:`preload`).

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
            try:
                frame = _process.read_frame(requests)
            except Exception as exc:  # e.g. a function of a module this process lacks
                jobs.put(("unreadable", f"The worker could not read the job: "
                                        f"{type(exc).__name__}: {exc}"))
                continue
            if frame is None:
                jobs.put(None)
                return
            if frame[0] == "stop":
                stop.set()
            else:
                jobs.put(frame)

    threading.Thread(target=reader, daemon=True).start()
    if warm:
        preload(warm)
    for _ in range(max_jobs):
        request = jobs.get()
        if request is None:
            return
        stop.clear()
        result = _run(request, lambda m: _process.write_frame(channel, {"progress": m}), stop)
        _process.write_frame(channel, {"done": result, "rss": _process.resident_bytes()})


# --------------------------------------------------------------------------- kernel side
def in_process() -> bool:
    """``COMPRESSWIDGETS_IN_PROCESS=1``: no worker; jobs run in the calling process.

    For small machines (Binder gives 1-2 GB): one TensorFlow in memory instead of two, at the
    price of TensorFlow's leaks (about 10-20 MB per fine-tuning or conversion) staying in the
    kernel until it restarts.
    """
    return os.environ.get("COMPRESSWIDGETS_IN_PROCESS", "").lower() in ("1", "true", "yes")


_here = threading.Lock()


def submit(request: tuple, on_progress: Callable[[dict], bool] | None = None, *,
           retry: bool = False) -> dict[str, Any]:
    """Run one job in the worker (or here, with :func:`in_process`); see
    :func:`compresswidgets._process.call` for ``on_progress`` and ``retry``."""
    if not in_process():
        return _process.call(request, on_progress, retry=retry)
    stop = threading.Event()

    def emit(message: dict) -> None:
        if on_progress is not None and on_progress(message):
            stop.set()

    with _here:
        return _run(request, emit, stop)


def convert(kind: str, path: str, mode: str, representative_path: str | None,
            fixed: bool = False, debug: dict[str, Any] | None = None,
            extra: tuple[tuple[str, Any], ...] = ()) -> dict[str, Any]:
    """The ``convert`` job (retried once in a fresh process if the worker dies)."""
    return submit(("convert", kind, path, mode, representative_path, fixed, debug, extra),
                  retry=True)


def _trained(rebuild: Callable[[Any], Any], model: Any, weights: list[np.ndarray]) -> Any:
    made = rebuild(model)
    made.set_weights(weights)
    return made


@dataclasses.dataclass(frozen=True)
class TechniqueResult:
    """What one technique round trip gives back (``model`` may be a
    :class:`~compresswidgets._keras.Deferred`: the QAT model, rebuilt on first use)."""

    model: Any
    notes: tuple[str, ...]
    tflite: bytes | None
    conversion_error: str | None


_ERRORS: dict[str, type[Exception]] = {"ValueError": ValueError, "TypeError": TypeError}


def technique(technique: str, model: Any, params: Any, settings: CompileSettings,
              train_file: str, progress: ProgressCallback | None = None, *,
              rebuild: Callable[[Any], Any] | None = None,
              seed: int | None = None) -> TechniqueResult:
    """Fine-tune ``model`` (a portable tf_keras model) with ``technique`` in the worker and
    convert the result, in one round trip.

    ``train_file`` is an .npz of ``x_train`` and ``y_train``. For QAT, whose model does not
    survive JSON, ``rebuild(model)`` makes its structure here and takes the trained weights.
    A worker that dies during a fine-tune is not retried: the error says so, with its last
    words.
    """
    from compresswidgets._training import Progress, TrainingStopped

    folder = tempfile.mkdtemp(prefix="cw-job-", dir=os.path.dirname(train_file))
    try:
        model_dir, out_dir = os.path.join(folder, "in"), os.path.join(folder, "out")
        os.mkdir(model_dir)
        os.mkdir(out_dir)
        write_model(model, model_dir)
        payload = {"technique": technique, "model_dir": model_dir, "out_dir": out_dir,
                   "data": train_file, "params": params, "settings": settings.wire(),
                   "seed": seed}

        def on_progress(message: dict) -> bool:
            report = Progress(**message)
            if progress is not None:
                progress(report)
            return report.stop_requested

        try:
            result = submit(("technique", payload), on_progress)
        except _process.WorkerDied as exc:
            raise RuntimeError(
                f"The fine-tuning process died ({technique}) and was not restarted (it would "
                "start again from the first batch); it may have run out of memory. Try fewer "
                f"layers or a smaller batch_size. Its last words: {exc}") from None
        if "error" in result:
            kind = TrainingStopped if result["type"] == "TrainingStopped" else _ERRORS.get(
                result["type"], RuntimeError)
            raise kind(result["error"])
        if technique == "qat":  # its structure is built here only when someone needs it
            with np.load(os.path.join(out_dir, "weights.npz")) as npz:
                weights = [npz[f"w{i}"] for i in range(len(npz.files))]
            made = _keras.Deferred(functools.partial(_trained, rebuild, model, weights))
        else:
            with _keras._quiet_native_logs():
                made = read_model(out_dir)
        return TechniqueResult(made, tuple(result["notes"]), result.get("tflite"),
                               result.get("conversion_error"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else _process.MAX_JOBS,
         sys.argv[2] if len(sys.argv) > 2 else None)
