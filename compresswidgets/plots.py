"""Figure functions: each draws on a matplotlib Axes it is given and returns it.

No widget code here, so scripts, tests and the panels all draw the same pictures.

Example:
    >>> from matplotlib.figure import Figure
    >>> report = inspect_weights(model)                      # doctest: +SKIP
    >>> ax = Figure().subplots()
    >>> plot_histogram(report.histogram("dense/kernel"), ax)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compresswidgets.inspection import Histogram, TensorStats, WeightReport

__all__ = ["mpl_text", "plot_channel_ranges", "plot_histogram", "plot_layer_overview"]

_BLUE = "#3b75af"
_ORANGE = "#ef8636"


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


def plot_channel_ranges(stats: TensorStats, ax: Any, *, max_channels: int = 512) -> Any:
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


def plot_layer_overview(report: WeightReport, ax: Any, *, highlight: str | None = None) -> Any:
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
