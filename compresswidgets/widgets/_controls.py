"""What the panels share: escaping, tables, error boxes, figures as PNG, background jobs."""

from __future__ import annotations

import base64
import html
import io
import threading
import traceback
from collections.abc import Callable, Iterable
from typing import Any

import ipywidgets as widgets
import traitlets
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from compresswidgets.techniques._common import check_number


def esc(value: Any) -> str:
    """Escape untrusted text (layer names, file names) for HTML."""
    return html.escape(str(value), quote=True)


#: the style of the box around every table (:func:`table_html`, :func:`grid_html`): a table
#: wider than the page scrolls sideways in it, where the HTML is static (a panel's view in
#: nbconvert or on GitHub, an HTML widget's value shown elsewhere)
SCROLL_STYLE = "overflow-x:auto;max-width:100%"


def scrolling(markup: str) -> str:
    """``markup`` (a table) in a box that scrolls sideways when it is wider than its place."""
    return f"<div class='cw-scroll' style='{SCROLL_STYLE}'>{markup}</div>"


def table_box() -> widgets.HTML:
    """An HTML widget for a table in a VBox: a table wider than the panel scrolls sideways in
    this widget's own box (JupyterLab, Notebook 7, Voila), neither cut nor scrolling the whole
    panel. Inside a widget it is this box that scrolls, not :func:`scrolling`'s: the widget's
    content is as wide as the table. No ``width="100%"``: with the widget's 2px margins it
    would overflow the VBox by 4px, which then shows a scrollbar of its own."""
    return widgets.HTML(layout=widgets.Layout(overflow="auto", max_width="100%"))


def table_html(rows: Iterable[tuple[str, Any]], columns: int = 1,
               css_class: str = "cw-table") -> str:
    """A key/value table with ``columns`` pairs per row; keys and values are escaped. It
    scrolls sideways in its own box when wider than its place (:func:`scrolling`)."""
    cells = [
        f"<th style='text-align:left;padding:1px 8px 1px 14px;font-weight:600'>{esc(k)}</th>"
        f"<td style='text-align:right;font-family:monospace;padding:1px 4px'>{esc(v)}</td>"
        for k, v in rows
    ]
    body = "".join(
        "<tr>" + "".join(cells[i:i + columns]) + "</tr>" for i in range(0, len(cells), columns)
    )
    return scrolling(f"<table class='{css_class}' style='border-collapse:collapse;"
                     f"font-size:12px'>{body}</table>")


def grid_html(header: Iterable[str], rows: Iterable[Iterable[Any]],
              css_class: str = "cw-grid") -> str:
    """A table with a header row; every cell is escaped, numbers are right-aligned. It scrolls
    sideways in its own box when wider than its place (:func:`scrolling`)."""
    head = "".join(f"<th style='text-align:left;padding:2px 8px;border-bottom:1px solid #999;"
                   "white-space:nowrap'>"
                   f"{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(
            f"<td style='padding:1px 8px;text-align:{'right' if _numeric(c) else 'left'};"
            f"font-family:monospace;white-space:nowrap'>{esc(c)}</td>" for c in row) + "</tr>"
        for row in rows)
    return scrolling(f"<table class='{css_class}' style='border-collapse:collapse;"
                     f"font-size:12px'><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
                     "</table>")


def download_link(name: str, mime: str, text: str) -> str:
    """An <a download> of ``text`` as the file ``name`` (a data URI: works offline and in
    Voila; ``name`` is made safe for a file system and escaped)."""
    from compresswidgets._files import safe_filename

    data = base64.b64encode(text.encode("utf-8")).decode("ascii")
    safe = safe_filename(name)
    return f'<a download="{esc(safe)}" href="data:{mime};base64,{data}">⬇ {esc(safe)}</a> '


def _numeric(cell: Any) -> bool:
    text = str(cell).replace(",", "").replace("%", "").replace(" ", "").strip()
    try:
        float(text)
    except ValueError:
        return False
    return True


def _collapsed(css_class: str, title: str, text: str) -> str:
    return (f"<details class='{css_class}'><summary>{esc(title)}</summary>"
            f"<pre style='font-size:10px;max-height:240px;overflow:auto'>{esc(text)}</pre>"
            "</details>")


