"""What a conversion costs: compresswidgets' converter (a SavedModel of the model's forward pass
alone, ``_converter.convert_keras``) against TFLite's documented path for a Keras model
(``TFLiteConverter.from_keras_model``, or ``from_concrete_functions`` with the model for a
fixed batch), on the same model in the same process, measured in the same run.

Every variant is converted (its size, its accuracy), so conversion is on the path of every
technique. The peer saves the whole Keras model first, tracing every layer's call for Keras's
own reloading; ours traces one function. Prints seconds and the speed-up per model, checks
that both give the same ops and outputs, and fails if ours is slower than the peer (median of
3 runs). Run: ``.venv/bin/python benchmarks/bench_convert.py`` (about 4 minutes).
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

import compresswidgets as cw
from compresswidgets import _converter, _keras
from compresswidgets import tflite as tfl

FLOOR = 1.0  # the speed-up ours must reach against the peer
REPEATS = 3


def _median_seconds(fn) -> tuple[float, bytes]:
    times, out = [], b""
    for _ in range(REPEATS):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _peer(model, fixed: bool) -> bytes:
    tf = _keras.tf()
    with _keras._quiet_native_logs():
        if not fixed:
            return bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
        function = tf.function(lambda x: model(x, training=False))
        concrete = function.get_concrete_function(*_converter.input_spec(model, 1))
        return bytes(tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
                     .convert())


def main() -> int:
    k = _keras.keras()
    models = {
        "demo CNN (digits)": lambda: cw.demo_model()[0],
        "MobileNetV2 (alpha 0.35, 96x96)": lambda: k.applications.MobileNetV2(
            alpha=0.35, input_shape=(96, 96, 3), weights=None, classes=10),
        "ResNet50 (224x224)": lambda: k.applications.ResNet50(weights=None),
        "Bidirectional LSTM(64), 50 steps": lambda: k.Sequential([
            k.Input((50, 8)), k.layers.Bidirectional(k.layers.LSTM(64)),
            k.layers.Dense(4, activation="softmax")]),
    }
    worst = float("inf")
    for name, build in models.items():
        model = build()
        blob, fixed = _converter.convert_keras(model, "float32")  # warm-up; finds the batch
        ours, blob = _median_seconds(lambda model=model, fixed=fixed: _converter.convert_keras(
            model, "float32", None, fixed)[0])
        peer, theirs = _median_seconds(lambda model=model, fixed=fixed: _peer(model, fixed))
        x = np.random.default_rng(0).uniform(0, 1, (4, *model.input_shape[1:])).astype(
            "float32")
        difference = float(np.max(np.abs(tfl.predict(blob, x) - tfl.predict(theirs, x))))
        same_ops = sorted(tfl.op_names(blob)) == sorted(tfl.op_names(theirs))
        speedup = peer / ours
        worst = min(worst, speedup if same_ops and difference < 1e-4 else 0.0)
        print(f"{name:<34} {model.count_params():>11,} params  ours {ours:6.2f} s  "
              f"from_keras_model {peer:6.2f} s  speed-up {speedup:5.2f}x  "
              f"{'same ops' if same_ops else 'DIFFERENT OPS'}  max output difference "
              f"{difference:.1e}" + ("  (batch 1)" if fixed else ""))
    ok = worst >= FLOOR
    print("PASS" if ok else f"FAIL (expected at least {FLOOR:g}x the peer with the same ops "
                            "and outputs)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
