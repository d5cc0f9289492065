"""TFLite Micro, run in a worker process: the arena a model needs and its outputs.

The ``tflite-micro`` package's Python interpreter is TFLite Micro's own C++ runtime; a model
it cannot run (an op it lacks, a hybrid kernel) fails at allocation, and a native crash must
not take the kernel with it, so :func:`run` is called in a
:class:`~compresswidgets._process.WorkerPool` process. It imports no TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["run"]

_ARENA = re.compile(r"Arena allocation total (\d+) bytes")
_FAILED_OP = re.compile(r"Node (\w+) \(number \d+\) failed to (?:prepare|invoke)")
_SOURCE = re.compile(r"^\S+\.cc(?::\d+)?\s+")  # "tensorflow/lite/micro/kernels/x.cc:42 "
_MISSING_OP = re.compile(r"Didn't find op for builtin opcode '(\w+)'")
#: The arena offered for measuring (the model uses what it needs of it).
ARENA_OFFERED = 64 * 2**20


@contextlib.contextmanager
def _captured() -> Iterator[list[str]]:
    """What native code prints on file descriptors 1 and 2 meanwhile, as one text."""
    out: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield out
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            out.append(sink.read().decode("utf-8", "replace"))


def run(tflite: bytes, x: np.ndarray | None) -> dict[str, Any]:
    """``{"arena_bytes", "outputs"}`` (outputs of ``x``, one sample at a time, dequantized
    to float), or ``{"error", "op", "log"}`` when TFLite Micro cannot run the model."""
    from tflite_micro.python.tflite_micro import runtime

    with _captured() as log:
        try:
            interpreter = runtime.Interpreter.from_bytes(tflite, arena_size=ARENA_OFFERED)
            error = None
        except Exception as exc:
            error = str(exc)
        if error is None:
            interpreter.print_allocations()
    text = log[0]
    if error is not None:
        failed = _FAILED_OP.search(text) or _MISSING_OP.search(text)
        reason = [_SOURCE.sub("", line).strip() for line in text.splitlines()
                  if line.strip() and not _FAILED_OP.search(line)]
        return {"error": (reason[0] if reason else error), "op": failed.group(1) if failed
                else None, "log": text[-2000:]}
    found = _ARENA.search(text)
    answer: dict[str, Any] = {"arena_bytes": int(found.group(1)) if found else None}
    if x is not None:
        answer["outputs"] = _predict(interpreter, x)
    return answer


def _predict(interpreter: Any, x: np.ndarray) -> np.ndarray:
    inp, out = interpreter.get_input_details(0), interpreter.get_output_details(0)
    in_q, out_q = inp["quantization_parameters"], out["quantization_parameters"]
    outputs = []
    for sample in np.asarray(x, dtype=np.float32):
        value = sample[None, ...]
        if np.dtype(inp["dtype"]).kind in "iu":  # int8 input: quantize as the model says
            scale, zero = float(in_q["scales"][0]), int(in_q["zero_points"][0])
            info = np.iinfo(inp["dtype"])
            value = np.clip(np.round(value / scale) + zero, info.min, info.max)
        interpreter.set_input(value.astype(inp["dtype"]).reshape(inp["shape"]), 0)
        interpreter.invoke()
        result = np.array(interpreter.get_output(0), dtype=np.float32)
        if np.dtype(out["dtype"]).kind in "iu":
            result = (result - int(out_q["zero_points"][0])) * float(out_q["scales"][0])
        outputs.append(result.reshape(result.shape[1:]) if result.shape[0] == 1 else result)
    return np.stack(outputs)
