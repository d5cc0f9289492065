"""What the panels share: escaping, tables, error boxes, figures as PNG, background jobs."""

from __future__ import annotations

import base64
import html
import io
import threading
from collections.abc import Callable, Iterable
from typing import Any

import ipywidgets as widgets
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def esc(value: Any) -> str:
    """Escape untrusted text (layer names, file names) for HTML."""
    return html.escape(str(value), quote=True)


def table_html(rows: Iterable[tuple[str, Any]], columns: int = 1,
               css_class: str = "cw-table") -> str:
    """A key/value table with ``columns`` pairs per row; keys and values are escaped."""
    cells = [
        f"<th style='text-align:left;padding:1px 8px 1px 14px;font-weight:600'>{esc(k)}</th>"
        f"<td style='text-align:right;font-family:monospace;padding:1px 4px'>{esc(v)}</td>"
        for k, v in rows
    ]
    body = "".join(
        "<tr>" + "".join(cells[i:i + columns]) + "</tr>" for i in range(0, len(cells), columns)
    )
    return (f"<table class='{css_class}' style='border-collapse:collapse;font-size:12px'>"
            f"{body}</table>")


def grid_html(header: Iterable[str], rows: Iterable[Iterable[Any]],
              css_class: str = "cw-grid") -> str:
    """A table with a header row; every cell is escaped, numbers are right-aligned."""
    head = "".join(f"<th style='text-align:left;padding:2px 8px;border-bottom:1px solid #999;"
                   "white-space:nowrap'>"
                   f"{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(
            f"<td style='padding:1px 8px;text-align:{'right' if _numeric(c) else 'left'};"
            f"font-family:monospace;white-space:nowrap'>{esc(c)}</td>" for c in row) + "</tr>"
        for row in rows)
    return (f"<table class='{css_class}' style='border-collapse:collapse;font-size:12px'>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _numeric(cell: Any) -> bool:
    text = str(cell).replace(",", "").replace("%", "").replace(" ", "").strip()
    try:
        float(text)
    except ValueError:
        return False
    return True


def error_html(exc: BaseException) -> str:
    """A readable error box: the exception's class and message, escaped; where there is more
    (a converter's full output), it is in a collapsed section below."""
    details = getattr(exc, "details", "")
    more = (f"<details class='cw-error-details'><summary>full output</summary>"
            f"<pre style='font-size:10px;max-height:240px;overflow:auto'>{esc(details)}</pre>"
            "</details>" if details and details != str(exc) else "")
    return (
        "<div class='cw-error' style='border:1px solid #d9534f;background:#fdf1f0;color:#7a1f1c;"
        "padding:6px 10px;border-radius:4px;white-space:pre-wrap'>"
        f"<b>{esc(type(exc).__name__)}</b>: {esc(exc)}{more}</div>"
    )


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