#: Errors whose message is the whole story (what was passed, what is expected, the fix):
#: their box shows no traceback unless asked to.
EXPECTED = (ValueError, TypeError, KeyError, OSError)


def error_html(exc: BaseException, *, trace: bool | None = None) -> str:
    """A readable error box: the exception's class and message, escaped; where there is more
    (a converter's full output, the traceback) it is in a collapsed section below.

    Args:
        exc: what was raised.
        trace: include the traceback; ``None`` (default) includes it for anything that is not
            one of :data:`EXPECTED` (an error the user cannot act on from its message alone).
    """
    if trace is None:
        trace = not isinstance(exc, EXPECTED)
    details = getattr(exc, "details", "")
    more = (_collapsed("cw-error-details", "full output", details)
            if details and details != str(exc) else "")
    if trace:
        more += _collapsed("cw-traceback", "traceback",
                           "".join(traceback.format_exception(exc)))
    return (
        "<div class='cw-error' style='border:1px solid #d9534f;background:#fdf1f0;color:#7a1f1c;"
        "padding:6px 10px;border-radius:4px;white-space:pre-wrap'>"
        f"<b>{esc(type(exc).__name__)}</b>: {esc(exc)}{more}</div>"
    )


class Choice(traitlets.TraitType):
    """A panel trait that holds one of ``choices``; anything else is a ``TraitError`` saying
    what was set, what the choices are and how to set one (the control would refuse it too)."""

    def __init__(self, default_value: Any, choices: Iterable[Any], **kwargs: Any) -> None:
        self.choices = tuple(choices)
        super().__init__(default_value, **kwargs)

    def validate(self, obj: Any, value: Any) -> Any:
        same_kind = isinstance(value, type(self.default_value)) and not (
            isinstance(value, bool) and not isinstance(self.default_value, bool))
        if same_kind and value in self.choices:
            return value
        raise traitlets.TraitError(
            f"{type(obj).__name__}.{self.name} = {value!r} is not one of its choices. Expected "
            f"one of {', '.join(map(repr, self.choices))}: e.g. "
            f"panel.{self.name} = {self.default_value!r}.")


class Bounded(traitlets.TraitType):
    """A panel number in ``[low, high]`` (the control's range); a wrong type, NaN, infinity or
    a value out of range is a ``TraitError`` with what was set, the range and an example."""

    def __init__(self, default_value: float, low: float, high: float, *, integer: bool = False,
                 **kwargs: Any) -> None:
        self.low, self.high, self.integer = low, high, integer
        super().__init__(default_value, **kwargs)

    def validate(self, obj: Any, value: Any) -> Any:
        try:
            return check_number(f"{type(obj).__name__}.{self.name}", value, self.low, self.high,
                                integer=self.integer,
                                hint=f"Set e.g. panel.{self.name} = {self.default_value!r}.")
        except (TypeError, ValueError) as exc:
            raise traitlets.TraitError(str(exc)) from None


class JobPanel(widgets.VBox):
    """A panel that runs one long job at a time in a background thread: ``running`` while it
    does, ``blocked`` (a reason) while it may not start one (a Studio sets it when another tab
    runs). Every exception of the job lands in the panel's error box, with its traceback."""

    running = traitlets.Bool(False, help="a job is in progress")
    blocked = traitlets.Unicode("", help="why this panel may not start a job now; '' = it may")

    #: the button that starts a job; set by subclasses
    _start: widgets.Button

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._job = Job()
        self._error = widgets.HTML()
        self._status = widgets.HTML()
        self.observe(self._on_blocked, names=["blocked", "running"])

    def _on_blocked(self, _change: Any = None) -> None:
        self._start.disabled = self.running or bool(self.blocked)
        self._start.tooltip = self.blocked or self._start_tooltip

    @property
    def _start_tooltip(self) -> str:
        return ""

    def _may_start(self) -> bool:
        """Whether a job may start now; if not because it is blocked, the box says why."""
        if self.running:
            return False
        if self.blocked:
            busy = RuntimeError(f"{self.blocked} Wait for it to finish (or Stop it), then "
                                "start again.")
            self._error.value = error_html(busy, trace=False)
            return False
        self._error.value = ""
        return True

    def _finished(self, status: str | None) -> None:
        """End a job: the controls are usable again first, then the final status (escaped
        HTML; ``None`` keeps what is there), so whoever reads "stopped" or "made" can act."""
        self.running = False
        if status is not None:
            self._status.value = status

    def _failed(self, exc: BaseException) -> None:
        """Show a job's exception (nothing a background thread raises is lost)."""
        self._error.value = error_html(exc, trace=True)
        self._status.value = ""

    def wait(self, timeout: float | None = None) -> None:
        """Block until the current run has finished (for scripts and tests).

        Args:
            timeout: seconds to wait at most; ``None``: until it finishes. It returns either
                way: check ``running`` to tell.
        """
        self._job.wait(timeout)


