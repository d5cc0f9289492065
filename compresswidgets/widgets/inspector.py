"""WeightInspector: per-layer weight distributions of a live Keras model."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import traitlets

from compresswidgets.inspection import (
    DEFAULT_BINS,
    Histogram,
    TensorStats,
    WeightReport,
    inspect_weights,
)
from compresswidgets.plots import plot_channel_ranges, plot_histogram, plot_layer_overview
from compresswidgets.widgets._controls import FigureImage, error_html, esc, table_html


def _label(t: TensorStats) -> str:
    shape = "x".join(str(d) for d in t.shape) or "scalar"
    return f"{t.key}  ·  {t.layer_class}  ·  {shape}  ·  {t.params:,} params"


def _fmt(value: float) -> str:
    return f"{value:.6g}"


class WeightInspector(widgets.VBox):
    """Histogram, statistics and per-channel ranges of each weight tensor of a Keras model.

    The model is only read. Press "Re-read weights" after training it further.

    Example:
        >>> import compresswidgets as cw
        >>> model, data = cw.demo_model()      # doctest: +SKIP
        >>> cw.WeightInspector(model)          # doctest: +SKIP
    """

    layer = traitlets.Int(0, help="index of the selected tensor in report.tensors")
    bins = traitlets.Int(DEFAULT_BINS, help="histogram bins")
    log_scale = traitlets.Bool(False, help="log-scale counts")
    exclude_zeros = traitlets.Bool(False, help="leave exact zeros out of the histogram")

    def __init__(
        self,
        model: Any,
        *,
        bins: int = DEFAULT_BINS,
        log_scale: bool = False,
        exclude_zeros: bool = False,
        **kwargs: Any,
    ) -> None:
        """Read ``model``'s weights and show the first tensor.

        Args:
            model: a Keras model (tf_keras or Keras 3), only read.
            bins: histogram bins (4 to 256 on the slider).
            log_scale: log-scale the counts.
            exclude_zeros: leave exact zeros out of the histogram.
            **kwargs: ``ipywidgets.VBox`` options such as ``layout``.

        Raises:
            TypeError, ValueError: what :func:`compresswidgets.inspect_weights` raises for
                something that is not a model, or a model without weights.
        """
        report = inspect_weights(model, bins=None)  # raises the clear TypeError/ValueError
        super().__init__(**kwargs)
        self.add_class("cw-weight-inspector")
        self.model = model
        self.report: WeightReport = report
        self._header = widgets.HTML()
        self._picker = widgets.Dropdown(
            description="Tensor",
            tooltip="Weight tensors in the model's order: layer/weight, type, "
            "shape, parameters",
            layout=widgets.Layout(width="auto", min_width="420px", flex="1 1 auto"),
        )
        self._picker.add_class("cw-layer-picker")
        self._picker.options = [(_label(t), t.index) for t in report.tensors]
        self._bins = widgets.IntSlider(
            min=4, max=256, step=4, description="Bins", continuous_update=False,
            tooltip="Number of equal-width histogram bins",
        )
        self._log = widgets.Checkbox(description="Log counts", indent=False,
                                     layout=widgets.Layout(width="auto", margin="0 12px"),
                                     tooltip="Log-scale the counts to see the tails")
        self._zeros = widgets.Checkbox(
            description="Exclude zeros", indent=False,
            layout=widgets.Layout(width="auto", margin="0 12px"),
            tooltip="Leave exact zeros out (after pruning they would dwarf the rest)",
        )
        self._reread = widgets.Button(description="Re-read weights", icon="refresh",
                                      tooltip="Inspect the model again, e.g. after training")
        self._error = widgets.HTML()
        self._stats = widgets.HTML()
        self._stats.add_class("cw-stats")
        self._hist_fig = FigureImage(5.2, 3.0, css_class="cw-histogram-plot", left=0.14,
                                     right=0.97, bottom=0.17, top=0.88)
        self._channel_fig = FigureImage(3.8, 3.0, css_class="cw-channel-plot", left=0.2,
                                        right=0.96, bottom=0.17, top=0.88)
        self._overview_fig = FigureImage(9.0, 3.0, css_class="cw-overview-plot", left=0.08,
                                         right=0.92, top=0.88, bottom=0.32)

        traitlets.link((self, "bins"), (self._bins, "value"))
        traitlets.link((self, "log_scale"), (self._log, "value"))
        traitlets.link((self, "exclude_zeros"), (self._zeros, "value"))
        traitlets.link((self, "layer"), (self._picker, "value"))
        self._reread.on_click(lambda _: self.refresh())

        controls = widgets.HBox([self._bins, self._log, self._zeros, self._reread],
                                layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
        plots = widgets.HBox([self._hist_fig.widget, self._channel_fig.widget],
                             layout=widgets.Layout(align_items="flex-start", flex_flow="row wrap"))
        self.children = [self._header, self._picker, controls, self._error, plots, self._stats,
                         self._overview_fig.widget]

        with self.hold_trait_notifications():
            self.bins, self.log_scale, self.exclude_zeros = bins, log_scale, exclude_zeros
        self._load(report, keep=None)
        self.observe(self._on_tensor_change, names=["bins", "log_scale", "exclude_zeros"])
        self.observe(self._on_layer_change, names=["layer"])

    # ------------------------------------------------------------------ state
    @property
    def selected(self) -> TensorStats:
        return self.report.tensors[self.layer]

    def _load(self, report: WeightReport, keep: str | None) -> None:
        self.report = report
        options = [(_label(t), t.index) for t in report.tensors]
        index = next((t.index for t in report.tensors if t.key == keep), None)
        if index is None:  # first kernel-like tensor, else the first
            index = next((t.index for t in report.tensors if len(t.shape) >= 2), 0)
        with self.hold_trait_notifications():
            self._picker.options = options
            self.layer = index
        self._draw_header()
        self._draw_histogram()
        self._draw_channels()
        self._draw_overview()

    def refresh(self) -> None:
        """Read the model's weights again and redraw, keeping the selected tensor."""
        try:
            report = inspect_weights(self.model, bins=None)
        except (TypeError, ValueError) as exc:
            self._error.value = error_html(exc)
            return
        self._error.value = ""
        self._load(report, keep=self.selected.key)

    # ------------------------------------------------------------------ drawing
    def _on_tensor_change(self, _change: Any = None) -> None:
        self._draw_histogram()

    def _on_layer_change(self, _change: Any = None) -> None:
        self._draw_histogram()
        self._draw_channels()

    def _draw_header(self) -> None:
        r = self.report
        warn = ""
        if r.nan or r.inf:
            warn = (f" <span style='color:#b02a1a;font-weight:600'>⚠ {r.nan:,} NaN and "
                    f"{r.inf:,} Inf values</span>")
        self._header.value = (
            f"<b>Weights of {esc(r.model_name)}</b> ({esc(r.keras)}): {len(r.layers)} layers with "
            f"weights, {r.total_params:,} parameters, {r.float32_bytes / 1e6:.2f} MB as float32, "
            f"sparsity {r.sparsity:.2%}{warn}"
        )

    def current_histogram(self) -> Histogram:
        """The selected tensor's histogram at the panel's bins, zeros and log settings."""
        return self.report.histogram(self.layer, bins=self.bins, exclude_zeros=self.exclude_zeros,
                                     log=self.log_scale)

    def _draw_histogram(self) -> None:
        try:
            t = self.selected
            hist = self.current_histogram()
        except (ValueError, IndexError, KeyError) as exc:
            self._error.value = error_html(exc)
            return
        self._error.value = ""
        plot_histogram(hist, self._hist_fig.clear(), title=f"{t.key} ({t.layer_class})")
        self._hist_fig.render()
        self._stats.value = table_html([
            ("layer", t.layer), ("class", t.layer_class), ("weight", t.weight),
            ("shape", "x".join(map(str, t.shape)) or "scalar"), ("dtype", t.dtype),
            ("parameters", f"{t.params:,}"), ("min", _fmt(t.min)), ("max", _fmt(t.max)),
            ("mean", _fmt(t.mean)), ("std", _fmt(t.std)),
            ("sparsity", f"{t.sparsity:.2%} ({t.zeros:,} zeros)"),
            ("distinct values", f"{t.distinct:,}"), ("NaN / Inf", f"{t.nan:,} / {t.inf:,}"),
            ("output channels", t.channels or "-"),
            ("channel range spread", "-" if not t.channels else f"{t.channel_range_spread:.2f}x"),
            ("in histogram", f"{hist.total:,}"),
        ], columns=4)

    def _draw_channels(self) -> None:
        plot_channel_ranges(self.selected, self._channel_fig.clear())
        self._channel_fig.render()

    def _draw_overview(self) -> None:
        if len(self.report.layers) > 40:
            self._overview_fig.figure.subplots_adjust(bottom=0.18)
        plot_layer_overview(self.report, self._overview_fig.clear())
        self._overview_fig.render()

    # ------------------------------------------------------------------ static output
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """Widget view where widgets render; a static HTML summary for nbconvert/GitHub."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            bundle["text/html"] = (
                f"<div>{self._header.value}</div>{self._hist_fig.img_html()}"
                f"{self._channel_fig.img_html()}{self._stats.value}"
                f"{self._overview_fig.img_html()}"
            )
        return bundle
