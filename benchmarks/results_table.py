"""The classic compression table on the demo model, written to docs/results.md.

For the float model, every post-training quantization mode, QAT, pruning 50/80 %, clustering
16/32 and pruned + clustered + QAT (PCQAT): accuracy of the .tflite model run by the LiteRT
interpreter on the 450 test digits, .tflite size and gzipped size. Anyone can rerun it:
``.venv/bin/python benchmarks/results_table.py`` (about 2 minutes on 2 cores).
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import compresswidgets as cw

OUT = Path(__file__).resolve().parent.parent / "docs" / "results.md"


def main() -> int:
    start = time.perf_counter()
    model, data = cw.demo_model()
    wb = cw.Workbench(model, data)
    rows = [("float32 (original)", wb.original)]
    for mode in ("dynamic", "float16", "int8", "int8-only", "int16x8"):
        rows.append((f"post-training {mode}", wb.quantize(mode)))
    rows.append(("QAT (1 epoch)", wb.quantize("qat", epochs=1)))
    p50 = wb.prune(0.5, epochs=2)
    p80 = wb.prune(0.8, epochs=4)
    rows += [("pruned 50 % (2 epochs)", p50), ("pruned 80 % (4 epochs)", p80)]
    rows += [("clustered 16 (1 epoch)", wb.cluster(16, epochs=1)),
             ("clustered 32 (1 epoch)", wb.cluster(32, epochs=1))]
    pc = wb.cluster(16, preserve_sparsity=True, epochs=1, base=p80)
    rows.append(("pruned 80 % + clustered 16 + PCQAT (1 epoch)",
                 wb.quantize("qat", epochs=1, base=pc)))
    rows.append(("pruned 80 % + clustered 16 + dynamic", wb.quantize("dynamic", base=pc)))
    ref = wb.original
    lines = [
        "# Results on the demo model",
        "",
        "Produced by `benchmarks/results_table.py` (rerun it to refresh this page). Model: the",
        "digits CNN of `cw.demo_model()` (32,810 parameters); accuracy of each `.tflite` run by",
        "the LiteRT interpreter on the 450 test images; gzip at level 9. Keras variants (pruned,",
        "clustered) are converted as plain float32: their gain shows only once gzipped.",
        "",
        "| variant | accuracy | Δ vs float | .tflite bytes | gzipped bytes | gzipped x smaller |",
        "|---|---|---|---|---|---|",
    ]
    for label, v in rows:
        acc = v.tflite_accuracy
        lines.append(
            f"| {label} | {acc:.2%} | {acc - ref.tflite_accuracy:+.2%} | {v.size_bytes:,} | "
            f"{v.gzipped_bytes:,} | {v.gzipped_ratio:.1f}x |")
    lines += [
        "",
        f"Python {platform.python_version()}, TensorFlow {cw._keras.tf().__version__}, "
        f"tfmot 0.8.1; {time.perf_counter() - start:.0f} s for the whole table on this machine.",
        "Fine-tuning runs are not seeded, so accuracies move by a point or so between runs.",
        "",
    ]
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
