"""ClusteringPanel: weight clustering of a Workbench variant, with a live k-means preview."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np
import traitlets

from compresswidgets.preview import kmeans_1d
from compresswidgets.techniques import clustering
from compresswidgets.techniques._common import left_alone_note
from compresswidgets.techniques.clustering import INITS
from compresswidgets.widgets._controls import Bounded, Choice
from compresswidgets.widgets._technique import SPARSE, TechniquePanel

if TYPE_CHECKING:
    from compresswidgets._training import ProgressCallback
    from compresswidgets.variant import Variant

__all__ = ["ClusteringPanel"]

_ROW = widgets.Layout(flex_flow="row wrap")
#: What the slider offers: every bit width and the steps between (2 bits = 4 clusters, ...).
CLUSTER_CHOICES = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
#: (label, name) of each centroid initialisation, from the technique's table
_INITS = [(label, name) for name, (_, label) in INITS.items()]


class ClusteringPanel(TechniquePanel):
    """Cluster a variant's weights: each kernel keeps only ``clusters`` distinct values.

    Moving the clusters slider redraws the chosen layer's histogram as it would be after
    1-D k-means on its weights (NumPy on a copy, milliseconds even for large layers). Apply
    runs ``workbench.cluster`` (tfmot ``cluster_weights`` on a private copy) in a background
    thread, with progress and Stop. On a pruned base, "Preserve sparsity" keeps zeros zero.

    Example:
        >>> wb = cw.Workbench(model, data)      # doctest: +SKIP
        >>> cw.ClusteringPanel(wb)              # doctest: +SKIP
    """

    clusters = Choice(16, CLUSTER_CHOICES, help="distinct values per kernel")
    init = Choice("kmeans++", INITS, help="centroid initialization")
    preserve_sparsity = traitlets.Bool(False, help="keep zeros zero (on a pruned base)")
    epochs = Bounded(1, 0, 20, integer=True, help="fine-tuning epochs; 0 clusters without "
                     "training")

    css_class = "cw-clustering-panel"
    layers_title = "Layers to cluster (each with its own clusters: move its slider)"
    per_layer_trait = "clusters"
    apply_icon = "object-group"
    apply_tooltip = "Cluster and fine-tune a copy; the base is untouched"

    def _build(self) -> tuple[list[widgets.Widget], list[widgets.Widget]]:
        self._clusters = widgets.SelectionSlider(
            options=CLUSTER_CHOICES, description="Clusters",
            tooltip="Distinct values each selected kernel keeps; 16 is 4 bits an index")
        self._init = widgets.Dropdown(
            options=_INITS, description="Init",
            tooltip="Where the centroids start: k-means++ spreads them by the data; linear "
                    "spaces them evenly (keeps outliers); density-based follows the histogram")
        self._preserve = widgets.Checkbox(
            description="Preserve sparsity", indent=False,
            layout=widgets.Layout(width="auto", margin="0 12px"),
            tooltip="Keep pruned zeros zero: cluster only the non-zero weights")
        self._epochs = widgets.IntSlider(min=0, max=20, description="Epochs",
                                         tooltip="Fine-tuning epochs; 0 clusters, no training")
        for trait, control in (("clusters", self._clusters), ("init", self._init),
                               ("preserve_sparsity", self._preserve), ("epochs", self._epochs)):
            traitlets.link((self, trait), (control, "value"))
        self.observe(lambda _: self._safe_preview(),
                     names=["clusters", "init", "preserve_sparsity", "epochs"])
        rows = [widgets.HBox([self._base, self._clusters, self._epochs], layout=_ROW),
                widgets.HBox([self._init, self._preview, self._preserve], layout=_ROW)]
        return rows, [self._clusters, self._init, self._preserve, self._epochs]

    def _supports(self, layer: Any) -> bool:
        return clustering.supports(layer)

    def _layer_control(self) -> widgets.SelectionSlider:
        return widgets.SelectionSlider(
            options=CLUSTER_CHOICES, layout=widgets.Layout(width="230px"),
            tooltip="This layer's own number of clusters (it follows the panel's until moved)")

    def _left_alone_note(self) -> str:
        return left_alone_note(self._base_model(), clustering.supports, "clusterable")

    def _on_base(self, _change: Any = None) -> None:
        # a pruned base: keep its zeros unless the user says otherwise
        self.preserve_sparsity = "prune" in [v.technique for v in self.workbench[self.base]
                                             .lineage]
        super()._on_base(_change)

    def _draw_preview(self, kernel: np.ndarray, ax: Any) -> None:
        keep_zeros = self.preserve_sparsity
        sparse = keep_zeros or float(np.mean(kernel == 0)) > SPARSE
        # tfmot runs no k-means: it places the centroids and fine-tuning moves them. With no
        # fine-tuning, show the centroids as placed; with it, where k-means would take them.
        iterations = 30 if self.epochs > 0 else 0
        # with sparsity preserved, zero is one of the clusters (tfmot zeroes the nearest one)
        k = max(1, self.clusters - 1) if keep_zeros else self.clusters
        fit = kmeans_1d(kernel, k, init=self.init, exclude_zeros=keep_zeros,
                        iterations=iterations)
        after = fit.assign(kernel)
        if keep_zeros:
            after[kernel == 0] = 0
        values = len(fit.centroids) + (1 if keep_zeros else 0)
        label = f"after: {values} values" + (" incl. zero" if keep_zeros else "")
        how = "k-means" if iterations else "centroids as placed (no fine-tuning)"
        self._overlay(ax, kernel, after, label + (" (zeros not shown)" if sparse else ""),
                      f"{self._shown_layer}: {self.clusters} clusters, {how}",
                      exclude_zeros=sparse, bins=128)

    def _engine(self, progress: ProgressCallback) -> Variant:
        per_layer = self.per_layer_values
        if per_layer is not None:  # a dict: each ticked layer with its own clusters
            return self.workbench.cluster(
                per_layer, init=self.init, preserve_sparsity=self.preserve_sparsity,
                epochs=self.epochs, base=self.base, progress=progress)
        return self.workbench.cluster(
            self.clusters, init=self.init, preserve_sparsity=self.preserve_sparsity,
            layers=self.selected_layers, epochs=self.epochs, base=self.base, progress=progress)
