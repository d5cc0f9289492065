"""How fast is the weight report on a real model, against the floor measured in the same run?

Model: Keras ResNet50(weights=None), 25.6 M parameters in 320 tensors (tf_keras).

* floor: one bare NumPy pass (np.sum per tensor) over the same weight arrays, already in
  memory: the least any per-tensor inspection must do. Also shown: reading every weight out of
  the model (zero-copy, as the report does) plus that pass.
* report: ``cw.inspect_weights(model)`` with default 64-bin histograms. It reads the weights and
  measures min, max, zeros and NaN/Inf of every tensor in one sweep; mean, std, the exact
  distinct counts, the histograms and the per-channel ranges are computed on first access.
* report, every field asked: the same plus ``to_records()`` and every tensor's histogram, i.e.
  everything the report can tell (what the report computed up front before it was lazy).
* naive peer: what the obvious NumPy code does for the same numbers (np.unique, np.histogram,
  np.std, np.count_nonzero per tensor).

The floor and the report are timed alternately, so both see the same machine load.

Then the inspector panel on the demo model: time to redraw after a control change
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

REPORT_TARGET = 3.0  # report time / one in-memory NumPy pass
REDRAW_TARGET_MS = 100.0
RUNS = 9


def timed(fn, runs=RUNS):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        del result
    return statistics.median(times), min(times)


def interleaved(fns, runs=RUNS):
    """Median and min of each of ``fns``, timed in turn within every round."""
    times = [[] for _ in fns]
    for _ in range(runs):
        for fn, out in zip(fns, times, strict=True):
            start = time.perf_counter()
            result = fn()
            out.append(time.perf_counter() - start)
            del result
    return [(statistics.median(t), min(t)) for t in times]


def read_and_sum(model):
    return [float(np.sum(_read(v))) for v in model.weights]


def everything(model):
    report = cw.inspect_weights(model)
    report.to_records()
    for t in report.tensors:
        t.histogram  # noqa: B018 - asking for it is the point
    return report


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
    arrays = [_read(v) for v in model.weights]
    (pass_med, pass_min), (report_med, report_min), (floor_med, floor_min) = interleaved([
        lambda: [float(np.sum(a)) for a in arrays],
        lambda: cw.inspect_weights(model),
        lambda: read_and_sum(model),
    ])
    full_med, _ = timed(lambda: everything(model), runs=5)
    naive_med, _ = timed(lambda: naive(arrays), runs=3)
    ratio = report_med / pass_med
    ok = ratio <= REPORT_TARGET
    print(f"ResNet50(weights=None): {params:,} parameters in {len(model.weights)} tensors")
    print(f"  floor: np.sum over the arrays in memory  {pass_med * 1e3:7.1f} ms "
          f"(min {pass_min * 1e3:.1f})")
    print(f"  read every weight + np.sum               {floor_med * 1e3:7.1f} ms "
          f"(min {floor_min * 1e3:.1f})")
    print(f"  inspect_weights (64 bins)                {report_med * 1e3:7.1f} ms "
          f"(min {report_min * 1e3:.1f}, first call {first * 1e3:.1f})")
    print(f"    + every lazy field asked               {full_med * 1e3:7.1f} ms "
          "(to_records() and all histograms)")
    print(f"  naive NumPy, same numbers                {naive_med * 1e3:7.1f} ms")
    print(f"  ratio report / in-memory pass            {ratio:7.2f}x  "
          f"(target <= {REPORT_TARGET:.1f}x) {'PASS' if ok else 'FAIL'}")
    print(f"  ratio report / (read + np.sum)           {report_med / floor_med:7.2f}x")
    print(f"  ratio naive / every field asked          {naive_med / full_med:7.2f}x")
    return ok


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
