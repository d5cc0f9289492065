"""BenchmarkPanel: latency, memory and size of a Workbench's .tflite variants, shown inline."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import traitlets

from compresswidgets._data import ACCURACY, MetricSpec
from compresswidgets._files import write_files
from compresswidgets.benchmarking import BenchmarkProgress, BenchmarkReport
from compresswidgets.export import micro_available
from compresswidgets.plots import plot_latency, plot_memory, plot_sizes, plot_tradeoff
from compresswidgets.variant import Variant, safe_filename
from compresswidgets.widgets._controls import (
    Bounded,
    FigureImage,
    JobPanel,
    download_link,
    error_html,
    esc,
    grid_html,
    table_box,
    table_html,
)

if TYPE_CHECKING:
    from compresswidgets.workbench import VariantsChange, Workbench

HEADER = ("variant", "threads", "batch", "init ms", "first inference ms", "mean ms",
          "median ms", "p90 ms", "memory MB", "size B", "gzipped B", "accuracy", "error")
ACCURACY_COLUMN = HEADER.index("accuracy")
_WRAP = widgets.Layout(flex_flow="row wrap", align_items="center")


def _ms(value: float, digits: int = 3) -> str:
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def _row(r: Any, metric: MetricSpec) -> tuple[Any, ...]:
    return (r.variant, r.threads, r.batch, _ms(r.init_ms, 2), _ms(r.first_inference_ms, 2),
            _ms(r.mean_ms), _ms(r.median_ms), _ms(r.p90_ms), _ms(r.memory_mb, 2),
            "–" if r.size_bytes is None else f"{r.size_bytes:,}",
            "–" if r.gzipped_bytes is None else f"{r.gzipped_bytes:,}",
            metric.format(r.accuracy), r.error)


def _number(description: str, low: int, high: int, tooltip: str) -> widgets.BoundedIntText:
    return widgets.BoundedIntText(min=low, max=high, description=description, tooltip=tooltip,
                                  layout=widgets.Layout(width="160px"))


class BenchmarkPanel(JobPanel):
    """Benchmark the .tflite variants of a Workbench: tick variants and thread counts, Run.

    Each measurement runs in a fresh LiteRT process, in a background thread (the kernel stays
    responsive), with a progress bar and a Stop button. The table, four plots, download links
    and Save buttons appear below once there is a report.

    Example:
        >>> wb = cw.Workbench(model, data)            # doctest: +SKIP
        >>> wb.quantize("dynamic")                    # doctest: +SKIP
        >>> panel = BenchmarkPanel(wb)                # doctest: +SKIP
        >>> panel.runs = 100; panel.run(); panel.wait()   # doctest: +SKIP
        >>> panel.report.to_csv()                     # doctest: +SKIP
    """

    threads = traitlets.List(Bounded(1, 1, 1024, integer=True), default_value=[1],
                             help="interpreter thread counts to measure at")
    runs = Bounded(50, 1, 1_000_000, integer=True, help="timed inferences per measurement")
    warmup = Bounded(5, 0, 100_000, integer=True, help="untimed inferences first")
    batch = Bounded(1, 1, 4096, integer=True, help="batch size where it is not fixed")
    folder = traitlets.Unicode("", help="folder Save writes into")
    export_c = traitlets.Bool(True, help="Export writes a C array (.h and .c)")
    export_keras = traitlets.Bool(False, help="Export writes a .keras file (Keras variants)")
    export_json = traitlets.Bool(True, help="Export writes the recipe and metrics as JSON, "
                                 "with TFLite Micro's arena where it runs")

    def __init__(self, workbench: Workbench, **kwargs: Any) -> None:
        """Build the panel on ``workbench``.

        Args:
            workbench: the :class:`~compresswidgets.Workbench` whose variants the panel
                reads and adds to (it follows ``workbench.observe``).
            **kwargs: initial values of the panel's traits
                (e.g. ``threads=[1, 2]``, ``runs=100``, ``folder='out'``) and
                ``ipywidgets.VBox`` options such as ``layout``; a bad value raises a
                ``traitlets.TraitError`` saying what is allowed.
        """
        super().__init__(**kwargs)
        self.add_class("cw-benchmark-panel")
        self.workbench = workbench
        self.report: BenchmarkReport | None = None
        self._boxes: dict[str, widgets.Checkbox] = {}
        self._measuring: list[int] = [1]
        self._syncing = False
        self._variants = widgets.VBox(layout=widgets.Layout(max_height="160px", overflow="auto"))
        cpus = os.cpu_count() or 1
        self._thread_toggles: dict[int, widgets.ToggleButton] = {}
        self._threads_box = widgets.HBox(layout=_WRAP)
        for count in sorted({1, 2, 4, cpus} | {2 ** k for k in range(cpus.bit_length())}):
            self._add_toggle(count)
        self._runs = _number("Runs", 1, 1_000_000, "Timed inferences per variant and thread "
                             "count; more runs, steadier figures")
        self._warmup = _number("Warm-up", 0, 100_000, "Untimed inferences before timing "
                               "starts (caches, lazy allocations)")
        self._batch = _number("Batch", 1, 4096, "Batch size, used where the model's batch "
                              "dimension is not fixed")
        self._run_button = self._start = widgets.Button(
            description="Run", button_style="primary", icon="play",
            tooltip=self._start_tooltip)
        self._stop_button = widgets.Button(
            description="Stop", icon="stop", disabled=True,
            tooltip="Stop after the measurement in progress (Stop lands between measurements); "
                    "what was measured is kept")
        self._progress = widgets.FloatProgress(min=0.0, max=1.0,
                                               layout=widgets.Layout(width="240px"))
        self._summary = widgets.HTML()
        self._table = table_box()  # a wide table scrolls in it, not cut at the panel's edge
        self._figures = [FigureImage(4.4, 2.8, css_class=f"cw-{name}-plot", left=left,
                                     right=0.96, bottom=0.17, top=0.88)
                         for name, left in (("latency", 0.45), ("memory", 0.45), ("sizes", 0.45),
                                            ("tradeoff", 0.2))]
        self._plots = widgets.HBox([f.widget for f in self._figures],
                                   layout=widgets.Layout(flex_flow="row wrap"))
        self._downloads = widgets.HTML()
        self._folder = widgets.Text(
            description="Folder", placeholder="Folder to save into, e.g. benchmark-results",
            tooltip="Folder to save into; created if missing. Files go only inside it",
            layout=widgets.Layout(width="360px"))
        self._save_report = widgets.Button(
            description="Save CSV + JSON", icon="save", layout=widgets.Layout(width="auto"),
            tooltip="Write benchmark.csv and benchmark.json of the last report into the folder")
        self._save_tflite = widgets.Button(
            description="Save .tflite files", icon="save", layout=widgets.Layout(width="auto"),
            tooltip="Write each ticked variant's .tflite into the folder (names made safe)")
        self._export = widgets.Button(
            description="Export", icon="microchip", layout=widgets.Layout(width="auto"),
            tooltip="Write each ticked variant for the device into the folder: .tflite, and "
                    "the formats ticked")
        export_boxes = []
        for trait, label in (("export_c", "C array"), ("export_keras", ".keras"),
                             ("export_json", "JSON + TFLite Micro arena")):
            box = widgets.Checkbox(description=label, indent=False,
                                   layout=widgets.Layout(width="auto"))
            traitlets.link((self, trait), (box, "value"))
            export_boxes.append(box)
        self._exported = table_box()
        self._exported.add_class("cw-export")
        self._results = widgets.VBox([self._summary, self._table, self._plots, self._downloads],
                                     layout=widgets.Layout(display="none"))

        for trait, control in (("runs", self._runs), ("warmup", self._warmup),
                               ("batch", self._batch), ("folder", self._folder)):
            traitlets.link((self, trait), (control, "value"))
        self._run_button.on_click(lambda _: self.run())
        self._stop_button.on_click(lambda _: self.stop())
        self._save_report.on_click(lambda _: self.save_report())
        self._save_tflite.on_click(lambda _: self.save_tflite())
        self._export.on_click(lambda _: self.export())
        self.observe(self._on_threads, names=["threads"])
        self.observe(self._on_running, names=["running"])
        self._on_threads()

        self.children = [
            widgets.HTML("<b>Variants to measure</b>"), self._variants,
            widgets.HBox([widgets.Label("Threads"), self._threads_box, self._runs,
                          self._warmup, self._batch], layout=_WRAP),
            widgets.HBox([self._run_button, self._stop_button, self._progress, self._status],
                         layout=_WRAP),
            self._error, self._results,
            widgets.HBox([self._folder, self._save_report, self._save_tflite], layout=_WRAP),
            widgets.HBox([widgets.HTML("<b>Export for the device</b>"), *export_boxes,
                          self._export], layout=_WRAP),
            self._exported,
        ]
        self.refresh_variants()
        workbench.observe(self._on_variants)

    @property
    def _start_tooltip(self) -> str:
        return "Measure every ticked variant at every chosen thread count"

    # ------------------------------------------------------------------ choices
    def _on_variants(self, _change: VariantsChange) -> None:
        self.refresh_variants()

    def refresh_variants(self) -> None:
        """Rebuild the checklist from the Workbench, keeping ticks; new variants are ticked.
        Called by the Workbench whenever it adds a variant; no need to call it yourself."""
        boxes = {}
        for v in self.workbench.variants:
            box = self._boxes.get(v.name) or widgets.Checkbox(
                value=True, indent=False, description=f"{v.name} · {v.technique}",
                tooltip="Tick to include this variant in the benchmark and in Save .tflite")
            box.disabled = self.running
            boxes[v.name] = box
        self._boxes = boxes
        self._variants.children = list(boxes.values())

    @property
    def selected_variants(self) -> list[Variant]:
        """The ticked variants, in the Workbench's order."""
        return [v for v in self.workbench.variants
                if v.name in self._boxes and self._boxes[v.name].value]

    def _add_toggle(self, count: int) -> None:
        cpus = os.cpu_count() or 1
        more = f"; this machine has {cpus} CPU(s), so they will share cores" if count > cpus else ""
        toggle = widgets.ToggleButton(
            description=str(count), layout=widgets.Layout(width="44px"),
            tooltip=f"Measure with {count} interpreter thread(s){more}. Pick one or more")
        toggle.observe(self._on_toggle, names=["value"])
        self._thread_toggles[count] = toggle
        self._threads_box.children = [self._thread_toggles[c] for c in sorted(self._thread_toggles)]

    def _on_toggle(self, _change: Any) -> None:
        if not self._syncing:
            self.threads = sorted(c for c, t in self._thread_toggles.items() if t.value)

    def _on_threads(self, _change: Any = None) -> None:
        for count in self.threads:
            if count not in self._thread_toggles:
                self._add_toggle(count)
        self._syncing = True
        try:
            for count, toggle in self._thread_toggles.items():
                toggle.value = count in self.threads
        finally:
            self._syncing = False

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """Start the benchmark in a background thread (see :meth:`wait`); while the panel is
        ``blocked`` the error box says why instead."""
        if not self._may_start():
            return
        chosen = self.selected_variants
        problem = ""
        if not chosen:
            problem = ("No variant is ticked. Tick at least one under 'Variants to measure', "
                       "then press Run.")
        elif not self.threads:
            problem = ("No thread count is chosen (threads=[]). Press at least one of the "
                       "Threads buttons, e.g. 1, then press Run.")
        if problem:
            self._error.value = error_html(ValueError(problem))
            return
        self._measuring = list(self.threads)
        self._progress.value = 0.0
        self.running = True
        self._job.start(self._run, chosen)

    def stop(self) -> None:
        """Stop after the measurement in progress; the rows measured so far are kept."""
        if self.running:
            self._job.stop_requested.set()
            self._status.value = "stopping after this measurement…"

    def _tick(self, tick: BenchmarkProgress) -> None:
        if self._job.stop_requested.is_set():
            tick.stop()
            return
        self._progress.value = (tick.index - 1 + tick.run / tick.runs) / tick.total
        counts = self._measuring  # rows come in variant order, then thread order
        self._status.value = esc(
            f"measuring {tick.index}/{tick.total}: {tick.variant} at "
            f"{counts[(tick.index - 1) % len(counts)]} thread(s), run {tick.run}/{tick.runs}")

    def _run(self, chosen: list[Variant]) -> None:
        start, final = time.monotonic(), None
        try:
            report = self.workbench.benchmark(chosen, threads=self._measuring, runs=self.runs,
                                              warmup=self.warmup, batch=self.batch,
                                              progress=self._tick)
            self.report = report
            self._show(report)
            total = len(chosen) * len(self._measuring)
            if report.stopped:
                final = esc(f"stopped: {len(report.rows)} of {total} measurements done")
            else:
                self._progress.value = 1.0
                final = esc(f"done: {total} measurement(s) in "
                            f"{time.monotonic() - start:.1f} s")
        except Exception as exc:  # a thread's traceback would be lost: show every failure
            self._failed(exc)
        finally:
            self._finished(final)

    def _on_running(self, change: Any) -> None:
        busy = bool(change["new"])
        for control in (self._runs, self._warmup, self._batch,
                        self._save_report, self._save_tflite, *self._boxes.values(),
                        *self._thread_toggles.values()):
            control.disabled = busy
        self._stop_button.disabled = not busy

    # ------------------------------------------------------------------ results
    def _show(self, report: BenchmarkReport) -> None:
        done = ", ".join(dict.fromkeys(r.variant for r in report.rows)) or "nothing"
        failed = sum(not r.ok for r in report.rows)
        note = (f"Stopped: measured {len(report.rows)} row(s) ({done}); the rest was skipped. "
                if report.stopped else "")
        note += f"{failed} measurement(s) failed: see the error column." if failed else ""
        self._summary.value = f"<div style='margin:4px 0'>{esc(note)}</div>" if note else ""
        metric = report.metric or ACCURACY
        header = list(HEADER)
        header[ACCURACY_COLUMN] = metric.name
        self._table.value = grid_html(header, [_row(r, metric) for r in report.rows])
        for figure, plot in zip(self._figures, (plot_latency, plot_memory, plot_sizes,
                                                plot_tradeoff), strict=True):
            plot(report, figure.clear())
            if plot is not plot_tradeoff:  # (the trade-off plot makes room for its labels)
                figure.ax.margins(x=0.05)
            figure.render()
        self._downloads.value = (
            download_link("benchmark.csv", "text/csv", report.to_csv())
            + download_link("benchmark.json", "application/json", report.to_json()))
        self._results.layout.display = None

    # ------------------------------------------------------------------ saving
    def save_report(self) -> list[Path]:
        """Write benchmark.csv and benchmark.json into :attr:`folder`; errors go to the box."""
        def files() -> list[tuple[str, str | bytes]]:
            if self.report is None:
                raise ValueError("There is no benchmark report to save yet. Press Run, wait "
                                 "for the table, then press Save CSV + JSON.")
            return [("benchmark.csv", self.report.to_csv()),
                    ("benchmark.json", self.report.to_json())]
        return self._saving(files)

    def save_tflite(self) -> list[Path]:
        """Write each ticked variant's .tflite into :attr:`folder`; errors go to the box."""
        def files() -> list[tuple[str, str | bytes]]:
            if not self.selected_variants:
                raise ValueError("No variant is ticked, so there is no .tflite to save. Tick "
                                 "the variants to save under 'Variants to measure'.")
            out: dict[str, bytes] = {}
            for v in self.selected_variants:
                stem, i = safe_filename(v.name), 2
                while f"{stem}.tflite" in out:  # two names can make the same safe name
                    stem, i = f"{safe_filename(v.name)}-{i}", i + 1
                out[f"{stem}.tflite"] = v.tflite
            return list(out.items())
        return self._saving(files)

    def export(self) -> list[Path]:
        """Export each ticked variant into :attr:`folder` (``Variant.export``: .tflite and
        the ticked formats; a quantized variant has no .keras); a line per variant says
        what TFLite Micro makes of it. Errors go to the box; what was written stays."""
        self._error.value = ""
        written: list[Path] = []
        lines = []
        try:
            if not self.folder.strip():
                raise ValueError("No folder chosen: the Folder box is empty (folder=''). Type "
                                 "the folder to export into, e.g. device; it is created if "
                                 "missing.")
            if not self.selected_variants:
                raise ValueError("No variant is ticked, so there is nothing to export. Tick "
                                 "them under 'Variants to measure'.")
            for v in self.selected_variants:
                formats = ["tflite"] + [f for f, on in (("c", self.export_c),
                                                        ("keras", self.export_keras),
                                                        ("json", self.export_json)) if on]
                if not v.has_keras_model and "keras" in formats:
                    formats.remove("keras")  # its .tflite is the model
                paths = v.export(self.folder.strip(), formats)
                written.extend(paths.values())
                micro = v.micro().describe() if self.export_json and micro_available() else ""
                lines.append((v.name, ", ".join(p.name for p in paths.values())
                              + (f"; {micro}" if micro else "")))
        except Exception as exc:
            self._error.value = error_html(exc)
        if lines:
            self._exported.value = table_html(lines)
        return written

    def _saving(self, files: Callable[[], list[tuple[str, str | bytes]]]) -> list[Path]:
        self._error.value = ""
        try:
            if not self.folder.strip():
                raise ValueError("No folder chosen: the Folder box is empty (folder=''). Type "
                                 "the folder to save into, e.g. benchmark-results; it is "
                                 "created if missing.")
            contents = files()
            folder = Path(self.folder.strip()).expanduser().resolve()
            paths = [(folder / name).resolve() for name, _ in contents]
            outside = [p for p in paths if p.parent != folder]  # e.g. a symlink elsewhere
            if outside:
                raise ValueError(f"{str(outside[0])!r} is outside {str(folder)!r}: a link in "
                                 "the folder points elsewhere. Remove it or choose another "
                                 "folder; nothing was written.")
            write_files(folder, dict(contents))  # all of them or none
        except Exception as exc:
            self._error.value = error_html(exc)
            return []
        self._status.value = "saved: " + ", ".join(f"<code>{esc(p)}</code>" for p in paths)
        return paths

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """Widget view where widgets render; a static HTML summary for nbconvert/GitHub."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            names = ", ".join(esc(f"{v.name} ({v.technique})") for v in self.workbench.variants)
            html = f"<div><b>Benchmark</b> of {len(self.workbench)} variant(s): {names}</div>"
            if self.report is not None:
                html += self._summary.value + self._table.value + "".join(
                    f.img_html() for f in self._figures)
            bundle["text/html"] = html
        return bundle

