"""The zoo matrix: every technique on every model family of tests/zoo, and what came out.

Prints family x technique -> ok / error, the Workbench's metric (accuracy, IoU, MAE, ...),
.tflite size, gzipped size and seconds, against the original of the same family, and writes
the table to docs/zoo.md.

    python benchmarks/zoo.py                 # every family
    python benchmarks/zoo.py lstm unet       # some of them
"""

from __future__ import annotations

import pathlib
import sys
import time
import warnings

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "zoo"))

from families import FAMILIES  # noqa: E402

import compresswidgets as cw  # noqa: E402

TECHNIQUES = {
    "original": lambda wb: wb.original,
    "dynamic": lambda wb: wb.quantize("dynamic"),
    "float16": lambda wb: wb.quantize("float16"),
    "int8": lambda wb: wb.quantize("int8"),
    "int8-only": lambda wb: wb.quantize("int8-only"),
    "prune 50 %": lambda wb: wb.prune(0.5, epochs=2),
    "cluster 16": lambda wb: wb.cluster(16, epochs=1),
    "qat": lambda wb: wb.quantize("qat", epochs=1),
}


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def run(names: list[str]) -> list[dict]:
    rows = []
    for family in names:
        z = FAMILIES[family]()
        wb = cw.Workbench(z.model, z.data, **z.workbench_kwargs())
        for technique, make in TECHNIQUES.items():
            start = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    v = make(wb)
                    row = {"metric": wb.metric.format(v.accuracy), "size": v.size_bytes,
                           "gzipped": v.gzipped_bytes, "status": "ok",
                           "notes": " ".join(v.notes)}
            except Exception as exc:  # the matrix records what fails, and why
                row = {"metric": "", "size": None, "gzipped": None, "status": "error",
                       "notes": _one_line(exc)}
            row.update(family=family, technique=technique, metric_name=wb.metric.name,
                       seconds=time.perf_counter() - start, params=z.model.count_params())
            rows.append(row)
            print(f"{family:<14} {technique:<11} {row['status']:<6} {row['metric_name']} "
                  f"{row['metric']:>8} {row['size'] or '':>9} {row['gzipped'] or '':>9} "
                  f"{row['seconds']:6.1f}s  {row['notes'][:90]}", flush=True)
    return rows


def default_selection(runs: int = 3) -> tuple[list[float], list[float]]:
    """The demo CNN pruned to 80 % (2 epochs): every layer against the default selection
    (layers under 1,024 weights left out), ``runs`` times each."""
    model, data = cw.demo_model()
    wb = cw.Workbench(model, data)
    every = [layer.name for layer in model.layers if layer.weights]
    everything, default = [], []
    for _ in range(runs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            everything.append(wb.prune(0.8, epochs=2, layers=every).accuracy)
            default.append(wb.prune(0.8, epochs=2).accuracy)
    print(f"demo CNN at 80 %: every layer {everything}, default selection {default}")
    return everything, default


def markdown(rows: list[dict], defaults: tuple[list[float], list[float]] | None) -> str:
    lines = [
        "# What models work",
        "",
        "Produced by `python benchmarks/zoo.py` (the families of `tests/zoo/families.py`: small",
        "models with learnable synthetic data, trained for a few epochs on 2 CPU cores). Each",
        "technique starts from the family's original; its metric is the Workbench's (accuracy,",
        "or the family's own: IoU for the UNet, MAE for the regressor, lower is better). Sizes",
        "are of the .tflite file; fine-tuning is 2 epochs for pruning, 1 for clustering and QAT.",
        "An error row is the message the user gets. Each run trains the families afresh: a",
        "small model's accuracy on its 64 test samples varies between runs (the MobileNet's",
        "original from 62 % to 91 %), so read a row against the original of the same run.",
        "",
        "| family | params | technique | status | metric | .tflite B | gzipped B | s | notes |",
        "|---|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        notes = r["notes"].replace("|", "\\|")
        metric = f"{r['metric_name']} {r['metric']}" if r["metric"] else ""
        lines.append(
            f"| {r['family']} | {r['params']:,} | {r['technique']} | {r['status']} | {metric} | "
            f"{r['size'] or ''} | {r['gzipped'] or ''} | {r['seconds']:.1f} | {notes} |")
    if defaults is not None:
        every, default = defaults
        lines += [
            "",
            "## The default layer selection",
            "",
            "The demo CNN pruned to 80 % with 2 epochs of fine-tuning, 3 runs each: with every",
            "layer pruned (the 640-weight first conv and the 330-weight classifier included) the",
            "accuracy is " + ", ".join(f"{a:.3f}" for a in every) + "; with the default",
            "selection (layers under 1,024 weights left out, as the panels tick them) "
            + ", ".join(f"{a:.3f}" for a in default) + ".",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    names = sys.argv[1:] or list(FAMILIES)
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        sys.exit(f"Unknown families {unknown}; expected some of {list(FAMILIES)}.")
    rows = run(names)
    ok = sum(r["status"] == "ok" for r in rows)
    print(f"\n{ok} of {len(rows)} family x technique cells made a variant.")
    if not sys.argv[1:]:
        (ROOT / "docs" / "zoo.md").write_text(markdown(rows, default_selection()))
        print("Wrote docs/zoo.md")


if __name__ == "__main__":
    main()
