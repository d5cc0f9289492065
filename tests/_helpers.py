"""Small helpers shared by the tests."""

from __future__ import annotations

HOSTILE = "<img src=x onerror=alert(1)>"


def weights_bytes(model) -> list[bytes]:
    """The model's weights as raw bytes, to prove they are byte-identical."""
    return [w.numpy().tobytes() for w in model.weights]


def table_rows(markup: str) -> list[list[str]]:
    """The text of every cell of every <tr> in ``markup`` (header rows included), unescaped."""
    from html.parser import HTMLParser

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.rows: list[list[str]] = []
            self.cell: list[str] | None = None

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                self.rows.append([])
            elif tag in ("td", "th"):
                self.cell = []

        def handle_endtag(self, tag):
            if tag in ("td", "th") and self.cell is not None:
                self.rows[-1].append("".join(self.cell).strip())
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell.append(data)

    parser = Rows()
    parser.feed(markup)
    return parser.rows
