"""The command line, over the same engine as the panels (no logic of its own).

    compresswidgets inspect MODEL [--json]
    compresswidgets compress MODEL --data DATA.npz --recipe RECIPE --out DIR
                             [--max-drop X] [--max-gzipped-bytes N]
    compresswidgets benchmark FILE.tflite ... [--threads 1,2] [--runs 50] [--csv F] [--json F]

Exit status: 0 done; 1 a gate missed (one line says which and by how much); 2 bad input or a
failure (one line: what, and the fix; ``--debug`` adds the traceback).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path
from typing import Any

__all__ = ["main"]

DATA_HELP = ("an .npz file holding the arrays x_train, y_train, x_test and y_test (e.g. "
             "np.savez('data.npz', x_train=..., y_train=..., x_test=..., y_test=...))")
RECIPE_HELP = ("a recipe: the .json that wb.recipe() wrote, or text, each step on the one "
               "before: \"prune 0.8 epochs=2, quantize int8\" (steps: prune SPARSITY, cluster "
               "N, quantize MODE; options key=value: epochs, seed, schedule, init, "
               "preserve_sparsity, representative_samples, ...)")


class GateMissed(Exception):
    """A --max-* gate the chosen variant does not meet (exit status 1)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="compresswidgets",
        description="Inspect, compress and benchmark Keras models for the edge (the engine of "
                    "the compresswidgets panels).")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True)

    inspect = sub.add_parser("inspect", help="per-layer weight statistics of a model")
    inspect.add_argument("model", metavar="MODEL",
                         help="a .keras or .h5 file, or a SavedModel folder")
    inspect.add_argument("--json", action="store_true", help="JSON instead of a table")

    compress = sub.add_parser(
        "compress", help="make the variants of a recipe; write .tflite, JSON, report",
        description="Make the recipe's variants of MODEL (fine-tuned on DATA), write each "
                    "variant's .tflite and JSON, recipe.json, summary.json and report.html "
                    "into OUT. The last step's variant is the one the gates judge.")
    compress.add_argument("model", metavar="MODEL",
                          help="a .keras or .h5 file, or a SavedModel folder")
    compress.add_argument("--data", required=True, metavar="DATA.npz", help=DATA_HELP)
    compress.add_argument("--recipe", required=True, metavar="RECIPE", help=RECIPE_HELP)
    compress.add_argument("--out", required=True, metavar="DIR",
                          help="the folder to write (created)")
    compress.add_argument("--max-drop", type=float, default=None, metavar="X",
                          help="fail (exit 1) when the chosen variant's metric is worse than "
                               "the original's by more than this, e.g. 0.01")
    compress.add_argument("--max-gzipped-bytes", type=int, default=None, metavar="N",
                          help="fail (exit 1) when the chosen variant's gzipped .tflite is "
                               "larger than this")
    compress.add_argument("--formats", default="tflite,json",
                          help="what to write per variant: some of tflite, c, keras, json")

    bench = sub.add_parser("benchmark", help="measure .tflite files with LiteRT")
    bench.add_argument("files", nargs="+", help=".tflite files")
    bench.add_argument("--threads", default="1", help="thread counts, e.g. 1,2")
    bench.add_argument("--runs", type=int, default=50, help="timed runs")
    bench.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    bench.add_argument("--csv", default=None, help="write the rows as CSV here")
    bench.add_argument("--json", default=None, help="write the rows as JSON here")
    return parser


# --------------------------------------------------------------------------- commands
def _inspect(args: argparse.Namespace) -> int:
    import compresswidgets as cw
    from compresswidgets._files import json_text

    report = cw.inspect_weights(cw.load_model(args.model, compile=False), bins=None)
    rows = [t.as_dict() for t in report.tensors]
    if args.json:
        print(json_text({"model": report.model_name, "params": report.total_params,
                         "sparsity": report.sparsity, "tensors": rows}))
        return 0
    print(f"{report.model_name}: {report.total_params:,} parameters, "
          f"{report.float32_bytes / 1e6:.2f} MB as float32, sparsity {report.sparsity:.2%}")
    print(f"{'layer':<28} {'class':<18} {'weight':<16} {'params':>9} {'sparsity':>8} "
          f"{'min':>9} {'max':>9}")
    for r in rows:
        print(f"{r['layer'][:28]:<28} {r['layer_class'][:18]:<18} {r['weight'][:16]:<16} "
              f"{r['params']:>9,} {r['sparsity']:>8.1%} {r['min']:>9.3g} {r['max']:>9.3g}")
    return 0


