"""One self-contained HTML page from a Workbench: what a reviewer needs, offline.

No script, font, style sheet or image is fetched: the styles are inline and every plot is a
PNG in a data URI, so the file opens from a mail attachment or a CI artifact. Every string
that comes from the model or the user (layer and variant names, notes, code) is escaped.

Example:
    >>> wb.report("report.html", benchmark=report, sensitivity=s)   # doctest: +SKIP
"""

from __future__ import annotations

import base64
import datetime
import html
import io
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from compresswidgets._files import json_text, write_files
from compresswidgets._keras import describe

if TYPE_CHECKING:
    from compresswidgets.benchmarking import BenchmarkReport
    from compresswidgets.sensitivity import Sensitivity
    from compresswidgets.variant import Variant
    from compresswidgets.workbench import Workbench

__all__ = ["render", "write"]

STYLE = """
body{font-family:-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:2em auto;
max-width:1100px;color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:2em} h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{padding:.25em .7em;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums} th{background:#f6f8fa}
img{max-width:100%} .muted{color:#666} pre{background:#f6f8fa;padding:.8em;overflow:auto;
font-size:.85em} details{margin:.4em 0} .plots{display:flex;flex-wrap:wrap;gap:1em}
.bad{color:#b02a1a}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _png(draw: Callable[[Any], Any], size: tuple[float, float] = (6.0, 3.4),
         axes: int = 1) -> str:
    """An <img> of what ``draw(ax)`` draws, as a data URI (Agg, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=96, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots(1, axes)
    draw(list(ax) if axes > 1 else ax)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img alt='plot' src='data:image/png;base64,{data}'/>"


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td class='{'n' if _numeric(c) else ''}'>{esc(c)}</td>"
                         for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _numeric(cell: Any) -> bool:
    text = str(cell).replace(",", "").replace("%", "").replace("x", "").strip("+-–")
    try:
        float(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- sections
def _model_section(wb: Workbench) -> str:
    from compresswidgets.inspection import inspect_weights
    from compresswidgets.plots import plot_layer_overview

    report = inspect_weights(wb.original.keras_model, bins=None)
    rows = [[wb.user_name(s.layer), s.layer_class, f"{s.params:,}", f"{s.sparsity:.1%}"]
            for s in report.layers]
    return (f"<h2>The model</h2><p>{esc(wb.original.recipe.get('model'))}: "
            f"{report.total_params:,} parameters, {report.float32_bytes / 1e6:.2f} MB as "
            f"float32; metric: {esc(wb.metric.name)} ({esc(wb.metric.direction)}), "
            f"{len(wb.data.x_test):,} test samples.</p>"
            + _png(lambda ax: plot_layer_overview(report, ax), (9, 3.2))
            + _table(["layer", "class", "parameters", "sparsity"], rows))


def _variants_section(wb: Workbench, variants: list[Variant]) -> str:
    metric = wb.metric
    rows = []
    for r in wb.compare(variants):
        rows.append([r["name"], r["technique"], r["parent"] or "–",
                     metric.format(r["accuracy"]), metric.format_delta(r["accuracy_delta"]),
                     f"{r['size_bytes']:,}", f"{r['gzipped_bytes']:,}",
                     f"{r['gzipped_ratio']:.2f}x", f"{r['sparsity']:.1%}"])
    return ("<h2>Variants against the original</h2>"
            + _table(["variant", "technique", "base", metric.name, "vs original",
                      ".tflite bytes", "gzipped bytes", "gzipped x smaller", "sparsity"], rows))


def _layer_rows(wb: Workbench, v: Variant) -> tuple[list[str], list[list[Any]]]:
    header = ["layer", "class", "parameters", "sparsity", "distinct values"]
    quantized = v.is_quantized
    if quantized:
        header += ["TFLite dtype", "max |error|", "SNR dB"]
    rows = []
    for r in v.layers:
        row = [wb.user_name(r["layer"]), r["class"], f"{r['params']:,}", f"{r['sparsity']:.1%}",
               f"{r['distinct']:,}"]
        if quantized:
            row += [r.get("tflite_dtype") or "–",
                    "–" if r.get("max_abs_error") is None else f"{r['max_abs_error']:.2e}",
                    "–" if r.get("snr_db") is None else f"{r['snr_db']:.1f}"]
        rows.append(row)
    return header, rows


def _before_after(wb: Workbench, v: Variant) -> str:
    from compresswidgets.plots import plot_before_after

    if v.parent is None:
        return ""
    layers = sorted(v.layers, key=lambda r: -r["params"])
    for r in layers:  # the largest layer whose kernel both sides hold
        try:
            before, after = v.parent.kernel(r["layer"]), v.kernel(r["layer"])
        except KeyError:
            continue
        skip = float(np.mean(after == 0)) > 0.05
        name = wb.user_name(r["layer"])
        return _png(lambda ax, b=before, a=after, n=name, s=skip: plot_before_after(
            b, a, ax, label="after" + (" (zeros not shown)" if s else ""),
            title=f"{n}: before and after", now="before", exclude_zeros=s, color="#2a9d55"))
    return ""


def _variant_section(wb: Workbench, v: Variant) -> str:
    header, rows = _layer_rows(wb, v)
    notes = "".join(f"<li>{esc(n)}</li>" for n in v.notes)
    recipe = json_text(v.recipe)
    return (f"<h3>{esc(v.name)}</h3>"
            + (f"<ul class='muted'>{notes}</ul>" if notes else "")
            + _table(header, rows) + _before_after(wb, v)
            + f"<details><summary>Recipe</summary><pre>{esc(recipe)}</pre></details>"
            + f"<details><summary>Code</summary><pre>{esc(v.code)}</pre></details>")


def _benchmark_section(report: BenchmarkReport) -> str:
    from compresswidgets.plots import plot_latency, plot_memory, plot_sizes, plot_tradeoff

    metric = getattr(report, "metric", None)
    rows = [[r.variant, r.threads, r.batch, f"{r.median_ms:.3f}", f"{r.p90_ms:.3f}",
             f"{r.memory_mb:.2f}", "–" if r.size_bytes is None else f"{r.size_bytes:,}",
             "–" if r.accuracy is None else (metric.format(r.accuracy) if metric
                                             else f"{r.accuracy:.4f}"), r.error]
            for r in report.rows]
    plots = "".join(_png(lambda ax, f=f: f(report, ax), (5.2, 3.0))
                    for f in (plot_latency, plot_memory, plot_sizes, plot_tradeoff))
    return ("<h2>Benchmark (LiteRT)</h2>"
            + _table(["variant", "threads", "batch", "median ms", "p90 ms", "memory MB",
                      ".tflite bytes", metric.name if metric else "metric", "error"], rows)
            + f"<div class='plots'>{plots}</div>")


def _sensitivity_section(s: Sensitivity) -> str:
    worst = sorted(s.rows, key=lambda r: -r["drop"])[:20]
    rows = [[r["layer"], r["technique"], r["level"], s.metric.format(r["metric"]),
             s.metric.format_delta(r["delta"])] for r in worst]
    return ("<h2>Sensitivity</h2><p class='muted'>Each layer alone, one-shot; baseline "
            f"{esc(s.metric.format(s.baseline))} on {s.samples:,} samples.</p>"
            + _png(lambda ax: s.plot(ax), (8, 3.8))
            + _table(["layer", "technique", "level", s.metric.name, "change"], rows))


def _sweep_section(wb: Workbench) -> str:
    if not wb.sweeps:
        return ""
    last = wb.sweeps[-1]
    front = ", ".join(v.name for v in last.front())
    return ("<h2>Last sweep</h2>" + _png(lambda axes: last.plot(axes), (10, 3.6), axes=2)
            + f"<p>Pareto front (smallest first): {esc(front)}</p>")


# --------------------------------------------------------------------------- the page
def render(wb: Workbench, variants: list[Variant] | None = None, *,
           benchmark: BenchmarkReport | None = None, sensitivity: Sensitivity | None = None,
           title: str | None = None) -> str:
    """The page as text (see :func:`write`)."""
    chosen = list(variants) if variants is not None else list(wb.variants)
    if not all(any(v is w for w in wb.variants) for v in chosen):
        raise ValueError("report() takes variants of this Workbench (wb.variants), but some "
                         "are not. Pass a sublist of wb.variants, or None for all of them.")
    shown = [v for v in chosen if v.parent is not None]
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    heading = title or f"Compression report: {wb.original.recipe.get('model')}"
    parts = [f"<h1>{esc(heading)}</h1><p class='muted'>compresswidgets, {esc(stamp)}; "
             f"{len(wb.variants) - 1} variant(s).</p>",
             _model_section(wb), _variants_section(wb, [wb.original, *shown])]
    if benchmark is not None:
        parts.append(_benchmark_section(benchmark))
    if sensitivity is not None:
        parts.append(_sensitivity_section(sensitivity))
    parts.append(_sweep_section(wb))
    if shown:
        parts.append("<h2>Each variant</h2>" + "".join(_variant_section(wb, v) for v in shown))
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{esc(heading)}</title><style>{STYLE}</style></head><body>"
            + "".join(parts) + "</body></html>")


def write(wb: Workbench, path: str | Path, variants: list[Variant] | None = None, *,
          benchmark: BenchmarkReport | None = None, sensitivity: Sensitivity | None = None,
          title: str | None = None) -> Path:
    """Write the page to ``path`` (a temporary name first, then renamed: never half a file);
    the path written."""
    if not isinstance(path, str | Path) or not str(path).strip():
        raise TypeError(f"report() takes the path of the .html file to write, but got "
                        f"{describe(path)}. E.g. wb.report('report.html').")
    target = Path(path).expanduser()
    page = render(wb, variants, benchmark=benchmark, sensitivity=sensitivity, title=title)
    write_files(target.parent, {target.name: page})
    return target
