"""Does cw.benchmark measure what the maintained tool measures, and what does it add?

1. Agreement: median latency from ``cw.benchmark`` against ai_edge_litert's own
   ``tools/benchmark_litert_model.py`` (CompiledModel API), same model, same thread count,
   same runs, measured side by side in this run. Target: within 15 %.
   Models: the demo CNN (at a fixed batch of 64: the tool cannot resize inputs and prints
   times rounded to 0.01 ms, too coarse for the 8 µs of one digit) and Keras
   ``MobileNetV2(weights=None)`` at 224x224, batch 1.
2. Overhead: our timing loop (one ``perf_counter`` pair and a list append per invoke) against
   a bare ``interpreter.invoke()`` loop in the same process, interleaved. Target: under 3 %.

Prints the ratios; exits 1 when a target is missed.
Run: ``.venv/bin/python benchmarks/bench_harness.py`` (about 2 minutes).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import compresswidgets as cw
from compresswidgets import _keras, tflite

RUNS = 200
AGREEMENT = 0.15
OVERHEAD = 0.03


def demo_fixed_batch(batch: int = 64) -> bytes:
    model, _ = cw.demo_model()
    k = _keras.keras()
    fixed = k.Sequential([k.layers.InputLayer(input_shape=(8, 8, 1), batch_size=batch),
                          *[type(layer).from_config(layer.get_config())
                            for layer in model.layers]])
    fixed.set_weights(model.get_weights())
    return tflite.convert(fixed)


def mobilenet() -> bytes:
    k = _keras.keras()
    return tflite.convert(k.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3)))


def tool_median(path: str, threads: int) -> float:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model",
                        "--model", path, "--num_runs", str(RUNS), "--warmup_runs", "10",
                        "--num_threads", str(threads), "--result_json", out.name],
                       check=True, capture_output=True)
        return float(json.loads(Path(out.name).read_text())["latency"]["median_ms"])


def ours_median(blob: bytes, threads: int) -> float:
    variant = cw.Variant("model", {"technique": "original"}, tflite=blob)
    row = cw.benchmark([variant], threads=(threads,), runs=RUNS, warmup=10).rows[0]
    if not row.ok:
        raise RuntimeError(row.error)
    return row.median_ms


OVERHEAD_SCRIPT = """
import sys, time
from ai_edge_litert.interpreter import Interpreter
import numpy as np
it = Interpreter(model_path=sys.argv[1], num_threads=1)
it.allocate_tensors()
d = it.get_input_details()[0]
it.set_tensor(d["index"], np.random.default_rng(0).standard_normal(d["shape"]).astype(np.float32))
for _ in range(20):
    it.invoke()
n = int(sys.argv[2])
bare, harness = [], []
for _ in range(7):
    t0 = time.perf_counter()
    for _ in range(n):
        it.invoke()
    bare.append((time.perf_counter() - t0) / n)
    times = []
    t1 = time.perf_counter()
    for _ in range(n):
        s = time.perf_counter()
        it.invoke()
        times.append(time.perf_counter() - s)
    harness.append((time.perf_counter() - t1) / n)
print(min(bare), min(harness))
"""


def overhead(path: str, n: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(OVERHEAD_SCRIPT), path, str(n)],
                         check=True, capture_output=True, text=True)
    bare, harness = (float(v) for v in out.stdout.split())
    return bare, harness


def main() -> int:
    ok = True
    with tempfile.TemporaryDirectory() as folder:
        models = {"demo CNN, batch 64": (demo_fixed_batch(), 2000),
                  "MobileNetV2 224x224": (mobilenet(), 50)}
        print(f"Median latency, {RUNS} runs, 1 thread: cw.benchmark vs benchmark_litert_model")
        for name, (blob, overhead_runs) in models.items():
            path = str(Path(folder) / (name.split()[0] + ".tflite"))
            Path(path).write_bytes(blob)
            tool = statistics.median(tool_median(path, 1) for _ in range(3))
            ours = statistics.median(ours_median(blob, 1) for _ in range(3))
            ratio = ours / tool
            good = abs(ratio - 1) <= AGREEMENT
            ok = ok and good
            print(f"  {name:<22} ours {ours:8.3f} ms   tool {tool:8.3f} ms   ratio {ratio:5.2f} "
                  f"(target 1 ± {AGREEMENT:.2f}) {'PASS' if good else 'FAIL'}")
            bare, harness = overhead(path, overhead_runs)
            extra = harness / bare - 1
            good = extra <= OVERHEAD
            ok = ok and good
            print(f"  {'':<22} harness overhead over a bare invoke loop: {extra:+.1%} "
                  f"({harness * 1e3:.4f} vs {bare * 1e3:.4f} ms; target < {OVERHEAD:.0%}) "
                  f"{'PASS' if good else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