def load_data(path: str) -> tuple[Any, ...]:
    """The four arrays of an .npz, or a one-line error naming what is missing."""
    import numpy as np

    where = Path(path).expanduser()
    if not where.is_file():
        raise FileNotFoundError(f"No data file at {path!r}. Expected {DATA_HELP}.")
    try:
        with np.load(where, allow_pickle=False) as npz:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in npz]
            if missing:
                raise ValueError(f"{path!r} has {sorted(npz.files)} but lacks "
                                 f"{', '.join(missing)}. Expected {DATA_HELP}.")
            return tuple(npz[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    except (OSError, EOFError) as exc:  # not an .npz at all
        raise ValueError(f"{path!r} is not an .npz file ({exc}). Expected {DATA_HELP}.") \
            from None


class _Bars:
    """One tqdm bar per fine-tuning step (a real progress bar, on stderr)."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.key: tuple | None = None

    def __call__(self, p: Any) -> None:
        from tqdm import tqdm

        key = (p.technique, p.epochs, p.batches)
        if self.bar is None or self.key != key or self.bar.n >= self.bar.total:
            self.close()
            self.bar = tqdm(total=p.epochs * p.batches, desc=f"{p.technique} fine-tuning",
                            unit="batch", file=sys.stderr, leave=False,
                            disable=None)  # None: only on a terminal, not in a CI log
            self.key = key
        self.bar.n = (p.epoch - 1) * p.batches + p.batch
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in list(p.logs.items())[:2]},
                             refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _compress(args: argparse.Namespace) -> int:
    import compresswidgets as cw
    from compresswidgets import recipe as rc
    from compresswidgets import report as rp
    from compresswidgets._files import json_text, write_files
    from compresswidgets.export import check_formats, files_for

    formats = check_formats([f.strip() for f in args.formats.split(",") if f.strip()])
    recipe = rc.load(args.recipe)  # bad input is refused before the model loads
    data = load_data(args.data)
    model = cw.load_model(args.model)
    bars = _Bars()
    try:
        wb = cw.Workbench.replay(recipe, model, data, progress=bars)
    finally:
        bars.close()
    made = list(wb.variants[1:])
    chosen = made[-1] if made else wb.original
    files: dict[str, bytes | str] = {}
    for v in made:  # a quantized variant has no .keras: its .tflite is the model
        mine = [f for f in formats if f != "keras" or v.has_keras_model]
        for written in files_for(v, mine).values():
            files.update(written)
    rows = wb.compare()
    summary = {"chosen": chosen.name, "metric": wb.metric.name,
               "greater_is_better": wb.metric.greater_is_better, "variants": rows}
    files["summary.json"] = json_text(summary)
    files["recipe.json"] = json_text(wb.recipe())
    files["report.html"] = rp.render(wb)
    out = Path(args.out).expanduser()
    write_files(out, files)  # all of them or none
    print(wb.compare())
    print(f"wrote {len(files)} files to {out}")
    _gate(wb, chosen, args.max_drop, args.max_gzipped_bytes)
    return 0


def _gate(wb: Any, chosen: Any, max_drop: float | None, max_gzipped: int | None) -> None:
    metric = wb.metric
    if max_drop is not None:
        ref, got = wb.original.accuracy, chosen.accuracy
        drop = metric.drop(ref, got)
        if not metric.within(drop, max_drop):
            raise GateMissed(f"{chosen.name!r}: {metric.name} {metric.format(got)} is "
                             f"{drop:.4f} worse than the original's {metric.format(ref)}, "
                             f"over --max-drop {max_drop}")
    if max_gzipped is not None and chosen.gzipped_bytes > max_gzipped:
        raise GateMissed(f"{chosen.name!r}: gzipped .tflite {chosen.gzipped_bytes:,} bytes, "
                         f"over --max-gzipped-bytes {max_gzipped:,}")


def _benchmark(args: argparse.Namespace) -> int:
    from compresswidgets.benchmarking import benchmark
    from compresswidgets.variant import Variant

    try:
        threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"--threads {args.threads!r} is not a list of numbers; expected e.g. "
                         "--threads 1,2") from None
    variants = []
    for name in args.files:
        path = Path(name).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"No .tflite file at {name!r}. Pass the paths of .tflite "
                                    "files, e.g. out/prune_80.tflite")
        variants.append(Variant(path.stem, {"technique": "file", "path": str(path)},
                                tflite=path.read_bytes()))
    report = benchmark(variants, threads=threads, runs=args.runs, warmup=args.warmup)
    print(str(report))
    if args.csv:
        report.to_csv(args.csv)
    if args.json:
        report.to_json(args.json)
    failed = [r for r in report.rows if r.error]
    return 2 if failed and len(failed) == len(report.rows) else 0


# --------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    """Run the command line; the exit status (0 done, 1 a gate missed, 2 an error)."""
    parser = _parser()
    args = parser.parse_args(argv)
    command = {"inspect": _inspect, "compress": _compress, "benchmark": _benchmark}[
        args.command]
    try:
        return command(args)
    except GateMissed as exc:
        print(f"compresswidgets: gate missed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("compresswidgets: interrupted; nothing was written.", file=sys.stderr)
        return 2
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        text = " ".join(str(exc).split()) or type(exc).__name__
        print(f"compresswidgets: error: {text}" + ("" if args.debug else
                                                   " (--debug shows the traceback)"),
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
