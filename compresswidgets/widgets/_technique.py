"""What the pruning, clustering and quantization panels share.

A technique panel has a base variant, technique controls, a layer to preview, a live preview
(NumPy on a copy), Apply in a background thread with a progress bar and Stop, and the result:
a summary against the original, a per-layer table, before/after histograms of the real
result, and the code that reproduces it. Subclasses supply the controls, the preview and the
call to the Workbench.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np
import traitlets

from compresswidgets._training import Progress, TrainingStopped
from compresswidgets.plots import plot_before_after
from compresswidgets.techniques._common import TINY, kernel_of, layer_size, select_layers
from compresswidgets.widgets._controls import (
    BasePanel,
    FigureImage,
    error_html,
    esc,
    grid_html,
    table_html,
)

if TYPE_CHECKING:
    from compresswidgets._training import ProgressCallback
    from compresswidgets.variant import Variant
    from compresswidgets.workbench import Workbench

BLUE, GREEN = "#3b75af", "#2a9d55"
#: Above this fraction of zeros, histograms leave zeros out (they would dwarf the rest).
SPARSE = 0.05


def _figure(css_class: str) -> FigureImage:
    return FigureImage(5.2, 2.8, css_class=css_class, left=0.14, right=0.97, bottom=0.18,
                       top=0.88)


class TechniquePanel(BasePanel):
    """Base of the technique panels; see PruningPanel, ClusteringPanel, QuantizationPanel.

    The panel follows its Workbench (``workbench.observe``): a variant made anywhere, by
    another panel or in code, is offered as a base at once.
    """

    preview_layer = traitlets.Unicode("", help="layer whose histogram is previewed")
    made = traitlets.Unicode("", help="name of the last variant this panel made")

    #: set by subclasses
    css_class = ""
    layers_title = ""  # "" = no layer checklist
    apply_icon = "play"
    apply_tooltip = "Apply to a copy; the base is untouched"
    needs_tfmot = True  # pruning, clustering: a tf_keras model (a Keras 3 model's twin)
    #: the trait a per-layer control beside each checklist row overrides (None: no control)
    per_layer_trait: str | None = None

    def __init__(self, workbench: Workbench, **kwargs: Any) -> None:
        """Build the panel on ``workbench``.

        Args:
            workbench: the :class:`~compresswidgets.Workbench` whose variants the panel
                reads and adds to (it follows ``workbench.observe``).
            **kwargs: initial values of the panel's traits
                (e.g. ``base='pruned-1'``, ``target_sparsity=0.8``) and ``ipywidgets.VBox`` options
                such as ``layout``; a bad value raises a ``traitlets.TraitError`` saying
                what is allowed.
        """
        super().__init__(**kwargs)
        self.add_class(self.css_class)
        self.workbench = workbench
        self.result: Variant | None = None
        self._kernels: dict[tuple[str, str], np.ndarray] = {}
        self._defaults: tuple[str | None, set[str]] = (None, set())

        self._base = widgets.Dropdown(description="Base", tooltip=(
            "The variant to start from, so techniques chain: prune, then cluster, then quantize"))
        self._preview = widgets.Dropdown(description="Preview",
                                         tooltip="The layer whose histogram is previewed")
        self._layers = widgets.VBox()
        self._targets = widgets.VBox()  # per-layer controls, row by row beside the checklist
        self._layers_note = widgets.HTML()
        self._apply = self._start = widgets.Button(
            description="Apply", button_style="primary", icon=self.apply_icon,
            tooltip=self.apply_tooltip)
        self._stop_button = widgets.Button(description="Stop", icon="stop", disabled=True,
                                           tooltip="Stop the fine-tuning; nothing is added")
        self._progress = widgets.FloatProgress(min=0.0, max=1.0,
                                               layout=widgets.Layout(width="300px"))
        self._preview_fig = _figure("cw-preview-plot")
        self._result = widgets.HTML()
        self._result.add_class("cw-result")
        self._result_fig = _figure("cw-result-plot")
        self._result_fig.widget.layout.display = "none"  # until there is a result
        self._result_figs = [self._result_fig]  # a subclass may add its own result plots
        self._code = widgets.HTML()
        self._code_box = widgets.Accordion(children=[self._code], titles=("Show code",))
        self._code_box.selected_index = None

        # options before the links: a linked Dropdown must hold the trait's value
        self._base.options = self.eligible_bases()
        layers = self._layers_of_base()
        self._preview.options = self._preview_options(layers)
        if layers:  # the biggest layer shows the most
            self.preview_layer = max(layers, key=lambda layer: layer.count_params()).name
        traitlets.link((self, "base"), (self._base, "value"))
        traitlets.link((self, "preview_layer"), (self._preview, "value"))
        self._checklist = widgets.VBox([
            widgets.HTML(f"<b>{esc(self.layers_title)}</b>"), self._layers_note,
            widgets.HBox([self._layers, self._targets],
                         layout=widgets.Layout(max_height="180px", overflow="auto"))])
        if not self.layers_title:
            self._checklist.layout.display = "none"
        rows, self._locked = self._build()
        self._apply.on_click(lambda _: self.apply())
        self._stop_button.on_click(lambda _: self.stop())
        self.children = [
            *rows, self._checklist,
            widgets.HBox([self._apply, self._stop_button, self._progress, self._status],
                         layout=widgets.Layout(align_items="center")),
            self._error, self._preview_fig.widget,
            widgets.HBox([self._result, *(f.widget for f in self._result_figs)],
                         layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start")),
            self._code_box,
        ]
        self.refresh_variants()
        self.observe(self._on_base, names=["base"])
        self.observe(lambda _: self._safe_preview(), names=["preview_layer"])
        self.observe(self._on_running, names=["running"])
        if self.per_layer_trait:
            self.observe(self._follow_panel_value, names=[self.per_layer_trait])
        self._on_base()
        workbench.observe(self._on_variants)

    @property
    def _start_tooltip(self) -> str:
        return self.apply_tooltip

    @traitlets.validate("preview_layer")
    def _valid_preview_layer(self, proposal: Any) -> str:
        names = [name for _, name in self._preview.options]
        if proposal["value"] not in names:
            raise traitlets.TraitError(
                f"{type(self).__name__}.preview_layer = {proposal['value']!r} is not a layer of "
                f"{self.base!r} this panel can preview. Expected one of "
                f"{', '.join(map(repr, names))}: e.g. panel.preview_layer = {names[0]!r}.")
        return proposal["value"]

    # ------------------------------------------------------------------ for subclasses
    def _build(self) -> tuple[list[widgets.Widget], list[widgets.Widget]]:
        """The rows of technique controls, and the controls to lock while running."""
        raise NotImplementedError

    def _supports(self, layer: Any) -> bool:
        return kernel_of(layer) is not None

    def _draw_preview(self, kernel: np.ndarray, ax: Any) -> None:
        raise NotImplementedError

    def _engine(self, progress: ProgressCallback) -> Variant:
        """Call the Workbench; return the new Variant."""
        raise NotImplementedError

    def _stoppable(self) -> bool:
        return True

    # ------------------------------------------------------------------ state
    def _base_model(self) -> Any:
        return self.workbench[self.base].keras_model

    def _layers_of_base(self) -> list[Any]:
        return [layer for layer in self._base_model().layers
                if layer.weights and self._supports(layer)]

    def _checklist_layers(self) -> list[Any]:
        """The layers the checklist offers (by default those the preview offers)."""
        return self._layers_of_base()

    def _ticked_by_default(self, layer: Any, size: int) -> bool:
        """The engine's own default (``layers=None``): the same layers, headless or here."""
        if self._defaults[0] != self.base:
            try:
                names = select_layers(self._base_model(), None, self._supports, "", "").names
            except ValueError:
                names = ()
            self._defaults = (self.base, set(names))
        return layer.name in self._defaults[1]

    def _left_alone_note(self) -> str:
        """What the technique cannot act on in the base (e.g. depthwise kernels), or ""."""
        return ""

    def _checklist_note(self, unticked: list[str]) -> str:
        return (f"Layers under {TINY:,} weights are left out by default: {', '.join(unticked)}. "
                "Tick them to include them.")

    def _on_base(self, _change: Any = None) -> None:
        layers = self._layers_of_base()
        if self.layers_title:
            boxes = []
            for layer in self._checklist_layers():
                size = layer_size(layer)
                user = self.workbench.user_name(layer.name)
                box = widgets.Checkbox(value=self._ticked_by_default(layer, size), indent=False,
                                       description=f"{user} · {type(layer).__name__} · "
                                                   f"{size:,} params")
                box.layer_name = layer.name
                boxes.append(box)
            self._layers.children = boxes
            self._set_layer_controls(boxes)
            unticked = [self.workbench.user_name(b.layer_name) for b in boxes if not b.value]
            notes = [self._checklist_note(unticked) if unticked else "",
                     *self.workbench.user_text(self._left_alone_note())]
            self._layers_note.value = "".join(f"<div style='color:#666'>{esc(n)}</div>"
                                              for n in notes if n)
        names = [layer.name for layer in layers]
        with self._preview.hold_sync():  # options and value reach the page as one message
            self._preview.options = self._preview_options(layers)
            if self.preview_layer not in names:
                self.preview_layer = (max(layers, key=lambda layer: layer.count_params()).name
                                      if names else "")
        self._error.value = error_html(self._unavailable, trace=False) if self._unavailable else ""
        self._safe_preview()

    # ------------------------------------------------------------------ per-layer values
    def _layer_control(self) -> widgets.ValueWidget:
        """A control for one layer's own value of :attr:`per_layer_trait` (subclasses)."""
        raise NotImplementedError

    @property
    def _per_layer_enabled(self) -> bool:
        """Whether per-layer values apply with the current settings."""
        return True

    def _set_layer_controls(self, boxes: list[widgets.Checkbox]) -> None:
        """One control per checklist row, at the panel's value (none without a trait)."""
        controls = []
        if not self.per_layer_trait:
            self._targets.children = controls
            return
        for box in boxes:
            control = self._layer_control()
            control.value = getattr(self, self.per_layer_trait)
            control.layer_name = box.layer_name
            box.observe(lambda _: self._enable_layer_controls(), names=["value"])
            controls.append(control)
        self._targets.children = controls
        self._enable_layer_controls()

    def _enable_layer_controls(self) -> None:
        if not self.per_layer_trait:
            return
        for box, control in zip(self._layers.children, self._targets.children, strict=True):
            control.disabled = self.running or not box.value or not self._per_layer_enabled

    def _follow_panel_value(self, change: Any) -> None:
        """A layer's control follows the panel's value until it is moved on its own."""
        for control in self._targets.children:
            if control.value == change["old"]:
                control.value = change["new"]

    @property
    def per_layer_values(self) -> dict[str, Any] | None:
        """``{layer: value}`` of the ticked layers when some differ from the panel's value
        (the engine then gets a per-layer dict); None when they all follow it."""
        if not self.per_layer_trait or not self._per_layer_enabled:
            return None
        ticked = {c.layer_name: c.value for b, c in zip(self._layers.children,
                                                          self._targets.children, strict=True)
                  if b.value}
        if all(v == getattr(self, self.per_layer_trait) for v in ticked.values()):
            return None
        return ticked

    def _preview_options(self, layers: list[Any]) -> list[tuple[str, str]]:
        """(the user's spelling, the model's name) of each layer; a placeholder when there is
        none (a Dropdown linked to the trait must hold its value)."""
        user = self.workbench.user_name
        return [(user(layer.name), layer.name) for layer in layers] or [("(none)", "")]

    @property
    def _shown_layer(self) -> str:
        """The previewed layer as the user wrote its name (for titles)."""
        return self.workbench.user_name(self.preview_layer)

    @property
    def _unavailable(self) -> Exception | None:
        """Why this technique cannot act on the base at all (a Keras 3 model that could not
        be bridged to tf_keras), shown in the panel; None when it can."""
        if not self.needs_tfmot or self.base != "original":
            return None
        return self.workbench.bridge_error

    @property
    def _uses_checklist(self) -> bool:
        """Whether Apply acts on the ticked layers (QAT does; a conversion takes them all)."""
        return bool(self.layers_title)

    @property
    def selected_layers(self) -> list[str]:
        """The ticked layers of the checklist."""
        return [b.layer_name for b in self._layers.children if b.value]

    # ------------------------------------------------------------------ preview
    def _kernel(self, layer: str) -> np.ndarray:
        key = (self.base, layer)
        if key not in self._kernels:
            self._kernels[key] = self.workbench[self.base].kernel(layer)
        return self._kernels[key]

    def _safe_preview(self) -> None:
        if not self.preview_layer:
            return
        try:
            kernel = self._kernel(self.preview_layer)
            self._draw_preview(kernel, self._preview_fig.clear())
        except Exception as exc:  # an observer's error would reach nobody: show it
            self._error.value = error_html(exc)
            return
        self._preview_fig.render()

    @staticmethod
    def _overlay(ax: Any, kernel: np.ndarray, after: np.ndarray, label: str, title: str, *,
                 color: str = BLUE, bins: int = 64, exclude_zeros: bool = False,
                 now: str = "now") -> None:
        """See :func:`compresswidgets.plots.plot_before_after`."""
        plot_before_after(kernel, after, ax, label=label, title=title, color=color, bins=bins,
                          exclude_zeros=exclude_zeros, now=now)

    # ------------------------------------------------------------------ running
    def apply(self) -> None:
        """Start the technique in a background thread (see :meth:`wait`); while the panel is
        ``blocked`` the error box says why instead."""
        if not self._may_start():
            return
        if self._uses_checklist and self._layers.children and not self.selected_layers:
            self._error.value = error_html(ValueError(
                f"No layer is ticked under '{self.layers_title}' (layers=[]), so there is "
                "nothing to apply it to. Tick at least one layer; the layers ticked when the "
                "panel opened are the engine's default."))
            return
        self._progress.value = 0.0
        self.running = True
        self._job.start(self._run)

    def stop(self) -> None:
        """Ask the running fine-tuning to stop after the current batch."""
        if self.running:
            self._job.stop_requested.set()
            self._status.value = "stopping…"

    def _report(self, report: Progress) -> None:
        self._progress.value = report.fraction
        parts = [f"epoch {report.epoch}/{report.epochs}",
                 f"batch {report.batch}/{report.batches}"]
        parts += [f"{key} {value:.4f}" for key, value in report.logs.items()
                  if isinstance(value, float | int) and key in ("loss", "accuracy")]
        self._status.value = esc(", ".join(parts))
        if self._job.stop_requested.is_set():
            report.stop()

    def _run(self) -> None:
        final = None
        try:
            self._status.value = "working…"
            variant = self._engine(self._report)
        except TrainingStopped as exc:
            final = esc(str(exc))
        except Exception as exc:  # in a thread, an uncaught error would vanish
            self._failed(exc)
        else:
            self.result = variant
            self._progress.value = 1.0
            self._status.value = "measuring the result…"
            try:
                self._show(variant)
            except Exception as exc:  # e.g. a variant that cannot be measured: it is kept
                self._failed(exc)
            final = esc(f"made {variant.name!r}")
            self.made = variant.name
        finally:
            self._finished(final)

    def _on_running(self, change: Any) -> None:
        busy = bool(change["new"])
        for control in (self._base, *self._locked, *self._layers.children):
            control.disabled = busy
        self._enable_layer_controls()
        self._stop_button.disabled = not (busy and self._stoppable())
        if not busy:
            self.refresh_variants()

    # ------------------------------------------------------------------ result
    def _show(self, variant: Variant) -> None:
        original = self.workbench.original
        metric = self.workbench.metric
        delta = variant.accuracy - original.accuracy
        summary = table_html([
            ("variant", variant.name),
            (metric.name, f"{metric.format(variant.accuracy)} ({metric.format_delta(delta)} "
                          "vs original" + ("" if metric.greater_is_better
                                           else f", {metric.direction}") + ")"),
            (".tflite size", f"{variant.size_bytes:,} B ({variant.size_ratio:.1f}x smaller)"),
            ("gzipped", f"{variant.gzipped_bytes:,} B ({variant.gzipped_ratio:.1f}x smaller)"),
            ("sparsity", f"{variant.sparsity:.1%}"),
        ])
        rows = variant.layers
        quantized = variant.is_quantized
        header = ["layer", "class", "params", "sparsity", "distinct values"]
        if quantized:
            header += ["TFLite dtype", "max |error|", "SNR dB"]
        extra_header, extra = self._layer_columns(variant)
        header += extra_header
        table = []
        user = self.workbench.user_name
        for r in rows:
            line = [user(r["layer"]), r["class"], f"{r['params']:,}", f"{r['sparsity']:.1%}",
                    f"{r['distinct']:,}"]
            if quantized:
                line += [r.get("tflite_dtype") or "-",
                         "-" if r.get("max_abs_error") is None else f"{r['max_abs_error']:.2e}",
                         "-" if r.get("snr_db") is None else f"{r['snr_db']:.1f}"]
            table.append(line + extra.get(user(r["layer"]), ["-"] * len(extra_header)))
        notes = "".join(f"<div style='color:#b02a1a'>{esc(n)}</div>" for n in variant.notes)
        self._result.value = summary + "<br>" + grid_html(header, table) + notes
        self._code.value = (f"<pre class='cw-code' style='font-size:11px;white-space:pre-wrap'>"
                            f"{esc(variant.code)}</pre>")
        self._draw_result(variant)

    def _layer_columns(self, variant: Variant) -> tuple[list[str], dict[str, list[str]]]:
        """More columns for the result's per-layer table: (header, {layer: cells})."""
        return [], {}

    def _draw_result(self, variant: Variant) -> None:
        names = [r["layer"] for r in variant.layers]
        if self.preview_layer in names:  # the previewed layer first, then any other
            names.insert(0, names.pop(names.index(self.preview_layer)))
        for layer in names:
            try:  # a fused TFLite op (LSTM) holds its kernel split by gate: not matched
                before, after = variant.parent.kernel(layer), variant.kernel(layer)
            except KeyError:
                continue
            break
        else:
            self._result_fig.widget.layout.display = "none"
            return
        zeros = float(np.mean(after == 0))
        skip = zeros > SPARSE
        label = "after" + (f" ({zeros:.0%} zeros, not shown)" if skip else "")
        ax = self._result_fig.clear()
        self._overlay(ax, before, after, label,
                      f"{self.workbench.user_name(layer)}: result of {variant.name}",
                      color=GREEN, exclude_zeros=skip, now="before")
        self._result_fig.render()
        self._result_fig.widget.layout.display = None

    # ------------------------------------------------------------------ static output
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """Widget view where widgets render; a static HTML summary for nbconvert/GitHub."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            result = (self._result.value + "".join(
                f.img_html() for f in self._result_figs if f.widget.layout.display != "none")
                if self.result is not None else "")
            bundle["text/html"] = (
                f"<div><b>{esc(type(self).__name__)}</b> on {esc(self.base)} "
                f"(interactive controls need a live kernel)</div>"
                f"{self._preview_fig.img_html()}{result}")
        return bundle
