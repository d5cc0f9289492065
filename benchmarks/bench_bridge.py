"""What the Keras 3 bridge costs: translating, copying by name and verifying a Keras 3 model,
against the cheapest copy Keras 3 itself makes of the same model (``clone_model`` plus
``set_weights``), measured in the same run.

The bridge runs once per Workbench, so it should cost a small multiple of a plain copy, not a
conversion. Prints seconds and the ratio per model; fails above 10x (median of 3 runs).
Run: ``.venv/bin/python benchmarks/bench_bridge.py`` (about a minute).
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

import compresswidgets as cw  # noqa: F401 - the Keras environment first
from compresswidgets import _bridge

LIMIT = 10.0
REPEATS = 3


def _median_seconds(fn) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    import keras

    models = {
        "MobileNetV2 (alpha 0.35, 96x96)": lambda: keras.applications.MobileNetV2(
            alpha=0.35, input_shape=(96, 96, 3), weights=None),
        "ResNet50 (224x224)": lambda: keras.applications.ResNet50(weights=None),
    }
    worst = 0.0
    for name, build in models.items():
        model = build()
        x = np.random.default_rng(0).uniform(0, 255, (8, *model.input_shape[1:])).astype(
            "float32")

        def clone(model=model):
            copy = keras.models.clone_model(model)
            copy.set_weights(model.get_weights())

        bridged = _bridge.bridge(model, x)  # once to warm up (imports, traces)
        peer = _median_seconds(clone)
        ours = _median_seconds(lambda model=model, x=x: _bridge.bridge(model, x))
        ratio = ours / peer
        worst = max(worst, ratio)
        print(f"{name:<34} {model.count_params():>11,} params  bridge {ours:6.2f} s  "
              f"clone {peer:6.2f} s  ratio {ratio:5.2f}  max error {bridged.max_error:.1e}")
    ok = worst <= LIMIT
    print("PASS" if ok else f"FAIL (expected the bridge within {LIMIT:g}x of a clone)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
