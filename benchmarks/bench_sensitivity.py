"""How long does a sensitivity run take, against its floor measured in the same run?

A sensitivity run is at least ``layers x levels`` evaluations of the model on the test
sample, so the floor is that many times one full-model evaluation (timed here, the median of
several). The run adds the base's float .tflite (for the size estimate), changing the weights,
and, with "int8", one quantization-debugger conversion in the worker.

* demo CNN: the default run (prune 50/80/90 %, cluster 32/16/8, int8 weights and activation
  errors) on the 450 test samples. Target: under 15 s. Peer: the same 15 one-layer pruned
  variants made the old way, ``wb.prune(level, epochs=0, layers=[name])``.
* MobileNetV2 (alpha 0.35, 96x96, weights=None, 4 classes): the default run on 500 samples.
  Target: under 5 minutes.

Prints the times and ratios; exits 1 when a target is missed.
Run: ``.venv/bin/python benchmarks/bench_sensitivity.py`` (about 4 minutes).
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

import compresswidgets as cw
from compresswidgets import _keras
from compresswidgets import sensitivity as sens

DEMO_TARGET_S = 15.0
MOBILENET_TARGET_S = 300.0


def one_evaluation(wb: cw.Workbench, samples: int | None) -> float:
    """Median seconds of one full-model evaluation on the run's sample, as the run does it."""
    x, y = wb.data.x_test, wb.data.y_test
    n = len(x) if samples is None else min(samples, len(x))
    picked = sens.sample_indices(len(x), n)
    evaluate = sens.Evaluator(wb.original.keras_model, x[picked], y[picked], wb.metric)
    evaluate()  # traced once
    times = []
    for _ in range(5):
        start = time.perf_counter()
        evaluate()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed_run(name: str, wb: cw.Workbench, samples: int | None, target: float) -> bool:
    _ = wb.original.gzipped_bytes  # the float .tflite is the Workbench's, not the run's
    start = time.perf_counter()
    s = wb.sensitivity(samples=samples)
    took = time.perf_counter() - start
    evaluations = len(s.rows)
    floor = evaluations * one_evaluation(wb, samples)
    layers = len({r["layer"] for r in s.rows})
    print(f"{name}: {layers} layers, {evaluations} evaluations on {s.samples} samples: "
          f"{took:.1f} s (target < {target:.0f} s); floor {evaluations} x one evaluation = "
          f"{floor:.1f} s; ratio {took / floor:.2f}x the floor")
    return took < target


def demo_peer(wb: cw.Workbench) -> None:
    """The 15 one-layer pruned variants through wb.prune, as before sensitivity existed."""
    names = [layer.name for layer in wb.original.keras_model.layers if layer.weights]
    start = time.perf_counter()
    for level in (0.5, 0.8, 0.9):
        for name in names:
            _ = wb.prune(level, epochs=0, layers=[name]).keras_accuracy
    took = time.perf_counter() - start
    print(f"demo CNN, peer: {len(names) * 3} one-layer prunes with wb.prune(epochs=0): "
          f"{took:.1f} s")


def mobilenet() -> cw.Workbench:
    k = _keras.keras()
    rng = np.random.default_rng(0)
    x = rng.random((756, 96, 96, 3), dtype=np.float32)
    y = np.argmax([x[:, :48, :48].mean((1, 2, 3)), x[:, :48, 48:].mean((1, 2, 3)),
                   x[:, 48:, :48].mean((1, 2, 3)), x[:, 48:, 48:].mean((1, 2, 3))], axis=0)
    model = k.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(96, 96, 3),
                                       classes=4)
    return cw.Workbench(model, (x[:256], y[:256], x[256:], y[256:]))


def main() -> int:
    model, data = cw.demo_model()
    ok = timed_run("demo CNN", cw.Workbench(model, data), None, DEMO_TARGET_S)
    demo_peer(cw.Workbench(model, data))
    ok &= timed_run("MobileNetV2 0.35 96x96", mobilenet(), 500, MOBILENET_TARGET_S)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
