"""SweepPanel: many candidates at once, a plot that grows as they finish, the front marked."""

from __future__ import annotations

import html
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import traitlets
from matplotlib.backends.backend_agg import FigureCanvasAgg

from compresswidgets.sweeps import THEN, Sweep, SweepProgress
from compresswidgets.widgets._controls import (
    BasePanel,
    Bounded,
    Choice,
    FigureImage,
    error_html,
    esc,
    grid_html,
    table_box,
)
from compresswidgets.widgets.sensitivity import parse_levels

if TYPE_CHECKING:
    from compresswidgets.workbench import Workbench

__all__ = ["SweepPanel"]

TECHNIQUES = ("prune", "cluster", "prune + cluster")
#: Seconds between two redraws of the candidates table on batch progress.
TABLE_INTERVAL = 0.3


class SweepPanel(BasePanel):
    """Many variants at once (:meth:`Workbench.sweep`): pick the technique, the levels, the
    epochs and the post-training steps; Run fine-tunes the candidates in parallel worker
    processes, with a row of progress per candidate and a plot that grows as they finish
    (the Pareto front redrawn); Stop cancels the candidates not finished and keeps the
    finished ones. "Use as base" makes a variant of the sweep the base of the other tabs
    (the ``chosen`` trait, which a Studio follows).

    Example:
        >>> cw.SweepPanel(wb)                   # doctest: +SKIP
    """

    technique = Choice("prune", TECHNIQUES, help="what the sweep varies")
    prune_levels = traitlets.Unicode("0.5, 0.7, 0.8, 0.9", help="sparsities, comma-separated")
    cluster_levels = traitlets.Unicode("32, 16, 8", help="numbers of clusters")
    epochs = Bounded(2, 0, 1000, integer=True, help="fine-tuning epochs of every candidate")
    then_dynamic = traitlets.Bool(False, help="add dynamic range quantization of each")
    then_float16 = traitlets.Bool(False, help="add float16 quantization of each")
    then_int8 = traitlets.Bool(True, help="add full-integer quantization of each")
    max_workers = Bounded(0, 0, 256, integer=True, help="local workers; 0: by cores and memory")
    chosen = traitlets.Unicode("", help="the variant picked as the base of the other tabs")

    def __init__(self, workbench: Workbench, **kwargs: Any) -> None:
        """Build the panel on ``workbench``.

        Args:
            workbench: the :class:`~compresswidgets.Workbench` to sweep and add to.
            **kwargs: initial values of the traits (``technique="cluster"``, ...) and VBox
                options; a bad value raises a ``traitlets.TraitError`` saying what is allowed.
        """
        self.workbench = workbench
        super().__init__(**kwargs)
        self.add_class("cw-sweep-panel")
        self.result: Sweep | None = None
        self._rows: list[dict[str, Any]] = []
        self._state: dict[str, str] = {}
        self._drawn_at = 0.0
        self._base = widgets.Dropdown(description="Base", tooltip="Where every candidate starts")
        self._technique = widgets.ToggleButtons(options=TECHNIQUES, tooltips=[
            "prune at each sparsity", "cluster to each number of clusters",
            "each number of clusters on each pruned variant"],
            style={"button_width": "130px"})
        self._prune_levels = widgets.Text(description="Sparsities",
                                          layout=widgets.Layout(width="260px"))
        self._cluster_levels = widgets.Text(description="Clusters",
                                            layout=widgets.Layout(width="220px"))
        self._epochs = widgets.BoundedIntText(min=0, max=1000, description="Epochs",
                                              layout=widgets.Layout(width="160px"))
        self._workers = widgets.BoundedIntText(min=0, max=256, description="Workers",
                                               tooltip="0: as many as cores and memory allow",
                                               layout=widgets.Layout(width="160px"))
        boxes = []
        for mode in THEN:
            box = widgets.Checkbox(description=f"then {mode}", indent=False,
                                   layout=widgets.Layout(width="130px"))
            traitlets.link((self, f"then_{mode}"), (box, "value"))
            boxes.append(box)
        for trait, control in (("technique", self._technique),
                               ("prune_levels", self._prune_levels),
                               ("cluster_levels", self._cluster_levels),
                               ("epochs", self._epochs), ("max_workers", self._workers)):
            traitlets.link((self, trait), (control, "value"))
        self._run_button = self._start = widgets.Button(
            description="Run", button_style="primary", icon="play",
            tooltip="Fine-tune every candidate in parallel; each is added as a variant")
        self._stop_button = widgets.Button(description="Stop", icon="stop", disabled=True,
                                           tooltip="Cancel what has not finished; keep the rest")
        self._progress = widgets.IntProgress(min=0, max=1,
                                             layout=widgets.Layout(width="240px"))
        self._code = widgets.HTML()
        self._code.add_class("cw-sweep-code")
        self._table = table_box()
        self._table.add_class("cw-sweep-table")
        self._plot = FigureImage(9.6, 3.6, css_class="cw-sweep-plot")
        self._plot.widget.layout.display = "none"
        self._pick = widgets.Dropdown(description="Variant", options=[],
                                      layout=widgets.Layout(width="340px"))
        self._use = widgets.Button(description="Use as base", icon="arrow-right",
                                   disabled=True, tooltip="Make it the base of the other tabs")
        self._summary = widgets.HTML()
        self._summary.add_class("cw-result")
        self._base.options = self.eligible_bases()
        traitlets.link((self, "base"), (self._base, "value"))
        self._run_button.on_click(lambda _: self.run())
        self._stop_button.on_click(lambda _: self.stop())
        self._use.on_click(lambda _: self.use(self._pick.value))
        row = widgets.Layout(flex_flow="row wrap", align_items="center")
        self.children = [
            widgets.HBox([self._base, self._technique], layout=row),
            widgets.HBox([self._prune_levels, self._cluster_levels, self._epochs,
                          self._workers], layout=row),
            widgets.HBox(boxes, layout=row),
            widgets.HBox([self._run_button, self._stop_button, self._progress, self._status],
                         layout=row),
            self._code, self._error, self._table, self._plot.widget, self._summary,
            widgets.HBox([self._pick, self._use], layout=row),
        ]
        self.observe(self._on_running, names=["running"])
        self.observe(lambda _: self._show_code(), names=[
            "technique", "prune_levels", "cluster_levels", "epochs", "then_dynamic",
            "then_float16", "then_int8", "base", "max_workers"])
        self.observe(self._on_technique, names=["technique"])
        workbench.observe(self._on_variants)
        self._on_technique()
        self._show_code()

    # ------------------------------------------------------------------ variants
    def _on_technique(self, _change: Any = None) -> None:
        self._prune_levels.layout.display = None if "prune" in self.technique else "none"
        self._cluster_levels.layout.display = None if "cluster" in self.technique else "none"

    # ------------------------------------------------------------------ the request
    def request(self) -> dict[str, Any]:
        """The arguments of :meth:`Workbench.sweep` these controls ask for."""
        out: dict[str, Any] = {}
        if "prune" in self.technique:
            out["prune"] = list(parse_levels(self.prune_levels, "prune"))
        if "cluster" in self.technique:
            out["cluster"] = list(parse_levels(self.cluster_levels, "cluster"))
        out["epochs"] = int(self.epochs)
        then = [mode for mode in THEN if getattr(self, f"then_{mode}")]
        if then:
            out["then"] = then
        if self.base != "original":
            out["base"] = self.base
        if self.max_workers:
            out["max_workers"] = int(self.max_workers)
        return out

    def _show_code(self) -> None:
        try:
            args = ", ".join(f"{k}={v!r}" for k, v in self.request().items())
        except ValueError as exc:
            self._code.value = f"<span style='color:#b02a1a'>{esc(exc)}</span>"
            return
        self._code.value = f"<code>sw = wb.sweep({esc(args)})</code>"

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """Run the sweep in a background thread (see :meth:`wait`)."""
        if not self._may_start():
            return
        try:
            request = self.request()
        except ValueError as exc:
            self._error.value = error_html(exc)
            return
        self._rows, self._state = [], {}
        self._progress.value, self._progress.max = 0, 1
        self._table.value = self._summary.value = ""
        self._plot.widget.layout.display = "none"
        self.running = True
        self._job.start(self._sweep, request)

    def stop(self) -> None:
        """Cancel the candidates not finished (the finished ones are kept)."""
        if self.running:
            self._job.stop_requested.set()
            self._status.value = "stopping…"

    def _report(self, p: SweepProgress) -> None:
        if self._job.stop_requested.is_set():
            p.stop()
        self._progress.max = max(1, p.total)
        if p.event == "sent":
            self._state.setdefault(p.label, "queued")
        elif p.event == "retry":
            self._state[p.label] = "retrying (its worker failed)"
        elif p.event == "batch":
            d = p.detail
            self._state[p.label] = (f"training: epoch {d.get('epoch')}/{d.get('epochs')}, "
                                    f"batch {d.get('batch')}/{d.get('batches')}")
            if time.monotonic() - self._drawn_at < TABLE_INTERVAL:
                return
        elif p.event == "finished":
            self._rows.extend(p.rows)
            self._state.pop(p.label, None)  # its rows say how it ended
            self._progress.value = p.done
            self._status.value = esc(f"{p.done}/{p.total} candidates finished")
            self._draw_plot(Sweep(self._rows, self._variants(), self.workbench.metric,
                                  complete=False, executor="", workers=0, seconds=0.0))
        self._draw_table()

    def _variants(self) -> dict[str, Any]:
        names = {v.name: v for v in self.workbench.variants}
        return {r["name"]: names[r["name"]] for r in self._rows if r["name"] in names}

    def _sweep(self, request: dict[str, Any]) -> None:
        final = None
        try:
            self._status.value = "starting workers…"
            result = self.workbench.sweep(progress=self._report, **request)
        except Exception as exc:  # in a thread, an uncaught error would vanish
            self._failed(exc)
        else:
            self.result = result
            try:
                self._rows = result.rows
                self._draw_table()
                self._draw_plot(result)
                self._show_result(result)
            except Exception as exc:
                self._failed(exc)
            where = {"kernel": "one after another in the kernel",
                     "local": f"on {result.workers} local worker(s)"}.get(
                         result.executor, "on the executor's workers")
            final = esc(f"{len(result.rows)} variants in {result.seconds:.0f} s {where}"
                        + ("" if result.complete else " (stopped: the finished are kept)"))
        finally:
            self._finished(final)

    # ------------------------------------------------------------------ showing
    def _draw_table(self) -> None:
        metric = self.workbench.metric
        done = {r["name"]: r for r in self._rows}
        rows = []
        for r in self._rows:
            rows.append([r["name"], "error: " + r["error"] if r["error"] else "done",
                         metric.format(r["metric"]) if r["metric"] is not None else "–",
                         metric.format_delta(r["delta"]) if r["delta"] is not None else "–",
                         f"{r['gzipped_bytes']:,}" if r["gzipped_bytes"] else "–",
                         f"{r['seconds']:.1f}" if r["seconds"] else "–"])
        for label, state in self._state.items():
            if label not in done:
                rows.append([label, state, "", "", "", ""])
        self._table.value = grid_html(["candidate", "state", metric.name, "vs original",
                                       "gzipped B", "seconds"], rows)
        self._drawn_at = time.monotonic()

    def _draw_plot(self, result: Sweep) -> None:
        if not any(r["error"] is None for r in result.rows):
            return
        figure = self._plot.figure
        figure.clf()
        FigureCanvasAgg(figure)
        axes = figure.subplots(1, 2)
        figure.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.9, wspace=0.28)
        result.plot(list(axes))
        self._plot.ax = axes[0]
        self._plot.render()
        self._plot.widget.layout.display = None

    def _show_result(self, result: Sweep) -> None:
        front = result.front()
        self._summary.value = (
            "<b>Pareto front</b> (smallest first): "
            + ", ".join(f"<code>{esc(v.name)}</code>" for v in front)
            + "".join(f"<div style='color:#666'>{esc(n)}</div>" for n in result.notes))
        names = [v.name for v in result.variants if not v.is_quantized]
        with self._pick.hold_sync():
            self._pick.options = names
            self._pick.value = names[0] if names else None
        self._use.disabled = not names

    def use(self, name: str | None) -> None:
        """Make ``name`` (a variant of the Workbench) the ``chosen`` base of the other tabs."""
        if not name:
            return
        try:
            variant = self.workbench[name]
        except KeyError as exc:
            self._error.value = error_html(exc)
            return
        self.chosen = variant.name
        self._status.value = (f"<b>{html.escape(variant.name)}</b> is the base of the other "
                              "tabs")

    def _on_running(self, change: Any) -> None:
        busy = bool(change["new"])
        self._stop_button.disabled = not busy
        self._base.disabled = busy
        self._use.disabled = busy or not self._pick.options
        if not busy:
            self.refresh_variants()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """Widget view where widgets render; the table and plot for nbconvert/GitHub."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            shown = (self._plot.img_html() + self._table.value + self._summary.value
                     if self.result is not None else "")
            bundle["text/html"] = (f"<div><b>SweepPanel</b> on {esc(self.base)} "
                                   "(interactive controls need a live kernel)</div>" + shown)
        return bundle
