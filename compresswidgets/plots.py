"""Figure functions: each draws on a matplotlib Axes it is given and returns it.

No widget code here, so scripts, tests and the panels all draw the same pictures.

Example:
    >>> from matplotlib.figure import Figure
    >>> report = inspect_weights(model)                      # doctest: +SKIP
    >>> ax = Figure().subplots()
    >>> plot_histogram(report.histogram("dense/kernel"), ax)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.ticker import PercentFormatter

from compresswidgets.inspection import Histogram, TensorStats, WeightReport

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from compresswidgets.benchmarking import BenchmarkReport, BenchmarkRow
    from compresswidgets.sensitivity import Sensitivity
    from compresswidgets.sweeps import Sweep
    from compresswidgets.tflite import LayerError

__all__ = [
    "mpl_text",
    "pareto_front",
    "plot_before_after",
    "plot_channel_ranges",
    "plot_histogram",
    "plot_latency",
    "plot_layer_errors",
    "plot_layer_overview",
    "plot_memory",
    "plot_sensitivity",
    "plot_sizes",
    "plot_sweep",
    "plot_tradeoff",
]

_BLUE = "#3b75af"
_ORANGE = "#ef8636"
_RED = "#c0392b"


def mpl_text(text: str, width: int = 60) -> str:
    """Untrusted text made safe for a matplotlib label: ``$`` would start mathtext."""
    text = str(text)
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text.replace("\\", "\\\\").replace("$", r"\$")


def plot_histogram(
    hist: Histogram,
    ax: Any,
    *,
    label: str | None = None,
    color: str = _BLUE,
    title: str | None = None,
    alpha: float = 0.85,
) -> Any:
    """Draw a :class:`~compresswidgets.inspection.Histogram` as filled steps."""
    ax.stairs(hist.counts, hist.edges, fill=True, color=color, alpha=alpha,
              label=None if label is None else mpl_text(label))
    if hist.log:
        ax.set_yscale("log")
        ax.set_ylabel("count (log scale)")
    else:
        ax.set_ylabel("count")
    ax.set_xlabel("weight value" + (" (zeros excluded)" if hist.exclude_zeros else ""))
    if title is not None:
        ax.set_title(mpl_text(title), fontsize=10)
    if label is not None:
        ax.legend(fontsize=8)
    ax.margins(x=0.02)
    return ax


_GREY, _GREEN = "#9aa5b1", "#2a9d55"


def plot_before_after(before: np.ndarray, after: np.ndarray, ax: Axes, *, label: str,
                      title: str, color: str = _BLUE, bins: int = 64,
                      exclude_zeros: bool = False, now: str = "now") -> Axes:
    """``before``'s histogram in grey under ``after``'s, on the same bins (zeros left out of
    both with ``exclude_zeros``: after pruning they would dwarf the rest)."""
    from compresswidgets.inspection import histogram_of

    span = (float(min(before.min(), after.min())), float(max(before.max(), after.max())))
    plot_histogram(histogram_of(before, bins, span, exclude_zeros=exclude_zeros), ax,
                   label=now, color=_GREY, alpha=0.6)
    plot_histogram(histogram_of(after, bins, span, exclude_zeros=exclude_zeros), ax,
                   label=label, color=color, alpha=0.85, title=title)
    return ax


def plot_channel_ranges(stats: TensorStats, ax: Axes, *, max_channels: int = 512) -> Axes:
    """Per-output-channel [min, max] bars against the whole tensor's range.

    Channels whose ranges differ a lot are why TFLite quantizes conv kernels per channel.
    """
    if stats.channel_min is None:
        ax.text(0.5, 0.5, "no output channels\n(not a conv or dense kernel)", ha="center",
                va="center", transform=ax.transAxes, color="0.4")
        ax.set_axis_off()
        return ax
    lo, hi = stats.channel_min, stats.channel_max
    step = max(1, int(np.ceil(len(lo) / max_channels)))
    idx = np.arange(0, len(lo), step)
    ax.vlines(idx, lo[idx], hi[idx], color=_BLUE, linewidth=1.2, label="per channel")
    ax.axhline(stats.min, color=_ORANGE, linewidth=1, linestyle="--", label="per tensor")
    ax.axhline(stats.max, color=_ORANGE, linewidth=1, linestyle="--")
    ax.set_xlabel("output channel" + (f" (every {step}th)" if step > 1 else ""))
    ax.set_ylabel("range")
    spread = stats.channel_range_spread
    ax.set_title(f"{stats.channels} channels, widest/median range {spread:.1f}x", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_layer_overview(report: WeightReport, ax: Axes, *, highlight: str | None = None) -> Axes:
    """Parameters per layer (bars, log scale) and sparsity per layer (dots, right axis)."""
    layers = report.layers
    x = np.arange(len(layers))
    params = [layer.params for layer in layers]
    colors = [_ORANGE if layer.layer == highlight else _BLUE for layer in layers]
    ax.bar(x, params, color=colors, width=0.8)
    ax.set_yscale("log")
    ax.set_ylabel("parameters (log)")
    twin = ax.twinx()
    twin.plot(x, [100 * layer.sparsity for layer in layers], "o", color="#2a9d55",
              markersize=4, label="sparsity %")
    twin.set_ylim(-3, 103)
    twin.set_ylabel("sparsity %", color="#2a9d55")
    if len(layers) <= 40:
        ax.set_xticks(x, [mpl_text(layer.layer, 24) for layer in layers], rotation=45,
                      ha="right", fontsize=8)
    else:
        ax.set_xlabel(f"layer index ({len(layers)} layers with weights)")
    ax.set_xlim(-0.6, len(layers) - 0.4)
    ax.set_title(
        f"{report.total_params:,} parameters, {report.float32_bytes / 1e6:.2f} MB as float32, "
        f"sparsity {report.sparsity:.2%}", fontsize=10)
    return ax


# --------------------------------------------------------------------------- benchmark plots
def _measured(report: BenchmarkReport, threads: int | None) -> list[BenchmarkRow]:
    rows = [r for r in report.rows if r.ok]
    if threads is None and rows:
        threads = min(r.threads for r in rows)
    return [r for r in rows if r.threads == threads]


def _empty(ax: Axes, text: str) -> Axes:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_axis_off()
    return ax


def plot_latency(report: BenchmarkReport, ax: Axes, *, threads: int | None = None) -> Axes:
    """Median latency per variant (bars) with p10–p90 whiskers, at one thread count."""
    rows = _measured(report, threads)
    if not rows:
        return _empty(ax, "no successful measurement")
    y = np.arange(len(rows))
    median = np.array([r.median_ms for r in rows])
    low = median - np.array([r.p10_ms for r in rows])
    high = np.array([r.p90_ms for r in rows]) - median
    ax.barh(y, median, xerr=[low, high], color=_BLUE, capsize=3, ecolor="0.3")
    ax.set_yticks(y, [mpl_text(r.variant, 32) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ms per inference (median, p10–p90)")
    ax.set_title(f"Latency, {rows[0].threads} thread(s), batch {rows[0].batch}", fontsize=10)
    return ax


def plot_memory(report: BenchmarkReport, ax: Axes, *, threads: int | None = None) -> Axes:
    """Peak memory footprint per variant (MB over the process baseline)."""
    rows = _measured(report, threads)
    if not rows:
        return _empty(ax, "no successful measurement")
    y = np.arange(len(rows))
    ax.barh(y, [r.memory_mb for r in rows], color=_ORANGE)
    ax.set_yticks(y, [mpl_text(r.variant, 32) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("memory footprint (MB)")
    ax.set_title("Peak memory of inference", fontsize=10)
    return ax


def plot_sizes(report: BenchmarkReport, ax: Axes) -> Axes:
    """.tflite size and gzipped size per variant (one row per variant)."""
    seen: dict[str, Any] = {}
    for r in report.rows:
        if r.size_bytes and r.variant not in seen:
            seen[r.variant] = r
    if not seen:
        return _empty(ax, "no sizes")
    rows = list(seen.values())
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [r.size_bytes / 1024 for r in rows], height=0.4, color=_BLUE,
            label=".tflite")
    ax.barh(y + 0.2, [(r.gzipped_bytes or 0) / 1024 for r in rows], height=0.4,
            color="#2a9d55", label="gzipped")
    ax.set_yticks(y, [mpl_text(r.variant, 32) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("size (KiB)")
    ax.legend(fontsize=8)
    ax.set_title("Model size", fontsize=10)
    return ax


def pareto_front(points: list[tuple[float, float]], greater_is_better: bool = True) -> list[int]:
    """Indices of the points no other point beats: lower x (cost) and better y (higher, or
    lower with ``greater_is_better=False``, e.g. an error).

    Example:
        >>> pareto_front([(1, 0.9), (2, 0.95), (3, 0.94), (1.5, 0.8)])
        [0, 1]
        >>> pareto_front([(1, 0.9), (2, 0.95), (3, 0.94), (1.5, 0.8)], greater_is_better=False)
        [0, 3]
    """
    if not greater_is_better:
        return pareto_front([(x, -y) for x, y in points])
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any((x2 <= x and y2 >= y) and (x2 < x or y2 > y)
                        for j, (x2, y2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return front


def plot_tradeoff(report: BenchmarkReport, ax: Axes, *, cost: str = "gzipped_bytes",
                  threads: int | None = None) -> Any:
    """The metric (accuracy, or the Workbench's own) against a cost (``gzipped_bytes``,
    ``size_bytes``, ``median_ms``, ``memory_mb``), with the Pareto front marked."""
    metric = getattr(report, "metric", None)
    name = metric.name if metric else "accuracy"
    better = metric.greater_is_better if metric else True
    rows = [r for r in _measured(report, threads) if r.accuracy is not None
            and getattr(r, cost) is not None]
    if not rows:
        return _empty(ax, f"no variant with {name} and cost")
    scale = 1024 if cost.endswith("_bytes") else 1  # bytes are shown in KiB
    points = [(float(getattr(r, cost)) / scale, float(r.accuracy)) for r in rows]
    front = pareto_front(points, better)
    xs, ys = zip(*points, strict=True)
    ax.scatter(xs, ys, color="0.55", zorder=2, label="variant")
    best = sorted(points[i] for i in front)
    ax.plot([p[0] for p in best], [p[1] for p in best], "-o", color=_ORANGE, zorder=3,
            label="Pareto front")
    # of two points at about the same accuracy, the lower one's label goes below it
    order = sorted(range(len(points)), key=lambda i: (points[i][1], points[i][0]))
    span = (max(ys) - min(ys)) or 1.0
    for rank, i in enumerate(order):
        above = order[rank + 1] if rank + 1 < len(order) else None
        below = above is not None and points[above][1] - points[i][1] < 0.04 * span
        ax.annotate(mpl_text(rows[i].variant, 24), points[i], fontsize=7,
                    xytext=(4, -10 if below else 3), textcoords="offset points")
    ax.margins(x=0.2, y=0.15)  # room for the labels
    labels = {"gzipped_bytes": "gzipped size (KiB)", "size_bytes": ".tflite size (KiB)",
              "median_ms": "median latency (ms)", "memory_mb": "memory footprint (MB)"}
    ax.set_xlabel(labels.get(cost, cost))
    ax.set_ylabel(mpl_text(f"{name} ({'higher' if better else 'lower'} is better)", 40))
    if metric is None or metric.fraction:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.legend(fontsize=8, loc="best")
    ax.set_title(mpl_text(name[:1].upper() + name[1:], 30) + " against "
                 + labels.get(cost, cost).split(" (")[0], fontsize=10)
    return ax


def sensitivity_matrix(s: Sensitivity) -> tuple[list[str], list[tuple[str, Any]], np.ndarray]:
    """``(layers, columns, drops)``: a layers x (technique, level) array, NaN where a layer
    was not measured (a technique that cannot act on it, a stopped run)."""
    layers = list(dict.fromkeys(r["layer"] for r in s.measured))
    columns = [(t, level) for t, levels in s.levels.items() for level in levels]
    drops = np.full((len(layers), len(columns)), np.nan)
    where = {c: j for j, c in enumerate(columns)}
    for r in s.measured:
        drops[layers.index(r["layer"]), where[(r["technique"], r["level"])]] = r["drop"]
    return layers, columns, drops


def _level_label(technique: str, level: Any) -> str:
    if technique == "prune":
        return f"prune\n{level:.0%}"
    if technique == "cluster":
        return f"cluster\n{level}"
    return "int8\nweights"


def plot_sensitivity(s: Sensitivity, ax: Axes) -> Axes:
    """The heatmap of a :class:`~compresswidgets.sensitivity.Sensitivity`: one row per layer,
    one column per (technique, level), colour = metric drop (darker is worse; grey: not
    measured), each cell labelled with its drop."""
    layers, columns, drops = sensitivity_matrix(s)
    if not layers:
        return _empty(ax, "Nothing measured yet")
    shown = np.where(np.isnan(drops), np.nan, np.maximum(drops, 0.0))
    top = float(np.nanmax(shown)) if np.isfinite(shown).any() else 0.0
    cmap = _reds()
    image = ax.imshow(shown, cmap=cmap, vmin=0.0, vmax=max(top, 1e-9), aspect="auto")
    for i in range(len(layers)):
        for j in range(len(columns)):
            value = drops[i, j]
            if np.isnan(value):
                continue
            # the cell says what happened to the metric: -1.8% is a drop
            delta = 0.0 if abs(value) < 1e-12 else -value
            text = (f"{delta:+.1%}" if s.metric.fraction else f"{delta:+.3g}").replace(
                "+0.0%", "0.0%")
            dark = top > 0 and value > 0.6 * top
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")
    ax.set_xticks(range(len(columns)), [_level_label(t, lv) for t, lv in columns], fontsize=8)
    ax.set_yticks(range(len(layers)), [mpl_text(n, 28) for n in layers], fontsize=8)
    ax.figure.colorbar(image, ax=ax, label=f"{mpl_text(s.metric.name, 20)} drop")
    title = f"One layer at a time: {mpl_text(s.metric.name, 20)} drop on {s.samples} samples"
    ax.set_title(title + ("" if s.complete else " (stopped: incomplete)"), fontsize=9)
    return ax


def _reds() -> Any:
    from matplotlib import colormaps

    return colormaps["Reds"].with_extremes(bad="#dddddd")


def plot_layer_errors(errors: list[LayerError], ax: Axes, *, title: str = "") -> Axes:
    """The activation error of each op of a full-integer model, in graph order: a bar of
    rmse/scale per op, red where the op's activations do not fit int8
    (:attr:`~compresswidgets.tflite.LayerError.misfit`: rmse/scale above the limit, or a
    typical value rounding to zero), with the ideal (rounding alone) and the limit marked."""
    from compresswidgets.tflite import IDEAL_RMSE_SCALE, RMSE_SCALE_LIMIT

    if not errors:
        return _empty(ax, "No int8 op to show")
    values = [e.rmse_scale for e in errors]
    colours = [_RED if e.misfit else _BLUE for e in errors]
    ax.bar(range(len(errors)), values, color=colours)
    top = max(RMSE_SCALE_LIMIT * 1.25, max(values) * 1.1)
    for i, e in enumerate(errors):  # a small bar can hide a range that does not fit
        if e.misfit and e.rmse_scale <= RMSE_SCALE_LIMIT:
            ax.text(i, e.rmse_scale + 0.02 * top, "values\nround to 0", ha="center",
                    va="bottom", fontsize=6, color=_RED)
    ax.axhline(IDEAL_RMSE_SCALE, color="#555555", ls=":", lw=1,
               label=f"rounding alone ({IDEAL_RMSE_SCALE:.2f})")
    ax.axhline(RMSE_SCALE_LIMIT, color=_RED, ls="--", lw=1,
               label=f"limit ({RMSE_SCALE_LIMIT:g})")
    if any(e.misfit for e in errors):
        from matplotlib.patches import Patch

        handles, _ = ax.get_legend_handles_labels()
        handles.append(Patch(color=_RED, label="does not fit int8"))
        ax.legend(handles=handles, fontsize=7, loc="upper left")
    else:
        ax.legend(fontsize=7, loc="upper left")
    labels = [mpl_text(e.layer or e.op.lower(), 18) for e in errors]
    ax.set_xticks(range(len(errors)), labels, rotation=90,
                  fontsize=7 if len(errors) <= 30 else 5)
    for tick, e in zip(ax.get_xticklabels(), errors, strict=True):
        if e.misfit:
            tick.set_color(_RED)
    ax.set_ylabel("rmse / scale", fontsize=8)
    ax.set_ylim(0, top)
    ax.set_title(mpl_text(title, 70) or "int8 activation error per op", fontsize=9)
    return ax


_THEN_MARKERS = {None: "o", "dynamic": "s", "float16": "^", "int8": "D"}


def plot_sweep(sweep: Sweep, ax: Axes, *, x: str = "gzipped_bytes") -> Axes:
    """A sweep's variants: the metric against ``x`` (``"gzipped_bytes"``, ``"size_bytes"``,
    or ``"level"``: sparsity or clusters), one marker per post-training step, the Pareto
    front (metric against gzipped size) in orange."""
    metric = sweep.metric
    rows = [r for r in sweep.rows if r["error"] is None]
    if not rows:
        return _empty(ax, "no candidate finished yet")
    front = {v.name for v in sweep.front()}
    scale = 1024 if x.endswith("_bytes") else 1
    for then, marker in _THEN_MARKERS.items():
        chosen = [r for r in rows if r["then"] == then]
        if not chosen:
            continue
        for technique, colour in (("prune", _BLUE), ("cluster", "#6a9f58")):
            mine = [r for r in chosen if r["technique"] == technique]
            if mine:
                ax.scatter([_sweep_x(r, x) / scale for r in mine], [r["metric"] for r in mine],
                           marker=marker, color=colour, zorder=2, alpha=0.85,
                           label=f"{technique}" + (f" > {then}" if then else ""))
    best = sorted((_sweep_x(r, x) / scale, r["metric"]) for r in rows if r["name"] in front)
    if x != "level":
        ax.plot([p[0] for p in best], [p[1] for p in best], "-", color=_ORANGE, zorder=3,
                label="Pareto front")
    ax.scatter([p[0] for p in best], [p[1] for p in best], s=90, facecolors="none",
               edgecolors=_ORANGE, zorder=4, linewidths=1.5)
    name = metric.name
    labels = {"gzipped_bytes": "gzipped size (KiB)", "size_bytes": ".tflite size (KiB)",
              "level": "level (sparsity, or clusters)"}
    if x == "level" and all(r["technique"] == "prune" for r in rows):
        labels["level"] = "target sparsity"
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    elif x == "level" and all(r["technique"] == "cluster" for r in rows):
        labels["level"] = "clusters"
        ax.invert_xaxis()
    ax.set_xlabel(labels.get(x, x))
    ax.set_ylabel(mpl_text(f"{name} ({metric.direction})", 40))
    if metric.fraction:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.legend(fontsize=7, loc="best")
    ax.set_title(mpl_text(f"{name[:1].upper() + name[1:]} against "
                          + labels.get(x, x).split(" (")[0], 40), fontsize=10)
    return ax


def _sweep_x(row: dict[str, Any], x: str) -> float:
    if x == "level":
        return float(row["level"])
    return float(row[x])
