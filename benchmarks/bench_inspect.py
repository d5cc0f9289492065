"""How fast is the weight report on a real model, against the floor measured in the same run?

Model: Keras ResNet50(weights=None), 25.6 M parameters in 320 tensors (tf_keras).

* floor: read every weight out of the model (zero-copy, as the report does) and one NumPy
  reduction (np.sum) over it: the least any per-tensor inspection must do.
* report: ``cw.inspect_weights(model)`` with default 64-bin histograms: min, max, mean, std,
  zeros, NaN/Inf, exact distinct counts, per-channel ranges and a histogram for every tensor.
* naive peer: what the obvious NumPy code does for the same numbers (np.unique, np.histogram,
  np.std, np.count_nonzero per tensor).

Then the inspector panel on the demo model: time to redraw after a control changes
(target ~100 ms).

Prints medians of several runs and the ratios; exits 1 when a target is missed.
Run: ``.venv/bin/python benchmarks/bench_inspect.py``
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

import compresswidgets as cw
from compresswidgets import _keras
from compresswidgets.inspection import _read

REPORT_TARGET = 6.0  # report time / floor time
REDRAW_TARGET_MS = 100.0
RUNS = 7


def timed(fn, runs=RUNS):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        del result
    return statistics.median(times), min(times)


def floor(model):
    return [float(np.sum(_read(v))) for v in model.weights]


def naive(arrays):
    out = []
    for a in arrays:
        finite = a[np.isfinite(a)]
        out.append((finite.min(), finite.max(), finite.mean(), finite.std(),
                    a.size - np.count_nonzero(a), np.unique(finite).size,
                    np.histogram(finite, 64)))
    return out


def bench_report() -> bool:
    model = _keras.keras().applications.ResNet50(weights=None)
    params = model.count_params()
    start = time.perf_counter()
    cw.inspect_weights(model)
    first = time.perf_counter() - start
    report_med, report_min = timed(lambda: cw.inspect_weights(model))
    floor_med, floor_min = timed(lambda: floor(model))
    arrays = [_read(v) for v in model.weights]
    pass_med, _ = timed(lambda: [float(np.sum(a)) for a in arrays])
    naive_med, _ = timed(lambda: naive(arrays), runs=3)
    ratio = report_med / floor_med
    print(f"ResNet50(weights=None): {params:,} parameters in {len(model.weights)} tensors")
    print(f"  floor (read + np.sum)        {floor_med * 1e3:8.1f} ms (min {floor_min * 1e3:.1f})")
    print(f"  in-memory np.sum only        {pass_med * 1e3:8.1f} ms")
    print(f"  inspect_weights (64 bins)    {report_med * 1e3:8.1f} ms (min {report_min * 1e3:.1f}, "
          f"first call {first * 1e3:.1f})")
    print(f"  naive NumPy, same numbers    {naive_med * 1e3:8.1f} ms")
    print(f"  ratio report / floor         {ratio:8.2f}x  (target <= {REPORT_TARGET:.0f}x) "
          f"{'PASS' if ratio <= REPORT_TARGET else 'FAIL'}")
    print(f"  ratio naive / report         {naive_med / report_med:8.2f}x")
    return ratio <= REPORT_TARGET


def bench_redraw() -> bool:
    model, _ = cw.demo_model()
    panel = cw.WeightInspector(model)
    n = len(panel.report.tensors)
    changes = {
        "tensor": lambda: setattr(panel, "layer", (panel.layer + 1) % n),
        "bins": lambda: setattr(panel, "bins", 32 if panel.bins != 32 else 64),
        "log scale": lambda: setattr(panel, "log_scale", not panel.log_scale),
        "exclude zeros": lambda: setattr(panel, "exclude_zeros", not panel.exclude_zeros),
    }
    ok = True
    print("WeightInspector on the demo model: redraw after a control change "
          f"(target ~{REDRAW_TARGET_MS:.0f} ms)")
    for name, change in changes.items():
        change()  # warm-up
        med, _ = timed(change, runs=9)
        ok = ok and med * 1e3 <= REDRAW_TARGET_MS
        print(f"  {name:<14} {med * 1e3:6.1f} ms   ratio to target "
              f"{med * 1e3 / REDRAW_TARGET_MS:5.2f}x")
    print(f"  {'PASS' if ok else 'FAIL'}")
    return ok


if __name__ == "__main__":
    ok = bench_report()
    ok = bench_redraw() and ok
    sys.exit(0 if ok else 1)
