"""Live-preview latencies and the cost of progress reporting.

1. Preview: time to compute what a layer would look like after one-shot magnitude pruning,
   16-cluster k-means and int8 weight quantization, plus its 64-bin histogram, for the largest
   kernel of the demo model (target < 100 ms) and of ResNet50 (2.4 M weights, target < 300 ms).
   Then end to end in the panels: moving a slider (sparsity, clusters, quantization mode)
   until the new PNG is rendered, same targets.
2. Progress reporting: fine-tuning the demo model with a per-batch progress callback against
   a plain ``model.fit`` of the same clone and epochs, in one process (target: < 5 % slower).

Prints the ratios against the targets; exits 1 when one is missed.
Run: ``.venv/bin/python benchmarks/bench_preview.py``
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

import compresswidgets as cw
from compresswidgets import _keras, _training
from compresswidgets.inspection import histogram_of
from compresswidgets.preview import int8_preview, kmeans_1d, prune_preview
from compresswidgets.techniques._common import clone_with_weights


def timed(fn, runs=7):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def previews(kernel: np.ndarray) -> dict[str, float]:
    return {
        "prune 80%": timed(lambda: histogram_of(prune_preview(kernel, 0.8), 64)),
        "k-means 16": timed(lambda: kmeans_1d(kernel, 16).counts),
        "int8": timed(lambda: histogram_of(int8_preview(kernel), 64)),
    }


def panel_redraws(wb) -> dict[str, float]:
    """Each panel's preview redraw for a slider move, on its default (largest) layer."""
    prune, cluster, quantize = (cw.PruningPanel(wb), cw.ClusteringPanel(wb),
                                cw.QuantizationPanel(wb))
    moves = {
        f"prune: sparsity slider ({prune.preview_layer})":
            (prune._sparsity, [0.6, 0.7, 0.8, 0.9]),
        "cluster: clusters slider": (cluster._clusters, [8, 12, 16, 24]),
        "quantize: mode dynamic <-> float16": (quantize._mode, ["float16", "dynamic"]),
    }
    out = {}
    for what, (control, values) in moves.items():
        step = iter(values * 4)
        out[what] = timed(lambda control=control, step=step: setattr(control, "value",
                                                                     next(step)))
    return out


def main() -> int:
    ok = True
    model, data = cw.demo_model()
    k = _keras.keras()
    resnet = k.applications.ResNet50(weights=None)
    kernels = [w for w in resnet.weights if "kernel" in w.name]
    largest = max(kernels, key=lambda w: w.shape.num_elements())
    cases = [("demo conv2d_1 (18,432 weights)", model.get_layer("conv2d_1").kernel.numpy(), 0.1),
             (f"ResNet50 {largest.name.split('/')[0]} ({largest.shape.num_elements():,} weights)",
              largest.numpy(), 0.3)]
    print("Preview (compute + 64-bin histogram), median of 7:")
    for name, kernel, target in cases:
        for what, seconds in previews(kernel).items():
            good = seconds <= target
            ok = ok and good
            print(f"  {name:<44} {what:<11} {seconds * 1e3:7.1f} ms   ratio to target "
                  f"{seconds / target:5.2f} {'PASS' if good else 'FAIL'}")
    print("Panel redraw (slider moved -> preview PNG rendered), median of 7:")
    rng = np.random.default_rng(0)
    resnet_data = (rng.random((8, 224, 224, 3), np.float32), rng.integers(0, 1000, 8),
                   rng.random((8, 224, 224, 3), np.float32), rng.integers(0, 1000, 8))
    for name, wb, target in (("demo", cw.Workbench(model, data), 0.1),
                             ("ResNet50", cw.Workbench(resnet, resnet_data), 0.3)):
        for what, seconds in panel_redraws(wb).items():
            good = seconds <= target
            ok = ok and good
            print(f"  {name:<10} {what:<40} {seconds * 1e3:7.1f} ms   ratio to target "
                  f"{seconds / target:5.2f} {'PASS' if good else 'FAIL'}")
    settings = _training.compile_settings(model, data, None, 1e-3)
    epochs = 4

    def plain():
        m = clone_with_weights(model)
        m.compile(**settings.build())
        start = time.perf_counter()
        m.fit(data.x_train, data.y_train, batch_size=32, epochs=epochs, verbose=0)
        return time.perf_counter() - start

    def reported():
        m = clone_with_weights(model)
        start = time.perf_counter()
        _training.fine_tune(m, data, settings=settings, epochs=epochs, batch_size=32,
                            technique="bench", progress=lambda report: None)
        return time.perf_counter() - start

    plain(), reported()  # warm-up
    pairs = [(plain(), reported()) for _ in range(5)]
    base = statistics.median(p for p, _ in pairs)
    with_progress = statistics.median(r for _, r in pairs)
    overhead = with_progress / base - 1
    good = overhead < 0.05
    ok = ok and good
    print(f"Fine-tuning the demo {epochs} epochs: plain fit {base:.2f} s, with per-batch "
          f"progress {with_progress:.2f} s: overhead {overhead:+.1%} (target < 5 %) "
          f"{'PASS' if good else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
