"""One candidate of a sweep, as it runs in whatever process runs it: a local worker (a
:class:`~compresswidgets._process.WorkerPool` job), a Dask worker, or the kernel.

Only :func:`run_candidate` is called from outside; it is a module-level function, so an
executor sends it by reference (the worker needs compresswidgets installed).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import threading
from typing import Any

import numpy as np

from compresswidgets import _converter, _jobs, _keras, _process

__all__ = ["run_candidate", "warm_up"]


#: the shared part of a sweep (base model, data) as loaded here, by its key
_shared: dict[str, dict[str, Any]] = {}
#: one candidate at a time per process: the seed and TensorFlow's settings are global
_candidate_lock = threading.Lock()


def run_candidate(shared: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """One candidate of a sweep, wherever it runs: a local worker, a Dask worker, the kernel.

    ``shared`` is what every candidate of the sweep has in common, loaded once per process
    (by ``shared["key"]``): the base model and the data (a ``folder`` with ``model.json`` and
    ``weights.npz`` and the ``data`` .npz on this machine; ``model_json``/``weights``/``data``
    inline; or ``live`` objects in the kernel). ``job`` is the candidate: ``technique``
    (``"prune"``/``"cluster"``), validated ``params``, ``seed``, ``threads``, an optional
    ``model`` (``{"json", "weights"}``: a base other than the shared one) and ``then``
    (``[(mode, representative_samples)]``, post-training conversions).

    Never raises: the answer has the stripped model (``json``, ``weights``), ``notes``, the
    float ``tflite`` (or ``conversion_error``), ``y_pred`` on the test split, ``then``
    (``{mode: {"tflite", "y_pred"} | {"error"}}``), or ``error`` (and ``type``, ``trace``),
    or ``stopped``; always ``seconds``, ``host`` and ``pid``.
    """
    import socket
    import time

    with _candidate_lock:
        start = time.perf_counter()
        try:
            loaded = _load_shared(shared)
            if loaded["here"]:
                answer = _candidate(loaded, job)
            else:  # a Dask worker's stderr is the user's terminal: no native noise there
                with _keras._quiet_native_logs():
                    answer = _candidate(loaded, job)
        except Exception as exc:
            answer = ({"stopped": True} if type(exc).__name__ == "TrainingStopped"
                      else _jobs._error(exc))
        answer.update(seconds=time.perf_counter() - start, host=socket.gethostname(),
                      pid=os.getpid())
        return answer


def warm_up() -> dict[str, Any]:
    """A toy candidate (a tiny CNN pruned 50 % for one epoch of 64 samples, stripped and
    converted), run where a spare worker waits for a sweep: the once-per-process costs of a
    first candidate (TensorFlow's runtime, the first tracing of Keras' and tfmot's training
    code, the converter) are paid before the sweep. Leaves nothing behind that a later
    candidate sees: each seeds itself and loads its own model and data. Its answer."""
    from compresswidgets._data import Data
    from compresswidgets._training import compile_settings
    from compresswidgets.techniques import pruning

    k = _keras.keras()
    with _keras._quiet_native_logs():
        model = k.Sequential([k.layers.Input((8, 8, 1)),
                              k.layers.Conv2D(4, 3, activation="relu"),
                              k.layers.Flatten(), k.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((64, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, 10, len(x))
    data = Data(x, y, x[:8], y[:8])
    params = pruning.validate(model, data, target_sparsity=0.5, schedule="polynomial",
                              structure=None, layers=None, epochs=1, batch_size=32)
    settings = compile_settings(model, data, None, pruning.DEFAULT_LEARNING_RATE)
    shared = {"key": "warm-up", "model_json": model.to_json(),
              "weights": model.get_weights(), "data": (x, y, x[:8])}
    job = {"technique": "prune", "params": params, "seed": 0, "threads": None,
           "label": "warm-up", "then": [], "settings": settings.wire()}
    try:
        return run_candidate(shared, job)
    finally:
        _shared.pop("warm-up", None)


def _load_shared(shared: dict[str, Any]) -> dict[str, Any]:
    from compresswidgets._data import Data

    key = shared["key"]
    if key in _shared:
        return _shared[key]
    if "live" in shared:  # in the kernel: the user's own objects
        loaded = dict(shared["live"], here=True)
    else:
        if "folder" in shared:  # this machine: the files the sweep and its Workbench wrote
            model_json, weights = _jobs.read_parts(shared["folder"])
            with np.load(shared["data"]) as npz:
                arrays = (npz["x_train"], npz["y_train"], npz["x_test"])
        else:
            model_json, weights, arrays = shared["model_json"], shared["weights"], shared["data"]
        x_train, y_train, x_test = arrays
        loaded = {"model": {"json": model_json, "weights": weights},
                  "data": Data(x_train, y_train, x_test, y_train[:0]), "here": False}
    _shared.clear()  # one sweep at a time per process: free the last one's arrays
    _shared[key] = loaded
    return loaded


def _model_from(description: Any) -> Any:
    """A fresh model: from ``{"json", "weights"}``, or a clone of a live one."""
    if isinstance(description, dict):
        with _keras._quiet_native_logs():
            return _jobs.from_parts(description["json"], description["weights"])
    from compresswidgets.techniques._common import clone_with_weights

    return clone_with_weights(description)


def _deterministic(threads: int | None) -> None:
    """The same numbers in any worker process: its TensorFlow threads, set before the
    runtime starts (a pool's processes have them from their environment), and op
    determinism. Not in the user's kernel."""
    tf = _keras.tf()
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # started already: by an earlier candidate with these threads
            pass
    tf.config.experimental.enable_op_determinism()


def _candidate(shared: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    from compresswidgets import tflite as tfl
    from compresswidgets._training import (
        CompileSettings,
        Progress,
        release_traces,
        seed_everything,
    )
    from compresswidgets.techniques import clustering, pruning, quantization
    from compresswidgets.variant import keras_predict

    here, data = shared["here"], shared["data"]
    module = {"prune": pruning, "cluster": clustering}[job["technique"]]
    if not here:
        _deterministic(job.get("threads"))
    model = _model_from(job.get("model") or shared["model"])
    seed_everything(job["seed"])

    stopper = job.get("stop")  # in the kernel: the sweep's own stop request

    def progress(p: Progress) -> None:  # a pool's worker reports, and hears a Stop
        if (stopper is not None and stopper.is_set()) or _process.report(
                {"label": job.get("label"), **dataclasses.asdict(p)}):
            p.stop()

    settings = job["settings"]
    if isinstance(settings, dict):
        settings = CompileSettings.from_wire(settings)
    result, notes = module.apply(model, data, job["params"], settings, progress)
    answer: dict[str, Any] = {"notes": list(notes), "then": {},
                              "y_pred": keras_predict(result, data.x_test)}
    if here:  # the kernel keeps the model itself
        answer["model"] = result
    else:
        answer.update(json=result.to_json(), weights=result.get_weights())
    with tempfile.TemporaryDirectory(prefix="cw-candidate-") as folder:
        for mode, samples in [("float32", 0), *job.get("then", ())]:
            rep = quantization.representative(data, samples) if samples else None
            try:
                if here:  # the kernel's door: the conversion itself runs in the worker
                    blob = tfl.convert(result, mode, rep)
                else:
                    rep_path = None
                    if rep is not None:  # the converter reads its samples from a file
                        rep_path = os.path.join(folder, f"{mode}.npy")
                        np.save(rep_path, rep)
                    blob, _ = _converter.convert_keras(result, mode, rep_path)
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"
                if mode == "float32":
                    answer["conversion_error"] = message
                else:
                    answer["then"][mode] = {"error": message}
                continue
            if mode == "float32":
                answer["tflite"] = blob
            else:
                answer["then"][mode] = {"tflite": blob, "y_pred": tfl.predict(blob, data.x_test)}
    release_traces(result)
    return answer
