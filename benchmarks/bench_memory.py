"""Does the kernel's memory stay bounded over many variants?

A notebook user applies 20 or more variants in one kernel. This script measures the resident
memory (RSS) of a fresh Python process after 1 and after 20 prune + quantize cycles on the demo
model with the Workbench (each cycle: prune 50 % with 1 epoch of fine-tuning, dynamic-range
quantization, accuracy and sizes of both variants), and, as the peer measured in the same run,
the same number of TFLiteConverter.convert() calls made directly in a process, which is what a
notebook without the converter worker would do.

Prints the growth per cycle of each and their ratio; exits 1 when the Workbench grows by more
than 10 MB per cycle. Run: ``.venv/bin/python benchmarks/bench_memory.py``
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

CYCLES = 20
LIMIT_MB_PER_CYCLE = 10.0

WORKBENCH = f"""
import gc, json, psutil
import compresswidgets as cw
rss = lambda: psutil.Process().memory_info().rss / 2**20
model, data = cw.demo_model()
wb = cw.Workbench(model, data)
wb.original.accuracy, wb.original.gzipped_bytes
marks = {{}}
for i in range(1, {CYCLES} + 1):
    p = wb.prune(0.5, epochs=1)
    q = wb.quantize("dynamic", base=p)
    for v in (p, q):
        v.accuracy, v.size_bytes, v.gzipped_bytes
    gc.collect()
    if i in (1, {CYCLES}):
        marks[i] = rss()
print(json.dumps({{"after_1": marks[1], "after_n": marks[{CYCLES}], "variants": len(wb.variants)}}))
"""

DIRECT = f"""
import gc, json, math, psutil
import compresswidgets as cw
from compresswidgets import _keras
tf, keras, tfmot = _keras.tf(), _keras.keras(), _keras.tfmot()
rss = lambda: psutil.Process().memory_info().rss / 2**20
model, (x_train, y_train, x_test, y_test) = cw.demo_model()
steps = math.ceil(len(x_train) / 32)
marks = {{}}
for i in range(1, {CYCLES} + 1):
    base = keras.models.clone_model(model)
    base.set_weights(model.get_weights())
    schedule = tfmot.sparsity.keras.ConstantSparsity(0.5, 0, frequency=steps // 2)
    pruned = tfmot.sparsity.keras.prune_low_magnitude(base, pruning_schedule=schedule)
    pruned.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    pruned.fit(x_train, y_train, batch_size=32, epochs=1, verbose=0,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    stripped.predict(x_test, verbose=0)
    converter = tf.lite.TFLiteConverter.from_keras_model(stripped)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.convert()
    del base, pruned, stripped, converter
    gc.collect()
    if i in (1, {CYCLES}):
        marks[i] = rss()
print(json.dumps({{"after_1": marks[1], "after_n": marks[{CYCLES}]}}))
"""


def measure(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    wb = measure(WORKBENCH)
    direct = measure(DIRECT)
    wb_growth = (wb["after_n"] - wb["after_1"]) / (CYCLES - 1)
    direct_growth = (direct["after_n"] - direct["after_1"]) / (CYCLES - 1)
    print(f"Workbench, {CYCLES} prune+quantize cycles on the demo model ({wb['variants']} "
          "variants kept):")
    print(f"  RSS after 1 cycle   {wb['after_1']:8.0f} MB")
    print(f"  RSS after {CYCLES} cycles {wb['after_n']:8.0f} MB   growth "
          f"{wb_growth:+.1f} MB/cycle (limit {LIMIT_MB_PER_CYCLE:.0f})")
    print(f"Peer: the same {CYCLES} cycles written with tfmot and the converter directly "
          "(nothing kept):")
    print(f"  RSS after 1 cycle   {direct['after_1']:8.0f} MB")
    print(f"  RSS after {CYCLES} cycles {direct['after_n']:8.0f} MB   growth "
          f"{direct_growth:+.1f} MB/cycle")
    ratio = wb_growth / direct_growth if direct_growth > 0 else float("nan")
    print(f"  ratio of growth per cycle, Workbench / plain tfmot code: {ratio:.2f}")
    ok = wb_growth <= LIMIT_MB_PER_CYCLE
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
