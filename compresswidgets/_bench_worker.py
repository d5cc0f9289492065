"""Measures one .tflite model in a fresh process that imports only ai_edge_litert and NumPy.

Run as a script (never as part of the package, so nothing else is imported)::

    python _bench_worker.py '{"model": "m.tflite", "threads": 1, "runs": 50, ...}'

Prints JSON lines: ``{"progress": run}`` while timing, then one ``{"result": {...}}`` or
``{"error": "..."}``. Times in milliseconds; memory in MB, measured like the TFLite benchmark
tool's "Memory footprint": the process's peak resident memory over its baseline taken after
the imports, before the interpreter is created.
"""

from __future__ import annotations

import json
import os
import sys
import time


def _status_mb(field: str) -> float:
    """VmRSS / VmHWM of this process from /proc (Linux), in MB; 0 where unavailable."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _emit(value: dict) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def _inputs(np, details: list[dict], batch: int, shapes: dict | None) -> list:
    rng = np.random.default_rng(0)
    arrays = []
    for i, d in enumerate(details):
        signature = [int(v) for v in d.get("shape_signature", d["shape"])]
        wanted = (shapes or {}).get(str(i)) or (shapes or {}).get(d["name"])
        if wanted is not None:
            shape = [batch if signature and signature[0] < 0 else signature[0],
                     *[int(v) for v in wanted]]
        else:
            unknown = [axis for axis, v in enumerate(signature) if v < 0 and axis > 0]
            if unknown:
                raise ValueError(
                    f"input {d['name']!r} has unknown dimension(s) {unknown} (shape "
                    f"{signature}); pass input_shape={{'{d['name']}': (...)}} with the sizes "
                    "to benchmark, batch dimension excluded.")
            # only a dynamic batch dimension takes `batch`; a fixed one is the model's own
            shape = [batch if signature[0] < 0 else signature[0], *signature[1:]] \
                if signature else []
        dtype = np.dtype(d["dtype"])
        if dtype.kind == "f":
            arrays.append(rng.standard_normal(shape).astype(dtype))
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            arrays.append(rng.integers(max(info.min, -128), min(info.max, 127) + 1,
                                       size=shape).astype(dtype))
        elif dtype == np.bool_:
            arrays.append(rng.random(shape) < 0.5)
        else:
            raise ValueError(f"input {d['name']!r} has dtype {dtype}, which this benchmark "
                             "cannot generate.")
    return arrays


def measure(spec: dict) -> dict:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    baseline = _status_mb("VmRSS")
    start = time.perf_counter()
    interpreter = Interpreter(model_path=spec["model"], num_threads=int(spec["threads"]))
    details = interpreter.get_input_details()
    arrays = _inputs(np, details, int(spec["batch"]), spec.get("input_shape"))
    for d, a in zip(details, arrays, strict=True):
        if list(d["shape"]) != list(a.shape):
            interpreter.resize_tensor_input(d["index"], list(a.shape), strict=False)
    interpreter.allocate_tensors()
    init_ms = (time.perf_counter() - start) * 1e3
    for d, a in zip(details, arrays, strict=True):
        interpreter.set_tensor(d["index"], a)
    start = time.perf_counter()
    interpreter.invoke()
    first_ms = (time.perf_counter() - start) * 1e3
    for _ in range(int(spec["warmup"])):
        interpreter.invoke()
    times = []
    runs = int(spec["runs"])
    every = max(1, runs // 10)
    for j in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1e3)
        if (j + 1) % every == 0:
            _emit({"progress": j + 1})
    out = interpreter.get_output_details()[0]
    value = interpreter.get_tensor(out["index"])
    ordered = sorted(times)
    return {
        "init_ms": init_ms,
        "first_inference_ms": first_ms,
        "mean_ms": float(np.mean(times)),
        "std_ms": float(np.std(times)),
        "min_ms": ordered[0],
        "median_ms": float(np.median(times)),
        "p10_ms": float(np.percentile(times, 10)),
        "p90_ms": float(np.percentile(times, 90)),
        "memory_mb": max(0.0, _status_mb("VmHWM") - baseline),
        "input_dtype": str(np.dtype(details[0]["dtype"])),
        "input_shape": [int(v) for v in arrays[0].shape],
        "output_finite": bool(np.all(np.isfinite(value.astype(np.float64)))),
        "runs": runs,
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    try:
        _emit({"result": measure(spec)})
    except Exception as exc:  # reported as an error row, never a crash of the caller
        _emit({"error": f"{type(exc).__name__}: {exc}".strip()})


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
