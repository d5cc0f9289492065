"""ResNet50(weights=None): float32 against dynamic-range .tflite, measured side by side.

Reproduces the result users quote: the dynamic-range file is about a quarter of the float one
and its inference memory far lower. Prints the size, memory and latency ratios (dynamic /
float) from ``cw.benchmark`` (each variant in a fresh LiteRT process, 1 thread, batch 1).
Run: ``.venv/bin/python benchmarks/bench_resnet.py`` (a few minutes: two conversions).
"""

from __future__ import annotations

import sys

import compresswidgets as cw
from compresswidgets import _keras, tflite

RUNS = 20


def main() -> int:
    model = _keras.keras().applications.ResNet50(weights=None)
    float_blob = tflite.convert(model, "float32")
    dynamic_blob = tflite.convert(model, "dynamic")
    variants = [cw.Variant("ResNet50 float32", {"technique": "original"}, tflite=float_blob),
                cw.Variant("ResNet50 dynamic", {"technique": "quantize"}, tflite=dynamic_blob)]
    report = cw.benchmark(variants, threads=(1,), runs=RUNS, warmup=3, timeout=900)
    print(report)
    f, d = report.rows
    if not (f.ok and d.ok):
        print("FAIL: a measurement failed")
        return 1
    size, memory = d.size_bytes / f.size_bytes, d.memory_mb / f.memory_mb
    latency = d.median_ms / f.median_ms
    print(f"size    dynamic/float {size:5.2f}  ({d.size_bytes / 2**20:.1f} vs "
          f"{f.size_bytes / 2**20:.1f} MiB)")
    print(f"memory  dynamic/float {memory:5.2f}  ({d.memory_mb:.0f} vs {f.memory_mb:.0f} MB)")
    print(f"latency dynamic/float {latency:5.2f}  ({d.median_ms:.1f} vs {f.median_ms:.1f} ms "
          "median)")
    ok = size < 0.3 and memory < 0.6
    print("PASS" if ok else "FAIL (expected size < 0.3x and memory < 0.6x)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
