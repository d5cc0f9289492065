"""Studio: every panel on one Workbench, in tabs, with the list of variants below."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from compresswidgets.widgets._controls import (
    download_link,
    error_html,
    esc,
    grid_html,
    table_box,
)
from compresswidgets.widgets.benchmark import BenchmarkPanel
from compresswidgets.widgets.clustering import ClusteringPanel
from compresswidgets.widgets.inspector import WeightInspector
from compresswidgets.widgets.pruning import PruningPanel
from compresswidgets.widgets.quantization import QuantizationPanel
from compresswidgets.widgets.sensitivity import SensitivityPanel
from compresswidgets.widgets.sweep import SweepPanel

if TYPE_CHECKING:
    from compresswidgets.workbench import VariantsChange

__all__ = ["Studio"]

TABS = ("Inspect", "Sensitivity", "Prune", "Cluster", "Quantize", "Benchmark", "Sweep")


class Studio(widgets.VBox):
    """Inspect, find the sensitive layers, prune, cluster, quantize, benchmark and sweep one
    model, in tabs.

    All tabs share one :class:`~compresswidgets.Workbench`, so techniques chain: a variant made
    in one tab is offered as the base of the next, and every variant is listed below the
    tabs against the original. "Use as base" in the Sweep tab makes one of its variants the
    base of the Sensitivity, Prune, Cluster and Quantize tabs. The model you pass is only read.

    Example:
        >>> model, data = cw.demo_model()      # doctest: +SKIP
        >>> cw.Studio(model, data)             # doctest: +SKIP
        >>> cw.Studio(wb)                      # doctest: +SKIP  (an existing Workbench)
    """

    def __init__(self, model: Any, data: Any = None, **workbench_kwargs: Any) -> None:
        """Build the tabs on a new Workbench of ``model`` and ``data``, or on an existing one.

        Args:
            model: a Keras model (tf_keras or Keras 3; only read), or a
                :class:`~compresswidgets.Workbench` to share.
            data: ``(x_train, y_train, x_test, y_test)`` (e.g. what ``cw.demo_model()``
                returns); not with a Workbench.
            **workbench_kwargs: what :class:`~compresswidgets.Workbench` takes besides the
                model and data (``metric=``, ``learning_rate=``, ...); not with a Workbench.

        Raises:
            TypeError: a Workbench together with data or Workbench options.
        """
        from compresswidgets.workbench import Workbench

        if isinstance(model, Workbench):
            if data is not None or workbench_kwargs:
                raise TypeError("Studio(workbench) takes no data or Workbench options: the "
                                "Workbench already has them. Pass Studio(model, data, ...) "
                                "to make a new one.")
            workbench = model
        else:
            if data is None:
                raise TypeError("Studio(model, data) needs the data to fine-tune and measure "
                                "on, e.g. (x_train, y_train, x_test, y_test) or cw.demo_data()."
                                " Or pass an existing cw.Workbench.")
            workbench = Workbench(model, data, **workbench_kwargs)
        super().__init__()
        self.add_class("cw-studio")
        self.workbench = workbench
        self.sensitivity = SensitivityPanel(workbench)
        self.prune = PruningPanel(workbench)
        self.cluster = ClusteringPanel(workbench)
        self.quantize = QuantizationPanel(workbench)
        self.benchmark = BenchmarkPanel(workbench)
        self.sweep = SweepPanel(workbench)
        self._inspect_pick = widgets.Dropdown(
            description="Variant", tooltip="The variant whose Keras weights are inspected")
        self._inspect_error = widgets.HTML()
        self.inspector = WeightInspector(workbench.original.keras_model)
        self._inspect = widgets.VBox([self._inspect_pick, self._inspect_error, self.inspector])
        self.tabs = widgets.Tab(children=[self._inspect, self.sensitivity, self.prune,
                                          self.cluster,
                                          self.quantize, self.benchmark, self.sweep],
                                titles=TABS)
        self._variants = table_box()
        self._variants.add_class("cw-variants")
        self._busy = widgets.HTML()
        self._recipe = widgets.HTML()
        self._recipe.add_class("cw-recipe")
        self._report_path = widgets.Text(
            value="report.html", description="Report",
            tooltip="The .html file to write: one self-contained page for a reviewer",
            layout=widgets.Layout(width="360px"))
        self._save_report = widgets.Button(description="Save report", icon="file",
                                           tooltip="Write the report (opens offline)")
        self._report_status = widgets.HTML()
        self._save_report.on_click(lambda _: self.save_report())
        self.children = [self.tabs, self._busy,
                         widgets.HTML("<b>Variants</b> (against the original)"), self._variants,
                         self._recipe,
                         widgets.HBox([self._report_path, self._save_report,
                                       self._report_status])]
        for panel in self._jobs:
            panel.observe(self._on_job, names=["running"])
        workbench.observe(self._on_variants)  # the panels observe it too
        self.sweep.observe(self._on_chosen, names=["chosen"])
        self._refresh_inspect_options()
        self._inspect_pick.observe(self._on_inspect_pick, names=["value"])
        self._draw_variants()

    @property
    def panels(self) -> tuple[Any, ...]:
        return (self.inspector, self.sensitivity, self.prune, self.cluster, self.quantize,
                self.benchmark, self.sweep)

    @property
    def _jobs(self) -> dict[Any, str]:
        """Panels that run jobs, and their tab titles."""
        return {self.sensitivity: "Sensitivity", self.prune: "Prune", self.cluster: "Cluster",
                self.quantize: "Quantize", self.benchmark: "Benchmark", self.sweep: "Sweep"}

    def _on_chosen(self, change: Any) -> None:
        """A variant picked in the Sweep tab becomes the base of the technique tabs."""
        import traitlets

        for panel in (self.sensitivity, self.prune, self.cluster, self.quantize):
            try:
                panel.base = change["new"]
            except traitlets.TraitError:  # e.g. a panel that cannot start from it
                continue

    def _on_job(self, _change: Any = None) -> None:
        """One job at a time: while a tab runs, the others are ``blocked`` (and say why)."""
        busy = [title for panel, title in self._jobs.items() if panel.running]
        reason = f"{busy[0]} is running in another tab." if busy else ""
        for panel in self._jobs:
            panel.blocked = "" if panel.running else reason
        self._busy.value = (f"<span style='color:#666'>{esc(busy[0])} is running; the other "
                            "tabs can start a job when it is done.</span>" if busy else "")

    def _on_variants(self, _change: VariantsChange | None = None) -> None:
        self._refresh_inspect_options()
        self._draw_variants()

    def _refresh_inspect_options(self) -> None:
        names = [v.name for v in self.workbench.variants if v.has_keras_model]
        current = self._inspect_pick.value if self._inspect_pick.value in names else "original"
        with self._inspect_pick.hold_sync():
            self._inspect_pick.options = names
            self._inspect_pick.value = current

    def _on_inspect_pick(self, change: Any) -> None:
        try:
            model = self.workbench[change["new"]].keras_model
            inspector = WeightInspector(model, bins=self.inspector.bins,
                                        log_scale=self.inspector.log_scale,
                                        exclude_zeros=self.inspector.exclude_zeros)
        except Exception as exc:  # an observer's error would reach nobody: show it
            self._inspect_error.value = error_html(exc)
            return
        self._inspect_error.value = ""
        self.inspector = inspector
        self._inspect.children = [self._inspect_pick, self._inspect_error, inspector]

    def _draw_variants(self) -> None:
        rows = []
        metric = self.workbench.metric
        for v in self.workbench.variants:  # one at a time: a failure stays on its own row
            try:
                r = self.workbench.compare([v])[0]
                rows.append([v.name, v.technique, r["parent"] or "-", metric.format(r["accuracy"]),
                             metric.format_delta(r["accuracy_delta"]), f"{r['size_bytes']:,}",
                             f"{r['gzipped_bytes']:,}", f"{r['gzipped_ratio']:.1f}x",
                             f"{r['sparsity']:.1%}"])
            except Exception as exc:  # e.g. a QAT model that did not convert
                rows.append([v.name, v.technique, v.parent.name if v.parent else "-",
                             "-", "-", "-", "-", "-", f"error: {exc}"])
        self._variants.value = grid_html(
            ["variant", "technique", "base", metric.name, "vs original", ".tflite B",
             "gzipped B", "gzipped x smaller", "sparsity"], rows)
        self._recipe.value = recipe_html(self.workbench)

    def save_report(self, path: str | None = None) -> Any:
        """Write the report (:meth:`Workbench.report`) with what the tabs measured: the
        Benchmark tab's last report and the Sensitivity tab's last run; the path, or None
        (the reason is shown beside the button)."""
        target = (path or self._report_path.value).strip()
        try:
            if not target:
                raise ValueError("No file name: the Report box is empty. Type e.g. "
                                 "report.html, then press Save report.")
            written = self.workbench.report(target, benchmark=self.benchmark.report,
                                            sensitivity=self.sensitivity.result)
        except Exception as exc:
            self._report_status.value = error_html(exc)
            return None
        self._report_status.value = f"saved <code>{esc(written)}</code>"
        return written

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """Widget view where widgets render; the variants table for nbconvert/GitHub."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            bundle["text/html"] = (f"<div><b>Studio</b> on {esc(self.workbench.original.name)}"
                                   " (the tabs need a live kernel)</div>"
                                   + self._variants.value)
        return bundle


def recipe_html(workbench: Any) -> str:
    """The Workbench's recipe to copy (a collapsed JSON block) and to save (a download), and
    the line that replays it."""
    from compresswidgets._files import json_text

    recipe = workbench.recipe()
    if not recipe["variants"]:
        return ""
    text = json_text(recipe)
    return ("<details><summary><b>Recipe</b> of these variants (copy, or "
            + download_link("recipe.json", "application/json", text).strip()
            + "; replay with <code>cw.Workbench.replay('recipe.json', model, data)</code>)"
            f"</summary><pre style='max-height:300px;overflow:auto'>{esc(text)}</pre></details>")