class BasePanel(JobPanel):
    """A JobPanel that starts from a variant of its Workbench: a Keras model, not quantized
    (quantize last). ``base`` is validated against those and follows the Workbench: a variant
    made anywhere is offered at once (after the panel's own run, not under the user's hand).
    Subclasses set ``workbench`` and ``_base`` (the Dropdown) before linking them."""

    base = traitlets.Unicode("original", help="name of the variant the panel starts from")
    #: what the base is for, in the error message ("start from", "measure")
    base_use = "start from"
    workbench: Any
    _base: widgets.Dropdown

    def eligible_bases(self) -> list[str]:
        """The variants the panel can start from."""
        return [v.name for v in self.workbench.variants
                if v.has_keras_model and not v.is_quantized]

    @traitlets.validate("base")
    def _valid_base(self, proposal: Any) -> str:
        names = self.eligible_bases()
        if proposal["value"] not in names:
            raise traitlets.TraitError(
                f"{type(self).__name__}.base = {proposal['value']!r} is not a variant it can "
                f"{self.base_use}. Expected one of {', '.join(map(repr, names))} (Keras "
                "variants of the Workbench, not quantized: quantize last): e.g. "
                "panel.base = 'original'.")
        return proposal["value"]

    def refresh_variants(self) -> None:
        """Offer every variant the panel can start from. Called whenever the Workbench adds
        a variant; no need to call it yourself."""
        names = self.eligible_bases()
        with self._base.hold_sync():
            self._base.options = names
            self.base = self.base if self.base in names else "original"

    def _on_variants(self, _change: Any = None) -> None:
        if not self.running:  # a running panel refreshes when its run ends
            self.refresh_variants()


class FigureImage:
    """A matplotlib Figure (Agg, no pyplot state) shown through an ``ipywidgets.Image``."""

    def __init__(self, width: float, height: float, dpi: int = 96, css_class: str = "",
                 **adjust: float) -> None:
        self.figure = Figure(figsize=(width, height), dpi=dpi)
        FigureCanvasAgg(self.figure)
        self.figure.subplots_adjust(**adjust)
        self.ax = self.figure.add_subplot()
        self.dpi = dpi
        # flex-start: in a VBox a stretched image would be scaled up and blurred
        self.widget = widgets.Image(format="png", layout=widgets.Layout(
            max_width="100%", align_self="flex-start"))
        if css_class:
            self.widget.add_class(css_class)

    def clear(self) -> Any:
        """The figure's single Axes, emptied (cheaper than a new figure)."""
        for extra in self.figure.axes[1:]:  # e.g. a twinx from the last drawing
            extra.remove()
        self.ax.clear()
        return self.ax

    def render(self) -> bytes:
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=self.dpi)
        self.widget.value = buffer.getvalue()
        return self.widget.value

    def img_html(self) -> str:
        """The last rendering as an <img> tag, for static (non-widget) output."""
        data = base64.b64encode(bytes(self.widget.value)).decode("ascii")
        return f"<img src='data:image/png;base64,{data}' style='max-width:100%'/>"


class Job:
    """A panel's long run in a daemon thread (the kernel stays responsive), with a stop flag
    the run's progress callback reads."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.stop_requested = threading.Event()

    def start(self, target: Callable[..., None], *args: Any) -> None:
        self.stop_requested.clear()
        self.thread = threading.Thread(target=target, args=args, daemon=True)
        self.thread.start()

    def wait(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)
