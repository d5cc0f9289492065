"""QuantizationPanel: TFLite quantization of a Workbench variant, with a live int8 preview."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np
import traitlets

from compresswidgets._converter import CALIBRATED, TABLE
from compresswidgets.inspection import snr_db
from compresswidgets.plots import plot_layer_errors
from compresswidgets.preview import int8_preview
from compresswidgets.techniques import quantization
from compresswidgets.widgets._controls import Bounded, Choice, FigureImage, error_html, esc
from compresswidgets.widgets._technique import SPARSE, TechniquePanel

if TYPE_CHECKING:
    from compresswidgets._training import ProgressCallback
    from compresswidgets.variant import Variant

__all__ = ["QuantizationPanel"]

_ROW = widgets.Layout(flex_flow="row wrap")
#: (label, mode) of every mode Workbench.quantize takes, from the converter's table
MODE_LABELS = [(TABLE[mode].label, mode) for mode in quantization.MODES]
#: The checklist's title per mode that uses it (ticked: quantized; unticked: left float).
CHECKLIST_TITLES = {"qat": "Layers to train with fake quantization (QAT)",
                    "int8": "Layers to quantize (untick a layer to keep it float: keep_float)"}


class QuantizationPanel(TechniquePanel):
    """Quantize a variant for TFLite: choose the mode, see the weight error, Apply.

    The preview shows the chosen layer's weights after symmetric per-channel int8 (or
    float16) rounding, computed with NumPy, with the error it costs. Apply runs
    ``workbench.quantize`` in a background thread: a TFLite conversion, or for
    quantization-aware training a fine-tuning with progress and Stop. In full-integer mode
    the unticked layers stay float (``keep_float``), and a full-integer result shows each
    op's activation error (``variant.layer_errors``) in its table and as a bar plot, the ops
    whose activations do not fit int8 in red. Quantize last: a quantized variant cannot be
    the base of another technique.

    Example:
        >>> wb = cw.Workbench(model, data)      # doctest: +SKIP
        >>> cw.QuantizationPanel(wb)            # doctest: +SKIP
    """

    mode = Choice("dynamic", quantization.MODES, help="a quantization mode of Workbench.quantize")
    representative_samples = Bounded(100, 10, 1000, integer=True,
                                     help="calibration samples (int8, 16x8)")
    epochs = Bounded(1, 1, 20, integer=True, help="QAT fine-tuning epochs")

    css_class = "cw-quantization-panel"
    layers_title = CHECKLIST_TITLES["qat"]
    apply_icon = "compress"
    apply_tooltip = "Convert (or train with fake quantization) a copy; the base is untouched"

    def _build(self) -> tuple[list[widgets.Widget], list[widgets.Widget]]:
        self._mode = widgets.Dropdown(
            options=MODE_LABELS, description="Mode", layout=widgets.Layout(width="340px"),
            tooltip="Dynamic: int8 weights, float maths. float16: half-size weights. Full "
                    "integer: int8 weights and activations, calibrated on samples. 16x8: int16 "
                    "activations, more accurate. QAT: fine-tune with fake quantization first")
        self._samples = widgets.IntSlider(
            min=10, max=1000, step=10, description="Samples",
            tooltip="Training samples the converter runs to calibrate activation ranges "
                    "(full integer and 16x8 modes)")
        self._epochs = widgets.IntSlider(min=1, max=20, description="Epochs",
                                         tooltip="Quantization-aware fine-tuning epochs (QAT)")
        self._help = widgets.HTML()
        for trait, control in (("mode", self._mode), ("representative_samples", self._samples),
                               ("epochs", self._epochs)):
            traitlets.link((self, trait), (control, "value"))
        self._errors_fig = FigureImage(5.6, 3.0, css_class="cw-layer-errors-plot", left=0.1,
                                       right=0.98, bottom=0.27, top=0.9)
        self._errors_fig.widget.layout.display = "none"  # until a full-integer result
        self._result_figs.append(self._errors_fig)
        self.observe(self._on_mode, names=["mode"])
        self._on_mode()
        rows = [widgets.HBox([self._base, self._mode, self._preview], layout=_ROW),
                widgets.HBox([self._samples, self._epochs], layout=_ROW), self._help]
        return rows, [self._mode, self._samples, self._epochs]

    def _on_mode(self, change: Any = None) -> None:
        calibrated, qat = self.mode in CALIBRATED, self.mode == "qat"
        self._samples.disabled = not calibrated
        self._epochs.disabled = not qat
        self._checklist.layout.display = None if self._uses_checklist else "none"
        if self._uses_checklist:
            self._checklist.children[0].value = f"<b>{esc(CHECKLIST_TITLES[self.mode])}</b>"
        if change is not None and self._layers.children:  # the ticks are the mode's default
            self._on_base()
        self._help.value = (
            "<span style='color:#666'>"
            + ("Activation ranges are calibrated on the samples drawn from the training split. "
               if calibrated else "")
            + ("The converter leaves kernels under 1,024 weights in float32 in this mode. "
               if self.mode == "dynamic" else "")
            + ("On a pruned or clustered base QAT keeps their zeros and clusters (PQAT, CQAT, "
               "PCQAT). " if qat else "")
            + "Quantize last: the result is a .tflite model.</span>")
        self._error.value = error_html(self._unavailable, trace=False) if self._unavailable else ""
        self._safe_preview()

    def _checklist_layers(self) -> list[Any]:
        return [layer for layer in self._base_model().layers if layer.weights]

    @property
    def _unavailable(self) -> Exception | None:
        return super()._unavailable if self.mode == "qat" else None  # PTQ converts anything

    def _ticked_by_default(self, layer: Any, size: int) -> bool:
        if self.mode != "qat":  # full integer: every layer int8 unless unticked
            return True
        key = self.base
        if getattr(self, "_rejected_for", None) != key:  # once per base: it clones the model
            try:
                self._rejected = set(quantization.qat_rejected(self._base_model()))
            except (ValueError, TypeError, RuntimeError):
                self._rejected = set()
            self._rejected_for = key
        return layer.name not in self._rejected

    def _checklist_note(self, unticked: list[str]) -> str:
        if self.mode != "qat":
            return ""
        return (f"tfmot's 8-bit QAT scheme does not support {', '.join(unticked)}: left out "
                "(they stay float in the .tflite).")

    @property
    def _qat_layers(self) -> list[str] | None:
        """None (the engine's default) when the ticks are the default ones; else every layer
        but the unticked ones (weightless layers such as ReLU or Add stay annotated)."""
        boxes = self._layers.children
        if all(b.value == self._ticked_by_default(self._base_model().get_layer(b.layer_name), 0)
               for b in boxes):
            return None
        unticked = {b.layer_name for b in boxes if not b.value}
        return [layer.name for layer in self._base_model().layers
                if type(layer).__name__ != "InputLayer" and layer.name not in unticked]

    @property
    def _keep_float(self) -> list[str] | None:
        """Full integer: the unticked layers (None when every layer is ticked)."""
        unticked = [b.layer_name for b in self._layers.children if not b.value]
        return unticked or None

    @property
    def _uses_checklist(self) -> bool:
        return self.mode in CHECKLIST_TITLES

    def _stoppable(self) -> bool:
        return self.mode == "qat"

    def _draw_preview(self, kernel: np.ndarray, ax: Any) -> None:
        if self.mode == "float16":
            after, what = kernel.astype(np.float16).astype(np.float32), "float16"
        else:
            after, what = int8_preview(kernel, channel_axis=-1), "int8 per channel"
        error = float(np.max(np.abs(after - kernel))) if kernel.size else 0.0
        self._overlay(ax, kernel, after, f"{what}: max |error| {error:.2e}, "
                      f"SNR {snr_db(kernel, after):.1f} dB",
                      f"{self._shown_layer}: weights after {what} rounding", bins=128,
                      exclude_zeros=float(np.mean(kernel == 0)) > SPARSE)

    def _engine(self, progress: ProgressCallback) -> Variant:
        return self.workbench.quantize(
            self.mode, representative_samples=self.representative_samples, epochs=self.epochs,
            layers=self._qat_layers if self.mode == "qat" else None, base=self.base,
            progress=progress if self.mode == "qat" else None,
            keep_float=self._keep_float if self.mode == "int8" else None)

    # ------------------------------------------------------------------ result
    def _layer_columns(self, variant: Variant) -> tuple[list[str], dict[str, list[str]]]:
        """Full integer: each layer's worst op by activation error (rmse/scale, typical
        steps), ⚠ where it does not fit int8."""
        errors = variant.layer_errors  # measured once (a debugger run in the worker)
        if not errors:
            return [], {}
        worst: dict[str, Any] = {}
        for e in errors:
            if e.layer and (e.layer not in worst or e.rmse_scale > worst[e.layer].rmse_scale
                            or (e.misfit and not worst[e.layer].misfit)):
                worst[e.layer] = e
        cells = {layer: [("⚠ " if e.misfit else "") + f"{e.rmse_scale:.2f}",
                         f"{e.typical_steps:.3g}"] for layer, e in worst.items()}
        return ["act. rmse/scale", "typical steps"], cells

    def _show(self, variant: Variant) -> None:
        super()._show(variant)
        errors = variant.layer_errors
        if not errors:
            self._errors_fig.widget.layout.display = "none"
            return
        bad = [e for e in errors if e.misfit]
        plot_layer_errors(errors, self._errors_fig.clear(),
                          title=f"{variant.name}: int8 activation error per op")
        self._errors_fig.render()
        self._errors_fig.widget.layout.display = None
        note = ("Activations that do not fit int8: " + "; ".join(
            f"{e.layer or e.op}: {e.misfit}" for e in bad)
            + ". In full-integer mode (int8), untick those layers to keep them float." if bad else
            "Every op's activations fit int8 (rmse/scale near 0.29, rounding alone).")
        self._result.value += f"<div style='color:{'#b02a1a' if bad else '#666'}'>{esc(note)}</div>"
