"""PruningPanel: magnitude pruning of a Workbench variant, with a live preview."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np
import traitlets

from compresswidgets.preview import prune_preview
from compresswidgets.techniques import pruning
from compresswidgets.techniques._common import left_alone_note
from compresswidgets.widgets._controls import Bounded, Choice
from compresswidgets.widgets._technique import TINY, TechniquePanel

if TYPE_CHECKING:
    from compresswidgets._training import ProgressCallback
    from compresswidgets.variant import Variant

__all__ = ["TINY", "PruningPanel"]

_ROW = widgets.Layout(flex_flow="row wrap")
#: the panel's names of the engine's structures (None is "none")
STRUCTURES = tuple("none" if s is None else s for s in pruning.STRUCTURES)


class PruningPanel(TechniquePanel):
    """Prune a variant of a Workbench: choose the target, watch the preview, Apply.

    Moving the sparsity slider redraws the chosen layer's histogram as it would be after
    one-shot magnitude pruning (NumPy on a copy). Apply runs ``workbench.prune`` in a
    background thread (the kernel stays responsive), with a progress bar and a Stop button.
    The result, its per-layer table and the code that reproduces it appear below.

    Example:
        >>> wb = cw.Workbench(model, data)      # doctest: +SKIP
        >>> cw.PruningPanel(wb)                 # doctest: +SKIP
    """

    target_sparsity = Bounded(0.5, 0.0, 0.95, help="fraction of each kernel set to zero")
    schedule = Choice("polynomial", pruning.SCHEDULES, help="'polynomial' or 'constant'")
    structure = Choice("none", STRUCTURES, help="'none' or '2:4'")
    epochs = Bounded(2, 0, 20, integer=True, help="fine-tuning epochs; 0 prunes once")

    css_class = "cw-pruning-panel"
    layers_title = "Layers to prune (each at its own sparsity: move its slider)"
    per_layer_trait = "target_sparsity"
    apply_icon = "scissors"
    apply_tooltip = "Prune and fine-tune a copy; the base is untouched"

    def _build(self) -> tuple[list[widgets.Widget], list[widgets.Widget]]:
        self._sparsity = widgets.FloatSlider(
            min=0.0, max=0.95, step=0.05, description="Sparsity", readout_format=".0%",
            tooltip="Fraction of each selected kernel set to zero (its smallest magnitudes)")
        self._schedule = widgets.Dropdown(
            options=[("polynomial decay", "polynomial"), ("constant", "constant")],
            description="Schedule",
            tooltip="Polynomial ramps sparsity up during fine-tuning; constant prunes at once")
        self._structure = widgets.Dropdown(
            options=STRUCTURES, description="Structure",
            tooltip="2:4 keeps two of every four weights (50 %), which some hardware speeds up")
        self._epochs = widgets.IntSlider(min=0, max=20, description="Epochs",
                                         tooltip="Fine-tuning epochs; 0 prunes once, no training")
        for trait, control in (("target_sparsity", self._sparsity), ("schedule", self._schedule),
                               ("structure", self._structure), ("epochs", self._epochs)):
            traitlets.link((self, trait), (control, "value"))
        self.observe(lambda _: self._safe_preview(), names=["target_sparsity", "structure"])
        self.observe(lambda _: self._enable_layer_controls(), names=["structure"])
        rows = [widgets.HBox([self._base, self._sparsity, self._epochs], layout=_ROW),
                widgets.HBox([self._schedule, self._structure, self._preview], layout=_ROW)]
        return rows, [self._sparsity, self._schedule, self._structure, self._epochs]

    def _supports(self, layer: Any) -> bool:
        return pruning.supports(layer)

    def _layer_control(self) -> widgets.FloatSlider:
        return widgets.FloatSlider(
            min=0.0, max=0.95, step=0.05, readout_format=".0%",
            layout=widgets.Layout(width="230px"),
            tooltip="This layer's own sparsity (it follows the panel's until moved)")

    @property
    def _per_layer_enabled(self) -> bool:
        return self.structure == "none"  # 2:4 is 50 % in every layer

    def _left_alone_note(self) -> str:
        return left_alone_note(self._base_model(), pruning.supports, "prunable")

    @property
    def _sparsity_value(self) -> float:
        return 0.5 if self.structure == "2:4" else self.target_sparsity

    def _draw_preview(self, kernel: np.ndarray, ax: Any) -> None:
        sparsity = self._sparsity_value
        self._overlay(ax, kernel, prune_preview(kernel, sparsity),
                      f"after {sparsity:.0%} (zeros not shown)",
                      f"{self._shown_layer}: one-shot magnitude pruning", exclude_zeros=True)

    def _engine(self, progress: ProgressCallback) -> Variant:
        targets = self.per_layer_values
        if targets is not None:  # a dict: each ticked layer at its own sparsity
            return self.workbench.prune(targets, schedule=self.schedule, epochs=self.epochs,
                                        base=self.base, progress=progress)
        return self.workbench.prune(
            self._sparsity_value, schedule=self.schedule,
            structure=None if self.structure == "none" else self.structure,
            layers=self.selected_layers, epochs=self.epochs, base=self.base, progress=progress)

