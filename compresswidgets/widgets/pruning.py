"""PruningPanel: magnitude pruning of a Workbench variant, with a live preview."""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as widgets
import numpy as np
import traitlets

from compresswidgets._training import Progress, TrainingStopped
from compresswidgets.inspection import histogram_of
from compresswidgets.plots import plot_histogram
from compresswidgets.preview import prune_preview
from compresswidgets.techniques import pruning
from compresswidgets.techniques._common import kernel_of
from compresswidgets.widgets._controls import FigureImage, error_html, esc, table_html

#: Layers with fewer weights than this are left unticked by default (the panel says so).
TINY = 1024


class PruningPanel(widgets.VBox):
    """Prune a variant of a Workbench: choose the target, watch the preview, Apply.

    Apply runs ``workbench.prune`` in a background thread (the kernel stays responsive), with a
    progress bar and a Stop button. The result, its per-layer sparsity and the code that
    reproduces it appear below.

    Example:
        >>> wb = cw.Workbench(model, data)      # doctest: +SKIP
        >>> cw.PruningPanel(wb)                 # doctest: +SKIP
    """

    target_sparsity = traitlets.Float(0.5)
    schedule = traitlets.Unicode("polynomial")
    structure = traitlets.Unicode("none")
    epochs = traitlets.Int(2)
    base = traitlets.Unicode("original")
    preview_layer = traitlets.Unicode("")
    running = traitlets.Bool(False)

    def __init__(self, workbench: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("cw-pruning-panel")
        self.workbench = workbench
        self.result: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._kernels: dict[tuple[str, str], np.ndarray] = {}

        self._sparsity = widgets.FloatSlider(
            min=0.0, max=0.95, step=0.05, description="Sparsity", readout_format=".0%",
            tooltip="Fraction of each selected kernel set to zero (its smallest magnitudes)")
        self._schedule = widgets.Dropdown(
            options=[("polynomial decay", "polynomial"), ("constant", "constant")],
            description="Schedule",
            tooltip="Polynomial ramps sparsity up during fine-tuning; constant prunes at once")
        self._structure = widgets.Dropdown(
            options=[("none", "none"), ("2:4", "2:4")], description="Structure",
            tooltip="2:4 keeps two of every four weights (50 %), which some hardware speeds up")
        self._epochs = widgets.IntSlider(min=0, max=20, description="Epochs",
                                         tooltip="Fine-tuning epochs; 0 prunes once, no training")
        self._base = widgets.Dropdown(description="Base", tooltip="The variant to prune")
        self._preview = widgets.Dropdown(description="Preview",
                                         tooltip="The layer whose histogram is previewed")
        self._layers = widgets.VBox(layout=widgets.Layout(max_height="180px", overflow="auto"))
        self._layers_note = widgets.HTML()
        self._apply = widgets.Button(description="Apply", button_style="primary", icon="scissors",
                                     tooltip="Prune and fine-tune a copy; the base is untouched")
        self._stop_button = widgets.Button(description="Stop", icon="stop", disabled=True,
                                           tooltip="Stop the fine-tuning; nothing is added")
        self._progress = widgets.FloatProgress(min=0.0, max=1.0, description="",
                                               layout=widgets.Layout(width="300px"))
        self._status = widgets.HTML()
        self._error = widgets.HTML()
        self._preview_fig = FigureImage(5.2, 2.8, css_class="cw-preview-plot", left=0.14,
                                        right=0.97, bottom=0.18, top=0.88)
        self._result = widgets.HTML()
        self._result_fig = FigureImage(5.2, 2.8, css_class="cw-result-plot", left=0.14,
                                       right=0.97, bottom=0.18, top=0.88)
        self._result_fig.widget.layout.display = "none"  # until there is a result
        self._code = widgets.HTML()
        self._code_box = widgets.Accordion(children=[self._code], titles=("Show code",))
        self._code_box.selected_index = None

        # options before the links: a linked Dropdown must hold the trait's value
        self._base.options = self._prunable_variants()
        first = self._prunable_layers()
        self._preview.options = [layer.name for layer in first]
        if first:  # the biggest layer shows the most
            self.preview_layer = max(first, key=lambda layer: layer.count_params()).name
        for trait, control in (("target_sparsity", self._sparsity), ("schedule", self._schedule),
                               ("structure", self._structure), ("epochs", self._epochs),
                               ("base", self._base), ("preview_layer", self._preview)):
            traitlets.link((self, trait), (control, "value"))
        self._apply.on_click(lambda _: self.apply())
        self._stop_button.on_click(lambda _: self.stop())

        self.children = [
            widgets.HBox([self._base, self._sparsity, self._epochs],
                         layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self._schedule, self._structure, self._preview],
                         layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HTML("<b>Layers to prune</b>"), self._layers_note, self._layers,
            widgets.HBox([self._apply, self._stop_button, self._progress, self._status],
                         layout=widgets.Layout(align_items="center")),
            self._error, self._preview_fig.widget,
            widgets.HBox([self._result, self._result_fig.widget],
                         layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start")),
            self._code_box,
        ]
        self.refresh_variants()
        with self.hold_trait_notifications():
            self.target_sparsity, self.epochs = 0.5, 2
        self.observe(self._on_base, names=["base"])
        self.observe(lambda _: self._draw_preview(),
                     names=["target_sparsity", "preview_layer", "structure"])
        self.observe(self._on_running, names=["running"])
        self._on_base()

    # ------------------------------------------------------------------ state
    def refresh_variants(self) -> None:
        """Offer every variant that can be pruned (Keras models, not yet quantized)."""
        names = self._prunable_variants()
        current = self.base if self.base in names else "original"
        self._base.options = names
        self.base = current

    def _prunable_variants(self) -> list[str]:
        return [v.name for v in self.workbench.variants
                if v.keras_model is not None and not v.is_quantized]

    def _prunable_layers(self) -> list[Any]:
        return [layer for layer in self._base_model().layers
                if layer.weights and pruning.supports(layer)]

    def _base_model(self) -> Any:
        return self.workbench[self.base].keras_model

    def _on_base(self, _change: Any = None) -> None:
        layers = self._prunable_layers()
        boxes = []
        for layer in layers:
            size = sum(int(np.prod(w.shape)) for w in layer.weights)
            box = widgets.Checkbox(value=size >= TINY, indent=False,
                                   description=f"{layer.name} · {type(layer).__name__} · "
                                               f"{size:,} params")
            box.layer_name = layer.name
            boxes.append(box)
        self._layers.children = boxes
        tiny = [b.layer_name for b in boxes if not b.value]
        self._layers_note.value = (
            f"<span style='color:#666'>Layers under {TINY:,} weights are left out by default: "
            f"{esc(', '.join(tiny))}. Tick them to prune them too.</span>" if tiny else "")
        names = [layer.name for layer in layers]
        self._preview.options = names
        if self.preview_layer not in names and names:
            biggest = max(layers, key=lambda layer: layer.count_params())
            self.preview_layer = biggest.name
        self._draw_preview()

    @property
    def selected_layers(self) -> list[str]:
        return [b.layer_name for b in self._layers.children if b.value]

    # ------------------------------------------------------------------ preview
    def _kernel(self, layer: str) -> np.ndarray:
        key = (self.base, layer)
        if key not in self._kernels:
            kernel = kernel_of(self._base_model().get_layer(layer))
            self._kernels[key] = np.asarray(kernel.numpy())
        return self._kernels[key]

    def _draw_preview(self) -> None:
        if not self.preview_layer:
            return
        kernel = self._kernel(self.preview_layer)
        sparsity = 0.5 if self.structure == "2:4" else self.target_sparsity
        after = prune_preview(kernel, sparsity)
        span = (float(kernel.min()), float(kernel.max()))
        ax = self._preview_fig.clear()
        plot_histogram(histogram_of(kernel, 64, span), ax, label="now", color="#9aa5b1",
                       alpha=0.6)
        plot_histogram(histogram_of(after, 64, span, exclude_zeros=True), ax,
                       label=f"after {sparsity:.0%} (zeros not shown)", color="#3b75af",
                       alpha=0.85, title=f"{self.preview_layer}: one-shot magnitude pruning")
        self._preview_fig.render()

    # ------------------------------------------------------------------ running
    def apply(self) -> None:
        """Start pruning in a background thread (see :meth:`wait`)."""
        if self.running:
            return
        self._error.value = ""
        self._stop.clear()
        self.running = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the current run has finished (for scripts and tests)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def stop(self) -> None:
        """Ask the running fine-tuning to stop after the current batch."""
        self._stop.set()
        self._status.value = "stopping…"

    def _report(self, report: Progress) -> None:
        self._progress.value = report.fraction
        loss = report.logs.get("loss")
        self._status.value = esc(f"epoch {report.epoch}/{report.epochs}, batch "
                                 f"{report.batch}/{report.batches}"
                                 + (f", loss {loss:.4f}" if loss is not None else ""))
        if self._stop.is_set():
            report.stop()

    def _run(self) -> None:
        try:
            variant = self.workbench.prune(
                self.target_sparsity if self.structure != "2:4" else 0.5,
                schedule=self.schedule,
                structure=None if self.structure == "none" else self.structure,
                layers=self.selected_layers, epochs=self.epochs, base=self.base,
                progress=self._report)
        except TrainingStopped as exc:
            self._status.value = esc(str(exc))
        except (ValueError, TypeError, RuntimeError) as exc:
            self._error.value = error_html(exc)
            self._status.value = ""
        else:
            self.result = variant
            self._progress.value = 1.0
            self._status.value = "measuring the result…"
            self._show(variant)
            self._status.value = esc(f"made {variant.name!r}")
        finally:
            self.running = False

    def _on_running(self, change: Any) -> None:
        busy = bool(change["new"])
        for control in (self._apply, self._sparsity, self._schedule, self._structure,
                        self._epochs, self._base):
            control.disabled = busy
        self._stop_button.disabled = not busy
        if not busy:
            self.refresh_variants()

    def _show(self, variant: Any) -> None:
        original = self.workbench.original
        rows = [("variant", variant.name), ("accuracy", f"{variant.accuracy:.2%} "
                f"(original {original.accuracy:.2%})"),
                (".tflite size", f"{variant.size_bytes:,} B (original {original.size_bytes:,})"),
                ("gzipped", f"{variant.gzipped_bytes:,} B (original "
                            f"{original.gzipped_bytes:,})")]
        rows += [(f"sparsity {r['layer']}", f"{r['sparsity']:.1%}") for r in variant.layers]
        notes = "".join(f"<div style='color:#b02a1a'>{esc(n)}</div>" for n in variant.notes)
        self._result.value = table_html(rows) + notes
        self._code.value = (f"<pre style='font-size:11px;white-space:pre-wrap'>"
                            f"{esc(variant.code)}</pre>")
        layer = self.preview_layer if self.preview_layer in variant.recipe["layers"] else (
            variant.recipe["layers"][0])
        before = self._kernel(layer) if variant.parent.name == self.base else np.asarray(
            kernel_of(variant.parent.keras_model.get_layer(layer)).numpy())
        after = np.asarray(kernel_of(variant.keras_model.get_layer(layer)).numpy())
        span = (float(min(before.min(), after.min())), float(max(before.max(), after.max())))
        ax = self._result_fig.clear()
        plot_histogram(histogram_of(before, 64, span), ax, label="before", color="#9aa5b1",
                       alpha=0.6)
        plot_histogram(histogram_of(after, 64, span, exclude_zeros=True), ax,
                       label=f"after fine-tuning ({np.mean(after == 0):.0%} zeros, not shown)",
                       color="#2a9d55", alpha=0.85, title=f"{layer}: result of {variant.name}")
        self._result_fig.render()
        self._result_fig.widget.layout.display = None
