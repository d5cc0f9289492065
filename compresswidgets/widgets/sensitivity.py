"""SensitivityPanel: which layers can take it, measured, and the per-layer recipe applied."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import traitlets

from compresswidgets._training import Progress, TrainingStopped
from compresswidgets.sensitivity import TECHNIQUES, Suggestion
from compresswidgets.tflite import RMSE_SCALE_LIMIT, TYPICAL_STEPS_LIMIT
from compresswidgets.widgets._controls import (
    BasePanel,
    Bounded,
    FigureImage,
    error_html,
    esc,
    grid_html,
    table_html,
)

if TYPE_CHECKING:
    from compresswidgets.sensitivity import Sensitivity
    from compresswidgets.workbench import Workbench

__all__ = ["SensitivityPanel"]

#: Rows of the sorted table shown (the most sensitive first); the rest are in ``result.rows``.
SHOWN = 15


def parse_levels(text: str, technique: str) -> tuple[float, ...]:
    """``"0.5, 0.8"`` -> ``(0.5, 0.8)``; anything else a three-part error."""
    parts = [p.strip() for p in str(text).replace(";", ",").split(",") if p.strip()]
    try:
        values = tuple(int(p) if technique == "cluster" else float(p) for p in parts)
    except ValueError:
        kind, example = (("whole numbers", "32, 16, 8") if technique == "cluster"
                         else ("fractions", "0.5, 0.8, 0.9"))
        raise ValueError(f"{technique} levels {text!r} are not a list of numbers. Expected "
                         f"comma-separated {kind}, e.g. {example!r}.") from None
    return values


class SensitivityPanel(BasePanel):
    """Which layers can take it: each layer alone pruned, clustered or int8-rounded, one-shot
    (:meth:`Workbench.sensitivity`), as a heatmap and a sorted table; then the per-layer
    recipe :meth:`Sensitivity.suggest` makes for a metric budget, and "Apply suggestion",
    which fine-tunes it into variants (:meth:`Workbench.apply_suggestion`).

    Example:
        >>> wb = cw.Workbench(model, data)      # doctest: +SKIP
        >>> cw.SensitivityPanel(wb)             # doctest: +SKIP
    """

    base_use = "measure"
    prune = traitlets.Bool(True, help="measure pruning")
    cluster = traitlets.Bool(True, help="measure clustering")
    int8 = traitlets.Bool(True, help="measure int8 (weights, and activation errors)")
    prune_levels = traitlets.Unicode("0.5, 0.8, 0.9", help="sparsities, comma-separated")
    cluster_levels = traitlets.Unicode("32, 16, 8", help="numbers of clusters")
    samples = Bounded(500, 10, 10_000_000, integer=True, help="test samples per evaluation")
    max_drop = Bounded(0.01, 0.0, 1.0, help="the metric drop each layer may cost")
    target_sparsity = Bounded(0.0, 0.0, 0.99, help="overall sparsity to reach; 0: the most "
                              "each layer takes within max_drop")
    epochs = Bounded(2, 0, 100, integer=True, help="fine-tuning epochs of Apply suggestion")

    def __init__(self, workbench: Workbench, **kwargs: Any) -> None:
        """Build the panel on ``workbench``.

        Args:
            workbench: the :class:`~compresswidgets.Workbench` to measure and add to.
            **kwargs: initial values of the traits (``max_drop=0.02``, ...) and VBox
                options; a bad value raises a ``traitlets.TraitError`` saying what is allowed.
        """
        self.workbench = workbench
        super().__init__(**kwargs)
        self.add_class("cw-sensitivity-panel")
        self.result: Sensitivity | None = None
        self.suggestion: Suggestion | None = None
        self.made: str = ""
        self._base = widgets.Dropdown(description="Base", tooltip="The variant to measure")
        boxes = []
        for name, tip in (("prune", "each layer alone pruned by magnitude"),
                          ("cluster", "each layer alone clustered (k-means++)"),
                          ("int8", "each layer's weights alone in int8, and the full-integer "
                                   "model's activation error per layer")):
            box = widgets.Checkbox(description=name, indent=False, tooltip=tip,
                                   layout=widgets.Layout(width="90px"))
            traitlets.link((self, name), (box, "value"))
            boxes.append(box)
        self._prune_levels = widgets.Text(description="Sparsities",
                                          layout=widgets.Layout(width="240px"))
        self._cluster_levels = widgets.Text(description="Clusters",
                                            layout=widgets.Layout(width="240px"))
        self._samples = widgets.BoundedIntText(min=10, max=10_000_000, description="Samples",
                                               layout=widgets.Layout(width="180px"))
        self._max_drop = widgets.BoundedFloatText(min=0.0, max=1.0, step=0.005,
                                                  description="Max drop",
                                                  layout=widgets.Layout(width="180px"))
        self._target = widgets.BoundedFloatText(min=0.0, max=0.99, step=0.05,
                                                description="Sparsity",
                                                tooltip="overall sparsity to reach (0: the "
                                                        "most each layer takes)",
                                                layout=widgets.Layout(width="180px"))
        self._epochs = widgets.BoundedIntText(min=0, max=100, description="Epochs",
                                              layout=widgets.Layout(width="160px"))
        for trait, control in (("prune_levels", self._prune_levels),
                               ("cluster_levels", self._cluster_levels),
                               ("samples", self._samples), ("max_drop", self._max_drop),
                               ("target_sparsity", self._target), ("epochs", self._epochs)):
            traitlets.link((self, trait), (control, "value"))
        self._run_button = self._start = widgets.Button(
            description="Measure", button_style="primary", icon="search",
            tooltip="Each layer alone, one-shot; nothing is added to the Workbench")
        self._stop_button = widgets.Button(description="Stop", icon="stop", disabled=True,
                                           tooltip="Stop; the rows measured so far are kept")
        self._apply = widgets.Button(description="Apply suggestion", icon="play",
                                     disabled=True, button_style="success",
                                     tooltip="Make the suggested variants, fine-tuned")
        self._progress = widgets.FloatProgress(min=0.0, max=1.0,
                                               layout=widgets.Layout(width="240px"))
        self._heatmap = FigureImage(7.6, 3.6, css_class="cw-sensitivity-plot", left=0.16,
                                    right=0.98, bottom=0.2, top=0.9)
        self._heatmap.widget.layout.display = "none"
        self._table = widgets.HTML()
        self._table.add_class("cw-sensitivity-table")
        self._errors = widgets.HTML()
        self._errors.add_class("cw-layer-errors")
        self._suggested = widgets.HTML()
        self._suggested.add_class("cw-suggestion")
        self._result = widgets.HTML()
        self._result.add_class("cw-result")
        self._base.options = self.eligible_bases()
        traitlets.link((self, "base"), (self._base, "value"))
        self._run_button.on_click(lambda _: self.run())
        self._stop_button.on_click(lambda _: self.stop())
        self._apply.on_click(lambda _: self.apply_suggestion())
        row = widgets.Layout(flex_flow="row wrap", align_items="center")
        self.children = [
            widgets.HBox([self._base, *boxes], layout=row),
            widgets.HBox([self._prune_levels, self._cluster_levels, self._samples], layout=row),
            widgets.HBox([self._run_button, self._stop_button, self._progress, self._status],
                         layout=row),
            self._error, self._heatmap.widget,
            widgets.HBox([self._table, self._errors],
                         layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start")),
            widgets.HTML("<b>Suggestion</b>: the most each layer takes within the budget"),
            widgets.HBox([self._max_drop, self._target, self._epochs, self._apply],
                         layout=row),
            self._suggested, self._result,
        ]
        self.observe(self._on_running, names=["running"])
        self.observe(lambda _: self._suggest(), names=["max_drop", "target_sparsity"])
        workbench.observe(self._on_variants)

    # ------------------------------------------------------------------ measuring
    def _request(self) -> tuple[tuple[str, ...], dict[str, tuple[Any, ...]]]:
        techniques = tuple(t for t in TECHNIQUES if getattr(self, t))
        if not techniques:
            raise ValueError("No technique is ticked (techniques=()), so there is nothing to "
                             "measure. Tick prune, cluster or int8.")
        levels: dict[str, tuple[Any, ...]] = {}
        if self.prune:
            levels["prune"] = parse_levels(self.prune_levels, "prune")
        if self.cluster:
            levels["cluster"] = parse_levels(self.cluster_levels, "cluster")
        return techniques, levels

    def run(self) -> None:
        """Measure in a background thread (see :meth:`wait`); nothing is added."""
        if not self._may_start():
            return
        try:
            request = self._request()
        except ValueError as exc:
            self._error.value = error_html(exc)
            return
        self._progress.value = 0.0
        self.running = True
        self._job.start(self._measure, *request)

    def stop(self) -> None:
        """Stop the running measurement (the rows so far are kept) or fine-tuning."""
        if self.running:
            self._job.stop_requested.set()
            self._status.value = "stopping…"

    def _report(self, report: Progress) -> None:
        self._progress.value = report.fraction
        self._status.value = esc(f"{report.technique} ({report.batch}/{report.batches})")
        if self._job.stop_requested.is_set():
            report.stop()

    def _measure(self, techniques: tuple[str, ...], levels: dict[str, tuple[Any, ...]]) -> None:
        final = None
        try:
            self._status.value = "measuring…"
            result = self.workbench.sensitivity(techniques, levels, samples=self.samples,
                                                base=self.base, progress=self._report)
        except Exception as exc:  # in a thread, an uncaught error would vanish
            self._failed(exc)
        else:
            self.result = result
            self._progress.value = 1.0 if result.complete else self._progress.value
            try:
                self._show(result)
            except Exception as exc:
                self._failed(exc)
            final = esc(f"{len(result.rows)} measurements on {result.samples} samples"
                        + ("" if result.complete else " (stopped: incomplete)"))
        finally:
            self._finished(final)

    def _show(self, s: Sensitivity) -> None:
        ax = self._heatmap.clear()
        s.plot(ax)
        self._heatmap.render()
        self._heatmap.widget.layout.display = None
        metric = s.metric
        worst = sorted(s.rows, key=lambda r: -r["drop"])[:SHOWN]
        self._table.value = (
            f"<b>Most sensitive first</b> (baseline {esc(metric.format(s.baseline))})"
            + grid_html(["layer", "technique", "level", metric.name, "change"],
                        [[r["layer"], r["technique"], _level(r), metric.format(r["metric"]),
                          metric.format_delta(r["delta"])] for r in worst]))
        self._errors.value = layer_errors_html(s.layer_errors, s.int8_metric, metric) + "".join(
            f"<div style='color:#b02a1a'>{esc(n)}</div>" for n in s.notes)
        self._suggest()

    def _suggest(self) -> None:
        if self.result is None:
            return
        try:
            self.suggestion = self.result.suggest(self.max_drop,
                                                  target_sparsity=self.target_sparsity or None)
        except ValueError as exc:
            self.suggestion = None
            self._suggested.value = error_html(exc)
            self._apply.disabled = True
            return
        s = self.suggestion
        rows = [(f"prune {layer}", f"{level:.0%}") for layer, level in s.get("prune", {}).items()]
        rows += [(f"cluster {layer}", str(k)) for layer, k in s.get("cluster", {}).items()]
        if "keep_float" in s:
            rows.append(("int8, kept float", ", ".join(s["keep_float"]) or "none"))
        self._suggested.value = (f"<div>{esc(s.describe(self.workbench.metric))}</div>"
                                 + table_html(rows, columns=2))
        self._apply.disabled = self.running or bool(self.blocked)

    # ------------------------------------------------------------------ applying
    def apply_suggestion(self) -> None:
        """Make the suggested variants, fine-tuned, in a background thread."""
        if self.suggestion is None:
            self._error.value = error_html(ValueError(
                "There is no suggestion yet: Measure first, then Apply suggestion."))
            return
        if not self._may_start():
            return
        self._progress.value = 0.0
        self.running = True
        self._job.start(self._make, self.suggestion)

    def _make(self, suggestion: Suggestion) -> None:
        final = None
        try:
            self._status.value = "fine-tuning…"
            variant = self.workbench.apply_suggestion(suggestion, epochs=self.epochs,
                                                      base=self.base, progress=self._report)
        except TrainingStopped as exc:
            final = esc(str(exc))
        except Exception as exc:
            self._failed(exc)
        else:
            self.made = variant.name
            metric, original = self.workbench.metric, self.workbench.original
            try:
                got = variant.accuracy - original.accuracy
                self._result.value = table_html([
                    ("made", variant.name),
                    (f"{metric.name}: expected (before fine-tuning)",
                     metric.format_delta(-suggestion.expected_drop)),
                    (f"{metric.name}: got", f"{metric.format(variant.accuracy)} "
                                            f"({metric.format_delta(got)})"),
                    ("gzipped: expected", f"about {suggestion.expected_gzipped_bytes or 0:,} B"),
                    ("gzipped: got", f"{variant.gzipped_bytes:,} B "
                                     f"({variant.gzipped_ratio:.1f}x smaller)"),
                ])
            except Exception as exc:  # the variant is kept; its measurement failed
                self._failed(exc)
            final = esc(f"made {variant.name!r}")
        finally:
            self._finished(final)

    def _on_running(self, change: Any) -> None:
        busy = bool(change["new"])
        self._stop_button.disabled = not busy
        self._apply.disabled = busy or self.suggestion is None or bool(self.blocked)
        self._base.disabled = busy
        if not busy:
            self.refresh_variants()

    def _on_blocked(self, _change: Any = None) -> None:
        super()._on_blocked(_change)
        if hasattr(self, "_apply"):
            self._apply.disabled = (self.running or bool(self.blocked)
                                    or getattr(self, "suggestion", None) is None)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """Widget view where widgets render; the heatmap and tables for nbconvert/GitHub."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            shown = (self._heatmap.img_html() + self._table.value + self._suggested.value
                     if self.result is not None else "")
            bundle["text/html"] = (f"<div><b>SensitivityPanel</b> on {esc(self.base)} "
                                   "(interactive controls need a live kernel)</div>" + shown)
        return bundle


def _level(row: dict[str, Any]) -> str:
    if row["technique"] == "prune":
        return f"{row['level']:.0%}"
    return str(row["level"])


def layer_errors_html(errors: Any, int8_metric: float | None, metric: Any) -> str:
    """The per-op activation errors of an int8 model; ops that do not fit int8 in red."""
    if not errors:
        return ""
    rows = []
    for e in sorted(errors, key=lambda e: (not e.misfit, -e.rmse_scale)):
        rows.append([("⚠ " if e.misfit else "") + (e.layer or e.tensor[:40]), e.op,
                     f"{e.rmse_scale:.2f}", f"{e.typical_steps:.3g}", f"{e.max_abs_error:.3g}"])
    head = "<b>int8 activations</b> (rmse/scale: 0.29 is rounding alone"
    head += (f"; ⚠ above {RMSE_SCALE_LIMIT:g}, or a typical value under "
             f"{TYPICAL_STEPS_LIMIT:g} step: the range does not fit)")
    if int8_metric is not None:
        head += f". Whole int8 model: {esc(metric.format(int8_metric))}"
    return head + grid_html(["layer", "op", "rmse/scale", "typical steps", "max |error|"], rows)
